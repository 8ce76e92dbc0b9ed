package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
)

// Format is the wire format of a webhook call.
type Format string

// Formats.
const (
	// FormatChatbot is ChatBot.com's: the chat's data in, {responses, attributes} out (SPEC §3).
	FormatChatbot Format = "chatbot"
	// FormatMessages is the chatbot-platform style: the transcript as
	// OpenAI-style messages in, {content, attachments, metadata} out.
	FormatMessages Format = "messages"
	// FormatWidget is the chat widget's: {prompt, session_id} in, {output} or rich content out.
	FormatWidget Format = "widget"
	// FormatOpenAI calls an OpenAI-compatible /v1/chat/completions endpoint.
	FormatOpenAI Format = "openai"
)

// Formats lists the format names.
var Formats = []string{string(FormatChatbot), string(FormatMessages), string(FormatWidget), string(FormatOpenAI)}

// DefaultHistory is how many messages the messages and openai formats send.
const DefaultHistory = 10

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
	// Messages is the conversation window (messages and openai formats).
	Messages []Message
	// Metadata is the chat's stored metadata (messages format).
	Metadata map[string]any
	// Model and System are the openai format's settings.
	Model, System string
	// GotoOK tells whether a goto button names a node (nil: any value).
	GotoOK func(string) bool
	// KeepBody keeps the raw answer in Result.Body (the API's test route).
	KeepBody bool
}

// Message is one message of a conversation, OpenAI style.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Window returns the conversation as messages: the transcript, then out
// (responses of the turn not in it yet); consecutive messages of one role are
// joined by a newline, and the last n are kept.
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
	return ms
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

// endpoint returns the URL a format posts to: openai adds
// /v1/chat/completions to a base URL.
func endpoint(f Format, raw string) string {
	if f != FormatOpenAI {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return raw
	case strings.HasSuffix(p, "/v1"):
		u.Path = p + "/chat/completions"
	default:
		u.Path = p + "/v1/chat/completions"
	}
	return u.String()
}

// encode writes the request body of r's format to buf.
func encode(buf *bytes.Buffer, conn *Connection, r *Request) error {
	switch r.Format {
	case FormatChatbot, "":
		return encodeChatbot(buf, conn, r)
	case FormatMessages:
		m := messagesRequest{
			Messages: r.Messages, ConversationID: r.ChatID,
			User:     messagesUser{ID: r.UserID, Name: str(r.UserAttributes["default_name"]), Email: str(r.UserAttributes["default_email"])},
			Bot:      messagesBot{ID: r.StoryID, Name: r.StoryName},
			Metadata: r.Metadata,
		}
		if m.Messages == nil {
			m.Messages = []Message{}
		}
		if m.Metadata == nil {
			m.Metadata = map[string]any{}
		}
		return encodeJSON(buf, &m)
	case FormatWidget:
		prompt := r.Input
		if prompt == "" {
			for i := len(r.Messages) - 1; i >= 0; i-- {
				if r.Messages[i].Role == "user" {
					prompt = r.Messages[i].Content
					break
				}
			}
		}
		return encodeJSON(buf, &widgetRequest{Prompt: cut(prompt, 1000), SessionID: r.ChatID})
	case FormatOpenAI:
		o := openaiRequest{Model: r.Model, Messages: make([]Message, 0, len(r.Messages)+1)}
		if r.System != "" {
			o.Messages = append(o.Messages, Message{Role: "system", Content: r.System})
		}
		o.Messages = append(o.Messages, r.Messages...)
		return encodeJSON(buf, &o)
	}
	return fmt.Errorf("unknown format %q", r.Format)
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

type messagesRequest struct {
	Messages       []Message      `json:"messages"`
	ConversationID string         `json:"conversation_id"`
	User           messagesUser   `json:"user"`
	Bot            messagesBot    `json:"bot"`
	Metadata       map[string]any `json:"metadata"`
}

type messagesUser struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

type messagesBot struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type widgetRequest struct {
	Prompt    string `json:"prompt"`
	SessionID string `json:"session_id"`
}

type openaiRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
}

