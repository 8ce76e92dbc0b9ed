package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// The messages format is the chatbot platform's AI webhook: {messages,
// conversation_id, user, bot, metadata} in, {content, attachments,
// metadata} out. The token is sent as a bearer token (the document's auth)
// and also signs the request.
var messagesWire = &wire{
	timeout: 30 * time.Second, // the document's default
	sign:    true,
	auth:    bearer,
	retry:   retryBusy,
}

// DefaultPlatform is user.platform and metadata.channel when the user
// attribute platform is not set.
const DefaultPlatform = "storyflow"

type messagesRequest struct {
	Messages       []openaiMessage  `json:"messages"`
	ConversationID string           `json:"conversation_id"`
	User           messagesUser     `json:"user"`
	Bot            messagesBot      `json:"bot"`
	Metadata       messagesMetadata `json:"metadata"`
}

type messagesUser struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Name     string `json:"name,omitempty"`
	Username string `json:"username,omitempty"`
}

type messagesBot struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type messagesMetadata struct {
	Channel   string `json:"channel"`
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id"`
}

// encodeMessages writes the request. user is {id, platform, name,
// username} from the chat's user id and the user attributes platform,
// default_name and username; metadata is the channel context: channel
// (the platform), chat_id (the external id, else the chat id) and
// message_id (the call's id, the same on retries). A system message, when
// the node sets one, comes first. Without user input it is ErrNoInput.
func encodeMessages(buf *bytes.Buffer, _ *Connection, r *Request) error {
	if len(r.Messages) == 0 {
		return ErrNoInput
	}
	ms := r.Messages
	if r.System != "" {
		ms = append([]Message{{Role: "system", Content: r.System}}, ms...)
	}
	platform := firstNonEmpty(str(r.UserAttributes["platform"]), DefaultPlatform)
	return encodeJSON(buf, &messagesRequest{
		Messages: openaiMessages(ms), ConversationID: r.ChatID,
		User: messagesUser{ID: r.UserID, Platform: platform,
			Name: str(r.UserAttributes["default_name"]), Username: str(r.UserAttributes["username"])},
		Bot:      messagesBot{ID: r.StoryID, Name: firstNonEmpty(r.StoryName, r.StoryID)},
		Metadata: messagesMetadata{Channel: platform, ChatID: firstNonEmpty(r.ExternalID, r.ChatID), MessageID: r.MessageID},
	})
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
// text responses, attachments image or file responses. metadata is for
// logging and analytics: it goes to Answer.Call (the transcript), never
// to the chat's attributes.
func decodeMessages(body []byte) (*Answer, error) {
	var m messagesAnswer
	if err := decodeObject(body, &m); err != nil {
		return nil, err
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
	for i := range a.Responses {
		if err := checkResponse(&a.Responses[i], nil); err != nil {
			return nil, err
		}
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
			if len(md) > 0 {
				a.Call = &engine.Call{Format: string(FormatMessages), Model: str(md["model"]), Metadata: md}
			}
		default:
			return nil, invalid("metadata", "must be an object")
		}
	}
	return a, nil
}
