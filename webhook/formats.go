package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
)

// Format is the wire format of a webhook call. Each format lives in its
// own file (chatbot.go, messages.go, widget.go, openai.go, anthropic.go).
type Format string

// Formats.
const (
	// FormatChatbot is ChatBot.com's: the chat's data in, {responses, attributes} out (SPEC §3).
	FormatChatbot Format = "chatbot"
	// FormatMessages is the chatbot platform's AI webhook: the transcript as
	// OpenAI-style messages in, {content, attachments, metadata} out.
	FormatMessages Format = "messages"
	// FormatWidget is the chat widget's: {prompt, session_id} in, {output} or rich content out.
	FormatWidget Format = "widget"
	// FormatOpenAI calls an OpenAI-compatible chat completions endpoint.
	FormatOpenAI Format = "openai"
	// FormatAnthropic calls Anthropic's Messages API.
	FormatAnthropic Format = "anthropic"
)

// Formats lists the format names.
var Formats = []string{string(FormatChatbot), string(FormatMessages), string(FormatWidget), string(FormatOpenAI), string(FormatAnthropic)}

// DefaultHistory is how many messages the formats with a history send.
const DefaultHistory = 10

// wire is what the client needs to know of a format.
type wire struct {
	// timeout is the default time of one attempt.
	timeout time.Duration
	// endpoint turns the connection's URL into the URL called (nil: as is).
	endpoint func(raw string) string
	// sign adds X-Storyflow-Timestamp and -Signature when there is a token.
	sign bool
	// auth sends the connection's token as the service's credential.
	auth func(token string) (name, value string)
	// headers are set unless the connection sets them.
	headers map[string]string
	// retry tells which statuses are retried (network errors always are).
	retry func(status int) bool
}

var wires = map[Format]*wire{
	FormatChatbot:   {timeout: DefaultTimeout, sign: true, retry: retry5xx},
	FormatMessages:  messagesWire,
	FormatWidget:    widgetWire,
	FormatOpenAI:    openaiWire,
	FormatAnthropic: anthropicWire,
}

func wireOf(f Format) (*wire, error) {
	if f == "" {
		f = FormatChatbot
	}
	w, ok := wires[f]
	if !ok {
		return nil, fmt.Errorf("unknown format %q", f)
	}
	return w, nil
}

// retry5xx is SPEC §3's rule: 5xx only.
func retry5xx(status int) bool { return status >= 500 }

// retryBusy retries 429 and 5xx (the AI webhook and widget documents list
// 429 as "rate limit" and 503 as "service unavailable").
func retryBusy(status int) bool { return status == 429 || status >= 500 }

// retrySDK is the official OpenAI and Anthropic SDKs' rule: 408, 409, 429
// and 5xx (529 "overloaded" included).
func retrySDK(status int) bool {
	return status == 408 || status == 409 || status == 429 || status >= 500
}

func bearer(token string) (string, string) { return "Authorization", "Bearer " + token }

// Request is the data of one webhook call.
type Request struct {
	Format Format
	// MessageID is the call's id, the same on its retries (a new UUID when empty).
	MessageID                  string
	ChatID, UserID, ExternalID string
	StoryID, StoryName         string
	NodeID, NodeName           string
	UserAttributes, Attributes map[string]any
	// Input is the user input of the turn (the widget's prompt).
	Input string
	// Messages is the conversation window (messages, openai and anthropic).
	Messages []Message
	// Model and System are the openai and anthropic settings.
	Model, System string
	// Options are the model's request options (openai and anthropic).
	Options ModelOptions
	// GotoOK tells whether a goto button names a node (nil: any value).
	GotoOK func(string) bool
	// KeepBody keeps the raw answer in Result.Body (the API's test route).
	KeepBody bool
}