// decode decodes a 2xx answer of format f.
func decode(f Format, body []byte, gotoOK func(string) bool) (*Answer, error) {
	switch f {
	case FormatMessages:
		return decodeMessages(body)
	case FormatWidget:
		return decodeWidget(body)
	case FormatOpenAI:
		return decodeOpenAI(body)
	}
	return DecodeAnswer(body, gotoOK)
}

type messagesAnswer struct {
	Content     *string          `json:"content"`
	Attachments []attachment     `json:"attachments"`
	Metadata    *json.RawMessage `json:"metadata"`
}

type attachment struct {
	Type     string `json:"type"`
	URL      string `json:"url"`
	Name     string `json:"name"`
	Filename string `json:"filename"`
	MimeType string `json:"mime_type"`
}

// decodeMessages reads {content, attachments, metadata}: content becomes
// text responses, attachments image or file responses, and an object
// metadata is stored in attributes.metadata.
func decodeMessages(body []byte) (*Answer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, ErrNotJSON
	}
	if err := objectStart(body); err != nil {
		return nil, err
	}
	var m messagesAnswer
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, typeError("", err)
	}
	a := &Answer{}
	if m.Content != nil {
		a.Responses = texts(*m.Content)
	}
	for i, at := range m.Attachments {
		path := fmt.Sprintf("attachments[%d]", i)
		typ := at.Type
		if typ == "" {
			typ = "file"
			if strings.HasPrefix(at.MimeType, "image/") {
				typ = "image"
			}
		}
		r := engine.Response{Type: engine.TypeFile, FileURL: at.URL}
		switch typ {
		case "image":
			r = engine.Response{Type: engine.TypeImage, ImageURL: at.URL}
		case "file":
		default:
			return nil, invalid(path+".type", "must be image or file, got %q", typ)
		}
		if at.URL == "" {
			return nil, invalid(path+".url", "is required")
		}
		if err := checkResponse(&r, nil); err != nil {
			return nil, within(path, err)
		}
		a.Responses = append(a.Responses, r)
	}
	if len(a.Responses) == 0 {
		return nil, invalid("content", "is required")
	}
	if m.Metadata != nil {
		raw := bytes.TrimSpace(*m.Metadata)
		switch {
		case string(raw) == "null":
		case len(raw) > 0 && raw[0] == '{':
			var md map[string]any
			if err := json.Unmarshal(raw, &md); err != nil {
				return nil, typeError("metadata", err)
			}
			a.Attributes = map[string]any{"metadata": md}
		default:
			return nil, invalid("metadata", "must be an object")
		}
	}
	return a, nil
}

type widgetAnswer struct {
	Output            *string         `json:"output"`
	Content           *string         `json:"content"`
	ContentType       string          `json:"content_type"`
	ContentAttributes json.RawMessage `json:"content_attributes"`
}

type widgetItem struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Link        string `json:"link"`
}

type widgetCard struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Image       string `json:"image"`
	Link        string `json:"link"`
	LinkText    string `json:"linkText"`
	Price       string `json:"price"`
}

type widgetForm struct {
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Fields      []widgetFormField `json:"fields"`
}

type widgetFormField struct {
	Label    string            `json:"label"`
	ID       string            `json:"id"`
	Required bool              `json:"required"`
	Options  []json.RawMessage `json:"options"`
}

