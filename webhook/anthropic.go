package webhook

import (
	"bytes"
	"net/url"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// AnthropicVersion is the anthropic-version header sent unless the
// connection's headers set one.
const AnthropicVersion = "2023-06-01"

// The anthropic format calls Anthropic's Messages API directly: POST
// <base>/v1/messages with x-api-key and anthropic-version, {model,
// max_tokens, system, messages, options…} in, content[] out.
var anthropicWire = &wire{
	timeout:  60 * time.Second,
	endpoint: anthropicEndpoint,
	auth:     func(token string) (string, string) { return "X-Api-Key", token },
	headers:  map[string]string{"Anthropic-Version": AnthropicVersion},
	retry:    retrySDK,
}

// anthropicEndpoint joins a base URL as the SDK does: <base>/v1/messages
// (https://api.anthropic.com). A URL ending in /v1 gets /messages, and one
// that already ends in /messages is kept.
func anthropicEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/messages"):
		return raw
	case strings.HasSuffix(p, "/v1"):
		u.Path = p + "/messages"
	default:
		u.Path = p + "/v1/messages"
	}
	u.RawPath = ""
	return u.String()
}

type anthropicRequest struct {
	Model         string             `json:"model"`
	MaxTokens     int                `json:"max_tokens"`
	System        string             `json:"system,omitempty"`
	Messages      []anthropicMessage `json:"messages"`
	Temperature   *float64           `json:"temperature,omitempty"`
	TopP          *float64           `json:"top_p,omitempty"`
	StopSequences []string           `json:"stop_sequences,omitempty"`
}

type anthropicMessage struct {
	Role    string `json:"role"`
	Content any    `json:"content"` // a string, or []anthropicBlock
}

type anthropicBlock struct {
	Type   string          `json:"type"`
	Text   string          `json:"text,omitempty"`
	Source *anthropicImage `json:"source,omitempty"`
}

type anthropicImage struct {
	Type      string `json:"type"` // url or base64
	URL       string `json:"url,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
}

// encodeAnthropic writes {model, max_tokens, system, messages, …}. The
// system message is a field of its own; messages start with the user and
// alternate (Window joins consecutive ones), and end with the user's turn.
// The API refuses empty messages: without user input it is ErrNoInput.
func encodeAnthropic(buf *bytes.Buffer, _ *Connection, r *Request) error {
	ms := turns(r.Messages)
	if len(ms) == 0 {
		return ErrNoInput
	}
	out := make([]anthropicMessage, len(ms))
	for i, m := range ms {
		out[i] = anthropicMessage{Role: m.Role, Content: m.Content}
		if len(m.Images) == 0 {
			continue
		}
		blocks := make([]anthropicBlock, 0, len(m.Images)+1)
		for _, img := range m.Images {
			blocks = append(blocks, anthropicBlock{Type: "image", Source: anthropicSource(img)})
		}
		if m.Content != "" { // Anthropic's advice: images before the text
			blocks = append(blocks, anthropicBlock{Type: "text", Text: m.Content})
		}
		out[i].Content = blocks
	}
	o := r.Options
	return encodeJSON(buf, &anthropicRequest{
		Model: r.Model, MaxTokens: o.MaxTokens, System: r.System, Messages: out,
		Temperature: o.Temperature, TopP: o.TopP, StopSequences: o.Stop,
	})
}

// anthropicSource is an image source: a data: URL becomes base64 data,
// anything else a url source.
func anthropicSource(img string) *anthropicImage {
	if rest, ok := strings.CutPrefix(img, "data:"); ok {
		if meta, data, ok := strings.Cut(rest, ","); ok {
			if mt, ok := strings.CutSuffix(meta, ";base64"); ok {
				return &anthropicImage{Type: "base64", MediaType: mt, Data: data}
			}
		}
	}
	return &anthropicImage{Type: "url", URL: img}
}

type anthropicAnswer struct {
	Type    string `json:"type"`
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason string `json:"stop_reason"`
	Usage      *struct {
		InputTokens              int64 `json:"input_tokens"`
		OutputTokens             int64 `json:"output_tokens"`
		CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	} `json:"usage"`
}

// decodeAnthropic joins the text blocks of content as the reply; model,
// stop_reason and usage (cache reads and writes counted as input) go to
// Answer.Call. A refusal with no text is a failure.
func decodeAnthropic(body []byte, r *Request) (*Answer, error) {
	var m anthropicAnswer
	if err := decodeObject(body, &m); err != nil {
		return nil, err
	}
	if m.Content == nil {
		return nil, invalid("content", "is required")
	}
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	if strings.TrimSpace(b.String()) == "" && m.StopReason == "refusal" {
		return nil, invalid("content", "is empty: the model refused (stop_reason refusal)")
	}
	a, err := textAnswer("content", b.String())
	if err != nil {
		return nil, err
	}
	call := &engine.Call{Format: string(FormatAnthropic), Model: firstNonEmpty(m.Model, r.Model), StopReason: m.StopReason}
	if u := m.Usage; u != nil {
		call.InputTokens = u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
		call.OutputTokens = u.OutputTokens
	}
	a.Call = call
	return a, nil
}
