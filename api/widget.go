package api

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
)

// Limits of widget requests.
const (
	maxPromptLen  = 1000
	maxSessionLen = 128
)

// widgetRequest is the Chat Widget's webhook request.
type widgetRequest struct {
	Prompt    string `json:"prompt" jsonschema:"required"`
	SessionID string `json:"session_id" jsonschema:"required"`
}

// widgetAnswer is the Chat Widget's answer: Output alone when the turn
// said only text, else Content, ContentType and ContentAttributes.
type widgetAnswer struct {
	Output            *string           `json:"output,omitempty"`
	Content           string            `json:"content,omitempty"`
	ContentType       string            `json:"content_type,omitempty"`
	ContentAttributes *widgetAttributes `json:"content_attributes,omitempty"`
}

// widgetAttributes hold a rich turn: the widget's own shapes (items of an
// article, cards, a form) and, so that nothing is lost, every response of
// the turn in storyflow's model.
type widgetAttributes struct {
	Items     []widgetItem      `json:"items,omitempty"`
	Cards     *widgetCards      `json:"cards,omitempty"`
	Form      *widgetForm       `json:"form,omitempty"`
	Responses []engine.Response `json:"responses"`
}

// widgetItem is a button as an article item. A postback or goto button
// has a Value (send it back as the prompt to press it); url, webview and
// phone buttons have a Link (tel: for phone).
type widgetItem struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Value       string `json:"value,omitempty"`
	Link        string `json:"link,omitempty"`
}

type widgetCards struct {
	Title string       `json:"title"`
	Cards []widgetCard `json:"cards"`
}

type widgetCard struct {
	Title       string       `json:"title,omitempty"`
	Description string       `json:"description,omitempty"`
	Image       string       `json:"image,omitempty"`
	Link        string       `json:"link,omitempty"`
	LinkText    string       `json:"linkText,omitempty"`
	Buttons     []widgetItem `json:"buttons,omitempty"`
}

type widgetForm struct {
	Title       string        `json:"title"`
	Description string        `json:"description,omitempty"`
	Fields      []widgetField `json:"fields"`
}

type widgetField struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Label    string `json:"label"`
	Required bool   `json:"required"`
}

func (r *widgetRequest) check() error {
	if r.Prompt == "" {
		return badRequest("field prompt is required")
	}
	if n := utf8.RuneCountInString(r.Prompt); n > maxPromptLen {
		return badRequest("field prompt must be at most %d characters, got %d", maxPromptLen, n)
	}
	if r.SessionID == "" {
		return badRequest("field session_id is required")
	}
	return checkLen("session_id", r.SessionID, maxSessionLen)
}

// widget: POST /v1/widget/:storyId, the Chat Widget's webhook.
func (s *Server) widget(c *fiber.Ctx) error {
	storyID, err := channelStory(c)
	if err != nil {
		return err
	}
	var req widgetRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	chatID := sessionChatID(channelWidget, storyID, req.SessionID)
	chat, out, err := s.sessionTurn(storyID, chatID, req.Prompt, sessionUser{ExternalID: req.SessionID})
	if err != nil {
		return err
	}
	return c.JSON(s.widgetAnswer(chat, out))
}

// widgetAnswer shapes a turn for the Chat Widget: text only is output;
// cards and images make a card, quick replies and buttons an article; a
// question with a validator and nothing to press makes a form.
func (s *Server) widgetAnswer(chat *engine.Chat, out []engine.Response) widgetAnswer {
	var texts []string
	rich := false
	for i := range out {
		if t := textOf(&out[i]); t != "" {
			texts = append(texts, t)
			continue
		}
		rich = true
		if out[i].Title != "" {
			texts = append(texts, out[i].Title)
		}
	}
	content := strings.Join(texts, "\n\n")
	label := ""
	if len(texts) > 0 {
		label = texts[len(texts)-1]
	}
	form := s.formOf(chat, label)
	if !rich && form == nil {
		return widgetAnswer{Output: &content}
	}
	a := widgetAnswer{Content: content, ContentAttributes: &widgetAttributes{Responses: out}}
	attrs := a.ContentAttributes
	for i := range out {
		r := &out[i]
		switch r.Type {
		case engine.TypeQuickReplies, engine.TypeButtons:
			for _, b := range r.Buttons {
				it := itemOf(b)
				it.Description = r.Title
				attrs.Items = append(attrs.Items, it)
			}
		case engine.TypeCards:
			if attrs.Cards == nil {
				attrs.Cards = &widgetCards{}
			}
			for _, e := range r.Elements {
				wc := widgetCard{Title: e.Title, Description: e.Subtitle, Image: e.ImageURL}
				for _, b := range e.Buttons {
					it := itemOf(b)
					if wc.Link == "" && it.Link != "" {
						wc.Link, wc.LinkText = it.Link, it.Title
					}
					wc.Buttons = append(wc.Buttons, it)
				}
				attrs.Cards.Cards = append(attrs.Cards.Cards, wc)
			}
		case engine.TypeImage:
			if attrs.Cards == nil {
				attrs.Cards = &widgetCards{}
			}
			attrs.Cards.Cards = append(attrs.Cards.Cards, widgetCard{Image: r.ImageURL})
		case engine.TypeFile:
			attrs.Items = append(attrs.Items, widgetItem{Type: "file", Title: "File", Link: r.FileURL})
		}
	}
	switch {
	case form != nil:
		a.ContentType = "form"
		attrs.Form = form
	case attrs.Cards != nil:
		a.ContentType = "card"
	case len(attrs.Items) > 0:
		a.ContentType = "article"
	default:
		a.ContentType = "article"
	}
	return a
}

// formOf returns the form of a chat that waits at a question with a
// validator and nothing to press in its prompt, or nil.
func (s *Server) formOf(chat *engine.Chat, label string) *widgetForm {
	if chat.Status != engine.StatusActive || !chat.Waiting {
		return nil
	}
	st, ok := s.stories.get(chat.StoryID, chat.StoryVersion)
	if !ok {
		return nil
	}
	info := st.Nodes[chat.Node]
	if info == nil {
		return nil
	}
	q, ok := info.Node.(*nodes.Question)
	if !ok || q.Validate == "" {
		return nil
	}
	for _, r := range q.Responses {
		switch r.Type() {
		case engine.TypeQuickReplies, engine.TypeButtons, engine.TypeCards:
			return nil
		}
	}
	typ := "text"
	switch q.Validate {
	case "email", "number", "url":
		typ = q.Validate
	case "phone":
		typ = "tel"
	}
	id := q.Save
	if id == "" {
		id = chat.Node
	}
	if label == "" {
		label = info.Name
	}
	return &widgetForm{Title: info.Name, Fields: []widgetField{{ID: id, Type: typ, Label: label, Required: true}}}
}

func itemOf(b engine.Button) widgetItem {
	it := widgetItem{Type: b.Type, Title: b.Title}
	switch b.Type {
	case "postback", "goto":
		it.Value = b.Value
	case "phone":
		it.Link = "tel:" + b.Value
	default:
		it.Link = b.Value
	}
	return it
}

// widgetSession reads session_id from a widget request for the session
// rate limit; "" when the body holds none.
func widgetSession(body []byte) string {
	var r struct {
		SessionID string `json:"session_id"`
	}
	if json.Unmarshal(body, &r) != nil || len(r.SessionID) > maxSessionLen*4 {
		return ""
	}
	return r.SessionID
}