// decodeWidget reads {output} or {content, content_type, content_attributes}
// and maps rich content onto storyflow's responses: an article's items become
// texts (title, description, link), cards a cards response (a card without an
// image becomes a text), a form a text listing its fields (and quick replies
// for a field with 1..13 options).
func decodeWidget(body []byte) (*Answer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, ErrNotJSON
	}
	if err := objectStart(body); err != nil {
		return nil, err
	}
	var w widgetAnswer
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, typeError("", err)
	}
	a := &Answer{}
	if w.Output != nil {
		a.Responses = append(a.Responses, texts(*w.Output)...)
	}
	if w.Content != nil {
		a.Responses = append(a.Responses, texts(*w.Content)...)
	}
	attrs := func(v any) error {
		if len(w.ContentAttributes) == 0 {
			return invalid("content_attributes", "is required for content_type %s", w.ContentType)
		}
		if err := json.Unmarshal(w.ContentAttributes, v); err != nil {
			return typeError("content_attributes", err)
		}
		return nil
	}
	switch w.ContentType {
	case "", "text":
	case "article":
		var ca struct {
			Items []widgetItem `json:"items"`
		}
		if err := attrs(&ca); err != nil {
			return nil, err
		}
		for _, it := range ca.Items {
			a.Responses = append(a.Responses, texts(lines(it.Title, it.Description, it.Link))...)
		}
	case "card":
		cards, err := widgetCards(w.ContentAttributes)
		if err != nil {
			return nil, err
		}
		a.Responses = append(a.Responses, cardResponses(cards)...)
	case "form":
		var ca struct {
			Form widgetForm `json:"form"`
		}
		if err := attrs(&ca); err != nil {
			return nil, err
		}
		a.Responses = append(a.Responses, formResponses(&ca.Form)...)
	default:
		return nil, invalid("content_type", "must be article, card or form, got %q", w.ContentType)
	}
	if len(a.Responses) == 0 {
		return nil, invalid("output", "output or content is required")
	}
	for i := range a.Responses {
		if err := checkResponse(&a.Responses[i], nil); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// widgetCards reads content_attributes.cards: {title, cards: [...]} or a list.
func widgetCards(raw json.RawMessage) ([]widgetCard, error) {
	var ca struct {
		Cards json.RawMessage `json:"cards"`
	}
	if len(raw) == 0 {
		return nil, invalid("content_attributes", "is required for content_type card")
	}
	if err := json.Unmarshal(raw, &ca); err != nil {
		return nil, typeError("content_attributes", err)
	}
	c := bytes.TrimSpace(ca.Cards)
	var cards []widgetCard
	switch {
	case len(c) > 0 && c[0] == '[':
		if err := json.Unmarshal(c, &cards); err != nil {
			return nil, typeError("content_attributes.cards", err)
		}
	case len(c) > 0 && c[0] == '{':
		var group struct {
			Cards []widgetCard `json:"cards"`
		}
		if err := json.Unmarshal(c, &group); err != nil {
			return nil, typeError("content_attributes.cards", err)
		}
		cards = group.Cards
	}
	if len(cards) == 0 {
		return nil, invalid("content_attributes.cards", "needs at least one card")
	}
	return cards, nil
}

func cardResponses(cards []widgetCard) []engine.Response {
	var out []engine.Response
	var elems []engine.Card
	flush := func() {
		for len(elems) > 0 {
			n := min(len(elems), 10)
			out = append(out, engine.Response{Type: engine.TypeCards, Elements: elems[:n:n]})
			elems = elems[n:]
		}
	}
	for _, wc := range cards {
		title := firstNonEmpty(wc.Title, wc.Price, "Item")
		if wc.Image == "" || utf8.RuneCountInString(wc.Image) > 2048 {
			flush()
			out = append(out, texts(lines(wc.Title, wc.Price, wc.Description, wc.Link))...)
			continue
		}
		sub := wc.Description
		if wc.Price != "" {
			sub = strings.TrimSpace(wc.Price + " · " + wc.Description)
			sub = strings.TrimSuffix(sub, " ·")
		}
		c := engine.Card{Title: cut(title, 80), Subtitle: cut(firstNonEmpty(sub, title), 80), ImageURL: wc.Image}
		if wc.Link != "" && utf8.RuneCountInString(wc.Link) <= 2048 {
			c.Buttons = []engine.Button{{Type: "url", Title: cut(firstNonEmpty(wc.LinkText, "Open"), 20), Value: wc.Link}}
		} else {
			c.Buttons = []engine.Button{{Type: "postback", Title: cut(title, 20), Value: cut(title, 2000)}}
		}
		elems = append(elems, c)
	}
	flush()
	return out
}

func formResponses(f *widgetForm) []engine.Response {
	out := texts(lines(f.Title, f.Description))
	var labels []string
	for _, fl := range f.Fields {
		l := firstNonEmpty(fl.Label, fl.ID)
		if l == "" {
			continue
		}
		if fl.Required {
			l += " (required)"
		}
		labels = append(labels, l)
	}
	if len(labels) > 0 {
		out = append(out, texts("Please tell me: "+strings.Join(labels, ", "))...)
	}
	for _, fl := range f.Fields {
		var bs []engine.Button
		for _, o := range fl.Options {
			label, value := option(o)
			if label != "" && value != "" {
				bs = append(bs, engine.Button{Type: "postback", Title: cut(label, 20), Value: cut(value, 2000)})
			}
		}
		if len(bs) > 0 && len(bs) <= 13 {
			out = append(out, engine.Response{Type: engine.TypeQuickReplies, Title: cut(firstNonEmpty(fl.Label, fl.ID, "Choose one"), 640), Buttons: bs})
		}
	}
	return out
}

// option reads a form field option: "x" or {label, value}.
func option(raw json.RawMessage) (label, value string) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s
	}
	var o struct {
		Label string `json:"label"`
		Value any    `json:"value"`
	}
	if json.Unmarshal(raw, &o) == nil {
		v := fmt.Sprint(o.Value)
		if o.Value == nil {
			v = o.Label
		}
		return firstNonEmpty(o.Label, v), v
	}
	return "", ""
}