// ModelOptions are request options of the LLM formats; zero values are
// not sent.
type ModelOptions struct {
	// Temperature (openai 0..2, anthropic 0..1) and TopP (0..1).
	Temperature, TopP *float64
	// MaxTokens caps the reply (anthropic requires it).
	MaxTokens int
	// MaxCompletionTokens is openai's newer name for it (o-series models).
	MaxCompletionTokens int
	// Stop sequences (openai: at most 4).
	Stop []string
}

// Message is one message of a conversation, OpenAI style. A user message
// may carry images (http(s) or data: URLs) after its text.
type Message struct {
	Role    string   `json:"role"`
	Content string   `json:"content"`
	Images  []string `json:"images,omitempty"`
}

// ErrNoInput is a call that would send the service nothing to answer: no
// user message (messages, openai without a system message, anthropic) or
// no prompt (widget). The request is not sent.
var ErrNoInput = errors.New("nothing to send: the chat has no user input yet")

// Window returns the conversation as messages: the transcript, then out
// (responses of the turn not in it yet). Consecutive messages of one role
// are joined by a newline, the last n are kept, and the window starts at a
// user message (chat templates that need alternating roles refuse a first
// assistant message).
func Window(transcript []engine.Entry, out []engine.Response, n int) []Message {
	if n <= 0 {
		n = DefaultHistory
	}
	var ms []Message
	add := func(role, content string) {
		if content == "" {
			return
		}
		if k := len(ms) - 1; k >= 0 && ms[k].Role == role {
			ms[k].Content += "\n" + content
			return
		}
		ms = append(ms, Message{Role: role, Content: content})
	}
	for i := range transcript {
		e := &transcript[i]
		switch {
		case e.Input != nil && e.From == "user":
			add("user", e.Input.Value())
		case e.Response != nil:
			add("assistant", ResponseText(e.Response))
		}
	}
	for i := range out {
		add("assistant", ResponseText(&out[i]))
	}
	if len(ms) > n {
		ms = ms[len(ms)-n:]
	}
	for len(ms) > 0 && ms[0].Role != "user" {
		ms = ms[1:]
	}
	return ms
}

// turns makes ms fit the LLM APIs: it starts with the user, alternates
// (consecutive messages of one role are joined) and ends with the user's
// turn, which a model asked to answer must see last (Anthropic would
// continue a last assistant message as its own prefix).
func turns(ms []Message) []Message {
	for len(ms) > 0 && ms[0].Role != "user" {
		ms = ms[1:]
	}
	for len(ms) > 0 && ms[len(ms)-1].Role != "user" {
		ms = ms[:len(ms)-1]
	}
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		if k := len(out) - 1; k >= 0 && out[k].Role == m.Role {
			out[k].Content = lines(out[k].Content, m.Content)
			out[k].Images = append(slices.Clip(out[k].Images), m.Images...)
			continue
		}
		out = append(out, m)
	}
	return out
}

// ResponseText is how a bot response reads as plain text.
func ResponseText(r *engine.Response) string {
	switch r.Type {
	case engine.TypeText:
		return r.Message
	case engine.TypeRandomText:
		if len(r.Messages) > 0 {
			return r.Messages[0]
		}
	case engine.TypeQuickReplies, engine.TypeButtons:
		return r.Title
	case engine.TypeCards:
		var b strings.Builder
		for i, c := range r.Elements {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(c.Title)
			if c.Subtitle != "" {
				b.WriteString(": " + c.Subtitle)
			}
		}
		return b.String()
	}
	return ""
}

// endpoint returns the URL format f posts to for the connection URL raw.
func endpoint(w *wire, raw string) string {
	if w.endpoint == nil {
		return raw
	}
	return w.endpoint(raw)
}

// encode writes the request body of r's format to buf. (A switch, not a
// function in wire: an indirect call would move every Request to the heap.)
func encode(buf *bytes.Buffer, conn *Connection, r *Request) error {
	switch r.Format {
	case FormatChatbot, "":
		return encodeChatbot(buf, conn, r)
	case FormatMessages:
		return encodeMessages(buf, conn, r)
	case FormatWidget:
		return encodeWidget(buf, conn, r)
	case FormatOpenAI:
		return encodeOpenAI(buf, conn, r)
	case FormatAnthropic:
		return encodeAnthropic(buf, conn, r)
	}
	return fmt.Errorf("unknown format %q", r.Format)
}

