package webhook

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// The openai format calls an OpenAI-compatible chat completions endpoint
// directly: POST <base>/chat/completions with a bearer token,
// {model, messages, options…} in, choices[0].message out.
var openaiWire = &wire{
	timeout:  60 * time.Second,
	endpoint: openaiEndpoint,
	auth:     bearer,
	retry:    retrySDK,
}

// openaiEndpoint joins a base URL as the SDKs do: <base>/chat/completions
// (https://api.openai.com/v1, Gemini's …/v1beta/openai/, Ollama's …/v1).
// A URL that already ends in /chat/completions is kept, and a bare host
// gets OpenAI's base path /v1.
func openaiEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return raw
	case p == "":
		u.Path = "/v1/chat/completions"
	default:
		u.Path = p + "/chat/completions"
	}
	u.RawPath = ""
	return u.String()
}

type openaiRequest struct {
	Model               string          `json:"model"`
	Messages            []openaiMessage `json:"messages"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	MaxTokens           int             `json:"max_tokens,omitempty"`
	MaxCompletionTokens int             `json:"max_completion_tokens,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
}

// openaiMessage is a message of the Chat Completions API (and of the
// messages format): content is a string, or a list of parts when the
// message has images.
type openaiMessage struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
}

type openaiPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text,omitempty"`
	ImageURL *openaiImageURL `json:"image_url,omitempty"`
}

type openaiImageURL struct {
	URL string `json:"url"`
}

// openaiMessages converts ms: a user message with images becomes
// [{type: text}, {type: image_url}…].
func openaiMessages(ms []Message) []openaiMessage {
	out := make([]openaiMessage, 0, len(ms)+1)
	for _, m := range ms {
		if len(m.Images) == 0 {
			out = append(out, openaiMessage{Role: m.Role, Content: m.Content})
			continue
		}
		parts := make([]openaiPart, 0, len(m.Images)+1)
		if m.Content != "" {
			parts = append(parts, openaiPart{Type: "text", Text: m.Content})
		}
		for _, img := range m.Images {
			parts = append(parts, openaiPart{Type: "image_url", ImageURL: &openaiImageURL{URL: img}})
		}
		out = append(out, openaiMessage{Role: m.Role, Content: parts})
	}
	return out
}

// encodeOpenAI writes {model, messages, …}: the system message first, then
// the conversation ending with the user's turn. The API refuses an empty
// messages list: without a system message and user input it is ErrNoInput.
func encodeOpenAI(buf *bytes.Buffer, _ *Connection, r *Request) error {
	ms := turns(r.Messages)
	if r.System != "" {
		ms = append([]Message{{Role: "system", Content: r.System}}, ms...)
	}
	if len(ms) == 0 {
		return ErrNoInput
	}
	o := r.Options
	return encodeJSON(buf, &openaiRequest{
		Model: r.Model, Messages: openaiMessages(ms),
		Temperature: o.Temperature, TopP: o.TopP, MaxTokens: o.MaxTokens,
		MaxCompletionTokens: o.MaxCompletionTokens, Stop: o.Stop,
	})
}

type openaiAnswer struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content json.RawMessage `json:"content"`
			Refusal *string         `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// decodeOpenAI reads choices[0].message: its content (a string, or a list
// of text parts) as text, or its refusal when content is null. The model,
// finish_reason and usage go to Answer.Call. Unknown fields are ignored:
// the API adds fields over time.
func decodeOpenAI(body []byte, r *Request) (*Answer, error) {
	var o openaiAnswer
	if err := decodeObject(body, &o); err != nil {
		return nil, err
	}
	if len(o.Choices) == 0 {
		return nil, invalid("choices", "needs at least one choice")
	}
	c := &o.Choices[0]
	path := "choices[0].message.content"
	if raw := bytes.TrimSpace(c.Message.Content); (len(raw) == 0 || string(raw) == "null") && c.Message.Refusal == nil {
		return nil, invalid(path, "is required")
	}
	text, err := openaiContent(c.Message.Content)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" && c.Message.Refusal != nil {
		text, path = *c.Message.Refusal, "choices[0].message.refusal"
	}
	a, err := textAnswer(path, text)
	if err != nil {
		return nil, err
	}
	call := &engine.Call{Format: string(FormatOpenAI), Model: firstNonEmpty(o.Model, r.Model), StopReason: c.FinishReason}
	if path == "choices[0].message.refusal" {
		call.StopReason = "refusal"
	}
	if o.Usage != nil {
		call.InputTokens, call.OutputTokens = o.Usage.PromptTokens, o.Usage.CompletionTokens
	}
	a.Call = call
	return a, nil
}

// openaiContent reads message content: a string, null, or [{type: text, text}…].
func openaiContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", typeError("choices[0].message.content", err)
		}
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", invalid("choices[0].message.content", "must be a string or a list of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}