type openaiAnswer struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// decodeOpenAI reads choices[0].message.content as text.
func decodeOpenAI(body []byte) (*Answer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, ErrNotJSON
	}
	if err := objectStart(body); err != nil {
		return nil, err
	}
	var o openaiAnswer
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, typeError("", err)
	}
	if len(o.Choices) == 0 || o.Choices[0].Message.Content == nil {
		return nil, invalid("choices[0].message.content", "is required")
	}
	a := &Answer{Responses: texts(*o.Choices[0].Message.Content)}
	if len(a.Responses) == 0 {
		return nil, invalid("choices[0].message.content", "is empty")
	}
	for i := range a.Responses {
		if err := checkResponse(&a.Responses[i], nil); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// errorText finds the message of an error answer: {"error": "…"} or
// {"error": {"message": "…"}}, as one line of at most 200 characters.
func errorText(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return ""
	}
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) != nil {
		var o struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &o) != nil {
			return ""
		}
		s = o.Message
	}
	return cut(strings.Join(strings.Fields(s), " "), 200)
}

// texts splits s into text responses of at most 1024 characters, at line
// or word breaks where it can.
func texts(s string) []engine.Response {
	s = strings.TrimSpace(s)
	var out []engine.Response
	for s != "" {
		chunk := s
		if utf8.RuneCountInString(s) > 1024 {
			chunk = cut(s, 1024)
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

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// SampleRequest is a request with sample chat data, for the API's test
// route: it keeps the raw answer and accepts any goto target.
func SampleRequest(f Format, storyID, storyName string) *Request {
	return &Request{
		Format: f, ChatID: "test-chat", UserID: "test-user", StoryID: storyID, StoryName: storyName,
		NodeID: "test", NodeName: "Test",
		UserAttributes: map[string]any{"default_name": "Test User", "default_email": "test@example.com"},
		Attributes:     map[string]any{},
		Input:          "Hello",
		Messages:       []Message{{Role: "user", Content: "Hello"}},
		KeepBody:       true,
	}
}