// decode decodes a 2xx answer of r's format.
func decode(body []byte, r *Request) (*Answer, error) {
	switch r.Format {
	case FormatMessages:
		return decodeMessages(body)
	case FormatWidget:
		return decodeWidget(body)
	case FormatOpenAI:
		return decodeOpenAI(body, r)
	case FormatAnthropic:
		return decodeAnthropic(body, r)
	}
	return DecodeAnswer(body, r.GotoOK)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func encodeJSON(buf *bytes.Buffer, v any) error {
	e := json.NewEncoder(buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// errorText finds the reason in an error answer, as one line of at most 200
// characters: {"error": "…"}, {"error": {"message": "…"}} (OpenAI,
// Anthropic), {"output": "…"} (the widget document's apology) or
// {"detail": "…"} (FastAPI; a list of {msg} is joined).
func errorText(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return ""
	}
	var e struct {
		Error  json.RawMessage `json:"error"`
		Output json.RawMessage `json:"output"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var s string
	switch {
	case len(e.Error) > 0 && json.Unmarshal(e.Error, &s) == nil:
	case len(e.Error) > 0:
		var o struct {
			Message string `json:"message"`
		}
		json.Unmarshal(e.Error, &o)
		s = o.Message
	case len(e.Output) > 0:
		json.Unmarshal(e.Output, &s)
	case len(e.Detail) > 0 && json.Unmarshal(e.Detail, &s) == nil:
	case len(e.Detail) > 0:
		var list []struct { // FastAPI's validation errors
			Msg string `json:"msg"`
			Loc []any  `json:"loc"`
		}
		json.Unmarshal(e.Detail, &list)
		var parts []string
		for _, d := range list {
			if d.Msg == "" {
				continue
			}
			if len(d.Loc) > 0 {
				loc := make([]string, len(d.Loc))
				for i, l := range d.Loc {
					loc[i] = fmt.Sprint(l)
				}
				parts = append(parts, strings.Join(loc, ".")+": "+d.Msg)
			} else {
				parts = append(parts, d.Msg)
			}
		}
		s = strings.Join(parts, "; ")
	}
	return engine.Cut(strings.Join(strings.Fields(s), " "), 200)
}

// texts splits s into text responses of at most 1024 characters, at line
// or word breaks where it can.
func texts(s string) []engine.Response {
	s = strings.TrimSpace(s)
	var out []engine.Response
	for s != "" {
		chunk := s
		if utf8.RuneCountInString(s) > 1024 {
			chunk = engine.Cut(s, 1024)
			if i := strings.LastIndexAny(chunk, "\n"); i > len(chunk)/2 {
				chunk = chunk[:i]
			} else if i := strings.LastIndexFunc(chunk, unicode.IsSpace); i > len(chunk)/2 {
				chunk = chunk[:i]
			}
		}
		s = strings.TrimSpace(s[len(chunk):])
		chunk = strings.TrimSpace(chunk)
		if chunk != "" {
			out = append(out, engine.Response{Type: engine.TypeText, Delay: engine.DefaultDelay, Message: chunk})
		}
	}
	return out
}

// textAnswer is an answer of text responses, checked against SPEC §2.
func textAnswer(path, s string) (*Answer, error) {
	a := &Answer{Responses: texts(s)}
	if len(a.Responses) == 0 {
		return nil, invalid(path, "is empty")
	}
	for i := range a.Responses {
		if err := checkResponse(&a.Responses[i], nil); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// decodeObject checks that body is a JSON object and decodes it into v.
func decodeObject(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ErrNotJSON
	}
	if err := objectStart(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return typeError("", err)
	}
	return nil
}

func lines(parts ...string) string {
	var ne []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			ne = append(ne, p)
		}
	}
	return strings.Join(ne, "\n")
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
