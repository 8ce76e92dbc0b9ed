package webhook_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// messagesMock is a backend of the chatbot platform's AI webhook document:
// Authorization: Bearer <token>, the payload's fields and no others,
// messages in OpenAI's text or multimodal form, user {id, platform, name,
// username}, bot {id, name}, metadata {channel, chat_id, message_id};
// errors as {"error", "code"}.
func messagesMock(t *testing.T, replies ...reply) *mock {
	part := tagged(map[string]rule{
		"text": object(map[string]field{"type": req(enum("text")), "text": req(str(true))}),
		"image_url": object(map[string]field{"type": req(enum("image_url")),
			"image_url": req(object(map[string]field{"url": req(str(true))}))}),
	})
	body := object(map[string]field{
		"messages": req(array(1, 0, object(map[string]field{
			"role":    req(enum("system", "user", "assistant")),
			"content": req(anyOf(str(true), array(1, 0, part))),
		}))),
		"conversation_id": req(str(true)),
		"user": req(object(map[string]field{"id": req(str(true)), "platform": req(str(true)),
			"name": opt(str(true)), "username": opt(str(true))})),
		"bot": req(object(map[string]field{"id": req(str(true)), "name": opt(str(true))})),
		"metadata": opt(object(map[string]field{"channel": req(str(true)), "chat_id": req(str(true)),
			"message_id": req(str(true))})),
	})
	return newMock(t, func(r *http.Request, b map[string]any) (int, string) {
		if !bearerOK(r, "tok") {
			return 401, `{"error":"Authentication failed","code":"unauthorized"}`
		}
		if msg := body("", b); msg != "" {
			return 400, `{"error":` + quote(msg) + `,"code":"invalid_request"}`
		}
		return 0, ""
	}, replies...)
}

