package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
)

// The widget format is the chat widget's: {prompt, session_id} in,
// {output} or {content, content_type, content_attributes} out.
var widgetWire = &wire{
	timeout: DefaultTimeout,
	sign:    true,
	retry:   retryBusy,
}

// MaxPrompt is the longest prompt the widget document's backend accepts.
const MaxPrompt = 1000

// ErrPromptTooLong is a widget prompt over MaxPrompt characters: the
// document's backend answers 400 "Prompt too long", so it is not sent.
var ErrPromptTooLong = fmt.Errorf("prompt too long: the widget format allows %d characters", MaxPrompt)

type widgetRequest struct {
	Prompt    string `json:"prompt"`
	SessionID string `json:"session_id"`
}

// encodeWidget writes {prompt, session_id}: the user's input (the last
// user message when the turn has none) and the chat id. An empty prompt
// (ErrNoInput) or one over 1000 characters (ErrPromptTooLong) is not sent:
// the document's validation refuses both.
func encodeWidget(buf *bytes.Buffer, _ *Connection, r *Request) error {
	prompt := r.Input
	for i := len(r.Messages) - 1; i >= 0 && prompt == ""; i-- {
		if r.Messages[i].Role == "user" {
			prompt = r.Messages[i].Content
		}
	}
	switch n := utf8.RuneCountInString(prompt); {
	case strings.TrimSpace(prompt) == "":
		return ErrNoInput
	case n > MaxPrompt:
		return fmt.Errorf("%w, got %d", ErrPromptTooLong, n)
	}
	return encodeJSON(buf, &widgetRequest{Prompt: prompt, SessionID: r.ChatID})
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
	SubmitURL   string            `json:"submitUrl"`
	Fields      []widgetFormField `json:"fields"`
}

type widgetFormField struct {
	Label    string            `json:"label"`
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Required bool              `json:"required"`
	Options  []json.RawMessage `json:"options"`
}

// decodeWidget reads {output} or {content, content_type, content_attributes}
// and maps rich content onto storyflow's responses: an article's items become
// texts (title, description, link), cards a cards response after the group's
// title (a card without an image becomes a text), a form a text listing its
// fields with their types and quick replies for a select, radio or
// checkbox field; a form with a submitUrl is Answer.Form, to be filled in
// the chat and submitted (form.go).
func decodeWidget(body []byte) (*Answer, error) {
	var w widgetAnswer
	if err := decodeObject(body, &w); err != nil {
		return nil, err
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
		title, cards, err := widgetCards(w.ContentAttributes)
		if err != nil {
			return nil, err
		}
		a.Responses = append(a.Responses, texts(title)...)
		a.Responses = append(a.Responses, cardResponses(cards)...)
	case "form":
		var ca struct {
			Form widgetForm `json:"form"`
		}
		if err := attrs(&ca); err != nil {
			return nil, err
		}
		form, err := newForm(&ca.Form)
		if err != nil {
			return nil, err
		}
		if form != nil {
			a.Form = form
			a.Responses = append(a.Responses, texts(lines(ca.Form.Title, ca.Form.Description))...)
		} else {
			a.Responses = append(a.Responses, formResponses(&ca.Form)...)
		}
	default:
		return nil, invalid("content_type", "must be article, card or form, got %q", w.ContentType)
	}
	if len(a.Responses) == 0 && a.Form == nil {
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
func widgetCards(raw json.RawMessage) (string, []widgetCard, error) {
	var ca struct {
		Cards json.RawMessage `json:"cards"`
	}
	if len(raw) == 0 {
		return "", nil, invalid("content_attributes", "is required for content_type card")
	}
	if err := json.Unmarshal(raw, &ca); err != nil {
		return "", nil, typeError("content_attributes", err)
	}
	c := bytes.TrimSpace(ca.Cards)
	var cards []widgetCard
	var title string
	switch {
	case len(c) > 0 && c[0] == '[':
		if err := json.Unmarshal(c, &cards); err != nil {
			return "", nil, typeError("content_attributes.cards", err)
		}
	case len(c) > 0 && c[0] == '{':
		var group struct {
			Title string       `json:"title"`
			Cards []widgetCard `json:"cards"`
		}
		if err := json.Unmarshal(c, &group); err != nil {
			return "", nil, typeError("content_attributes.cards", err)
		}
		title, cards = group.Title, group.Cards
	}
	if len(cards) == 0 {
		return "", nil, invalid("content_attributes.cards", "needs at least one card")
	}
	return title, cards, nil
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
		c := engine.Card{Title: engine.Cut(title, 80), Subtitle: engine.Cut(firstNonEmpty(sub, title), 80), ImageURL: wc.Image}
		if wc.Link != "" && utf8.RuneCountInString(wc.Link) <= 2048 {
			c.Buttons = []engine.Button{{Type: "url", Title: engine.Cut(firstNonEmpty(wc.LinkText, "Open"), 20), Value: wc.Link}}
		} else {
			c.Buttons = []engine.Button{{Type: "postback", Title: engine.Cut(title, 20), Value: engine.Cut(title, 2000)}}
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
		var notes []string
		if t := fieldKind(fl.Type); t != "" {
			notes = append(notes, t)
		}
		if fl.Required {
			notes = append(notes, "required")
		}
		if len(notes) > 0 {
			l += " (" + strings.Join(notes, ", ") + ")"
		}
		labels = append(labels, l)
	}
	if len(labels) > 0 {
		out = append(out, texts("Please tell me: "+strings.Join(labels, ", "))...)
	}
	for _, fl := range f.Fields {
		var bs []engine.Button
		if fl.Type == "checkbox" && len(fl.Options) == 0 {
			bs = []engine.Button{{Type: "postback", Title: "Yes", Value: "yes"}, {Type: "postback", Title: "No", Value: "no"}}
		}
		for _, o := range fl.Options {
			label, value := option(o)
			if label != "" && value != "" {
				bs = append(bs, engine.Button{Type: "postback", Title: engine.Cut(label, 20), Value: engine.Cut(value, 2000)})
			}
		}
		if len(bs) > 0 && len(bs) <= 13 {
			out = append(out, engine.Response{Type: engine.TypeQuickReplies, Title: engine.Cut(firstNonEmpty(fl.Label, fl.ID, "Choose one"), 640), Buttons: bs})
		}
	}
	return out
}

// fieldKind names a form field's type for the listing ("" for free text).
func fieldKind(t string) string {
	switch t {
	case "email":
		return "an email address"
	case "tel", "phone":
		return "a phone number"
	case "number":
		return "a number"
	case "date":
		return "a date"
	case "url":
		return "a URL"
	}
	return ""
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
