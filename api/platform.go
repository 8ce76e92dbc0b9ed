package api

import (
	"bytes"
	"encoding/json"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
)

// maxPlatformMessages bounds the messages of a platform request.
const maxPlatformMessages = 1000

// platformRequest is the Chatbot Platform's webhook request: the
// conversation's messages (OpenAI's shape), its id, the user, the bot and
// metadata.
type platformRequest struct {
	Messages       []platformMessage `json:"messages" jsonschema:"required"`
	ConversationID string            `json:"conversation_id" jsonschema:"required"`
	User           map[string]any    `json:"user"`
	Bot            map[string]any    `json:"bot"`
	Metadata       map[string]any    `json:"metadata"`
}

// platformMessage is one message; Content is a string or a list of parts
// ({type: text, text} or {type: image_url, image_url: {url}}).
type platformMessage struct {
	Role    string          `json:"role" jsonschema:"required"`
	Content json.RawMessage `json:"content" jsonschema:"required"`
}

type platformPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// platformAnswer is the answer: the turn as text, its images and files as
// attachments, and storyflow's view of the chat as metadata.
type platformAnswer struct {
	Content     string               `json:"content"`
	Attachments []platformAttachment `json:"attachments"`
	Metadata    platformMetadata     `json:"metadata"`
}

type platformAttachment struct {
	URL      string `json:"url"`
	Filename string `json:"filename"`
	MimeType string `json:"mime_type,omitempty"`
}

type platformMetadata struct {
	ChatID    string            `json:"chatId"`
	StoryID   string            `json:"storyId"`
	Status    engine.Status     `json:"status"`
	Node      string            `json:"node"`
	Responses []engine.Response `json:"responses"`
}

// input returns the text of the last user message: its text parts, then
// the URLs of its images, one per line.
func (r *platformRequest) input() (string, error) {
	if len(r.Messages) == 0 {
		return "", badRequest("field messages is required")
	}
	if len(r.Messages) > maxPlatformMessages {
		return "", badRequest("field messages holds %d messages; at most %d", len(r.Messages), maxPlatformMessages)
	}
	var last *platformMessage
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			last = &r.Messages[i]
			break
		}
	}
	if last == nil {
		return "", badRequest("messages hold no user message")
	}
	c := bytes.TrimSpace(last.Content)
	var lines []string
	switch {
	case len(c) > 0 && c[0] == '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return "", badRequest("message content is not valid JSON text")
		}
		lines = append(lines, s)
	case len(c) > 0 && c[0] == '[':
		var parts []platformPart
		if err := json.Unmarshal(c, &parts); err != nil {
			return "", badRequest("message content must be a string or a list of {type, text} or {type, image_url} parts")
		}
		var images []string
		for _, p := range parts {
			switch p.Type {
			case "text":
				if p.Text != "" {
					lines = append(lines, p.Text)
				}
			case "image_url":
				if p.ImageURL == nil || p.ImageURL.URL == "" {
					return "", badRequest("an image_url part needs image_url.url")
				}
				images = append(images, p.ImageURL.URL)
			default:
				return "", badRequest("message content part type %q unknown (want text or image_url)", p.Type)
			}
		}
		lines = append(lines, images...)
	default:
		return "", badRequest("message content must be a string or a list of parts")
	}
	text := strings.TrimSpace(strings.Join(lines, "\n"))
	if text == "" {
		return "", badRequest("the last user message is empty")
	}
	if err := checkLen("content", text, maxInputLen); err != nil {
		return "", err
	}
	return text, nil
}

// platform: POST /v1/platform/:storyId, the Chatbot Platform's webhook.
func (s *Server) platform(c *fiber.Ctx) error {
	storyID, err := channelStory(c)
	if err != nil {
		return err
	}
	var req platformRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.ConversationID == "" {
		return badRequest("field conversation_id is required")
	}
	if err := checkLen("conversation_id", req.ConversationID, maxSessionLen); err != nil {
		return err
	}
	text, err := req.input()
	if err != nil {
		return err
	}
	user := sessionUser{ExternalID: req.ConversationID, UserAttributes: map[string]any{}}
	if id, _ := req.User["id"].(string); id != "" {
		if err := checkLen("user.id", id, maxIDLen); err != nil {
			return err
		}
		user.UserID = id
	}
	for from, to := range map[string]string{"name": "default_name", "username": "username", "platform": "platform"} {
		if v, _ := req.User[from].(string); v != "" {
			if err := checkLen("user."+from, v, maxIDLen); err != nil {
				return err
			}
			user.UserAttributes[to] = v
		}
	}
	chatID := sessionChatID(channelPlatform, storyID, req.ConversationID)
	chat, out, err := s.sessionTurn(storyID, chatID, text, user)
	if err != nil {
		return err
	}
	return c.JSON(platformAnswerOf(chat, out))
}

// platformAnswerOf renders a turn as text for chat apps that show text:
// buttons as lines under their title, cards as their title and subtitle;
// images and files become attachments.
func platformAnswerOf(chat *engine.Chat, out []engine.Response) platformAnswer {
	a := platformAnswer{
		Attachments: []platformAttachment{},
		Metadata:    platformMetadata{ChatID: chat.ID, StoryID: chat.StoryID, Status: chat.Status, Node: chat.Node, Responses: out},
	}
	if a.Metadata.Responses == nil {
		a.Metadata.Responses = []engine.Response{}
	}
	var parts []string
	for i := range out {
		r := &out[i]
		switch r.Type {
		case engine.TypeImage:
			a.Attachments = append(a.Attachments, attachmentOf(r.ImageURL))
		case engine.TypeFile:
			a.Attachments = append(a.Attachments, attachmentOf(r.FileURL))
		case engine.TypeQuickReplies, engine.TypeButtons:
			lines := []string{r.Title}
			for _, b := range r.Buttons {
				lines = append(lines, buttonLine(b))
			}
			parts = append(parts, strings.Join(lines, "\n"))
		case engine.TypeCards:
			for _, e := range r.Elements {
				lines := []string{e.Title + " — " + e.Subtitle}
				for _, b := range e.Buttons {
					lines = append(lines, buttonLine(b))
				}
				parts = append(parts, strings.Join(lines, "\n"))
				a.Attachments = append(a.Attachments, attachmentOf(e.ImageURL))
			}
		default:
			if t := textOf(r); t != "" {
				parts = append(parts, t)
			}
		}
	}
	a.Content = strings.Join(parts, "\n\n")
	return a
}

// buttonLine is a button as a line of text: what to type, or where to go.
func buttonLine(b engine.Button) string {
	switch b.Type {
	case "postback", "goto":
		return "• " + b.Title
	}
	if b.Title == "" {
		return "• " + b.Value
	}
	return "• " + b.Title + ": " + b.Value
}

func attachmentOf(u string) platformAttachment {
	name := path.Base(strings.SplitN(strings.SplitN(u, "?", 2)[0], "#", 2)[0])
	if name == "." || name == "/" {
		name = "file"
	}
	return platformAttachment{URL: u, Filename: name, MimeType: mime.TypeByExtension(path.Ext(name))}
}