func TestMessages(t *testing.T) {
	base := webhook.Request{
		MessageID: "m1", ChatID: "c1", UserID: "u1", StoryID: "support", StoryName: "Support bot",
		UserAttributes: map[string]any{"default_name": "Ann", "default_email": "ann@example.com"},
		Messages:       []webhook.Message{{Role: "user", Content: "Hello!"}},
	}
	const sent = `{"bot":{"id":"support","name":"Support bot"},"conversation_id":"c1","messages":[{"content":"Hello!","role":"user"}],` +
		`"metadata":{"channel":"storyflow","chat_id":"c1","message_id":"m1"},"user":{"id":"u1","name":"Ann","platform":"storyflow"}}`
	tests := []struct {
		name     string
		edit     func(r *webhook.Request)
		conn     webhook.Connection
		replies  []reply
		wantBody string
		want     *webhook.Answer
		reason   string
		attempts int
	}{
		{name: "content", replies: []reply{{200, nil, `{"content":"Hi Ann"}`}}, wantBody: sent,
			want: &webhook.Answer{Responses: []engine.Response{text("Hi Ann")}}},
		{name: "channel context from the user attributes and the external id",
			edit: func(r *webhook.Request) {
				r.ExternalID = "tg-42"
				r.UserAttributes = map[string]any{"platform": "telegram", "username": "ann_k"}
			},
			replies: []reply{{200, nil, `{"content":"ok"}`}},
			wantBody: `{"bot":{"id":"support","name":"Support bot"},"conversation_id":"c1","messages":[{"content":"Hello!","role":"user"}],` +
				`"metadata":{"channel":"telegram","chat_id":"tg-42","message_id":"m1"},"user":{"id":"u1","platform":"telegram","username":"ann_k"}}`,
			want: &webhook.Answer{Responses: []engine.Response{text("ok")}}},
		{name: "system message and an image",
			edit: func(r *webhook.Request) {
				r.System = "You are Support bot."
				r.Messages = []webhook.Message{{Role: "user", Content: "What's in this image?", Images: []string{"https://cdn.example/abc.jpg"}}}
			},
			replies: []reply{{200, nil, `{"content":"A cat."}`}},
			wantBody: `{"bot":{"id":"support","name":"Support bot"},"conversation_id":"c1","messages":[{"content":"You are Support bot.","role":"system"},` +
				`{"content":[{"text":"What's in this image?","type":"text"},{"image_url":{"url":"https://cdn.example/abc.jpg"},"type":"image_url"}],"role":"user"}],` +
				`"metadata":{"channel":"storyflow","chat_id":"c1","message_id":"m1"},"user":{"id":"u1","name":"Ann","platform":"storyflow"}}`,
			want: &webhook.Answer{Responses: []engine.Response{text("A cat.")}}},
		{name: "attachments; metadata goes to the transcript, not the attributes",
			replies: []reply{{200, nil, `{"content":"Here you are","attachments":[
			{"type":"image","url":"https://cdn/x.png"},{"url":"https://cdn/doc.pdf","filename":"doc.pdf","mime_type":"application/pdf"},
			{"url":"https://cdn/y.jpg","mime_type":"image/jpeg"}],"metadata":{"model":"gpt-4","tokens_used":42}}`}},
			want: &webhook.Answer{
				Responses: []engine.Response{text("Here you are"),
					{Type: "image", Delay: 1000, ImageURL: "https://cdn/x.png"},
					{Type: "file", Delay: 1000, FileURL: "https://cdn/doc.pdf"},
					{Type: "image", Delay: 1000, ImageURL: "https://cdn/y.jpg"}},
				Call: &engine.Call{Format: "messages", Model: "gpt-4", Metadata: map[string]any{"model": "gpt-4", "tokens_used": 42.0}},
			}},
		{name: "long content is split", replies: []reply{{200, nil, `{"content":"` + strings.Repeat("word ", 300) + `"}`}},
			want: &webhook.Answer{Responses: []engine.Response{
				text(strings.TrimSpace(strings.Repeat("word ", 204))), text(strings.TrimSpace(strings.Repeat("word ", 96)))}}},
		{name: "429 is retried after Retry-After", conn: webhook.Connection{Retries: 1},
			replies: []reply{{429, map[string]string{"Retry-After": "0.01"}, `{"error":"Rate limit exceeded","code":"rate_limit"}`}, {200, nil, `{"content":"ok"}`}},
			want:    &webhook.Answer{Responses: []engine.Response{text("ok")}}, attempts: 2},
		{name: "error answer", replies: []reply{{503, nil, `{"error":"Service unavailable","code":"unavailable"}`}},
			reason: "Request failed with status code 503: Service unavailable"},
		{name: "bad token", conn: webhook.Connection{Token: "other"}, reason: "Request failed with status code 401: Authentication failed"},
		{name: "no user input is not sent", edit: func(r *webhook.Request) { r.Messages = nil },
			reason: "Nothing to send: the chat has no user input yet", attempts: -1},
		{name: "no content", replies: []reply{{200, nil, `{"metadata":{}}`}}, reason: "Invalid response: content: is required"},
		{name: "content a number", replies: []reply{{200, nil, `{"content":3}`}}, reason: "Invalid response: content: must be a string, got number"},
		{name: "attachment of a bad type", replies: []reply{{200, nil, `{"content":"x","attachments":[{"type":"video","url":"u"}]}`}},
			reason: `Invalid response: attachments[0].type: must be image or file, got "video"`},
		{name: "attachment without url", replies: []reply{{200, nil, `{"attachments":[{"type":"file"}]}`}},
			reason: "Invalid response: attachments[0].url: is required"},
		{name: "metadata a string", replies: []reply{{200, nil, `{"content":"x","metadata":"m"}`}},
			reason: "Invalid response: metadata: must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := messagesMock(t, tt.replies...)
			conn := tt.conn
			conn.ID, conn.URL = "ai", m.url
			if conn.Token == "" {
				conn.Token = "tok"
			}
			r := base
			r.Format = webhook.FormatMessages
			if tt.edit != nil {
				tt.edit(&r)
			}
			res, err := local.Call(context.Background(), &conn, &r)
			if got := reason(err); got != tt.reason {
				t.Fatalf("reason %q, want %q (refused: %v)", got, tt.reason, m.refused)
			}
			switch {
			case tt.attempts == -1 && m.calls() != 0:
				t.Errorf("sent %d requests, want none", m.calls())
			case tt.attempts > 0 && (res.Attempts != tt.attempts || m.calls() != tt.attempts):
				t.Errorf("attempts %d, server saw %d, want %d", res.Attempts, m.calls(), tt.attempts)
			}
			if m.calls() == 0 {
				return
			}
			if h := m.headers[0]; !strings.HasPrefix(h.Get("X-Storyflow-Signature"), "sha256=") {
				t.Errorf("not signed: %v", h)
			}
			if tt.wantBody != "" && m.jsonOf(0) != tt.wantBody {
				t.Errorf("request %s\nwant    %s", m.jsonOf(0), tt.wantBody)
			}
			if tt.reason != "" {
				return
			}
			if len(m.refused) > 0 {
				t.Errorf("the mock refused %v", m.refused)
			}
			if !reflect.DeepEqual(res.Answer, tt.want) {
				t.Errorf("answer %+v\nwant   %+v", res.Answer, tt.want)
			}
		})
	}
}
