package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

func text(s string) engine.Response {
	return engine.Response{Type: "text", Delay: 1000, Message: s}
}

func TestWindow(t *testing.T) {
	now := time.Now()
	tr := []engine.Entry{
		{From: "bot", Response: &engine.Response{Type: "text", Message: "Hi!"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "quickReplies", Title: "Pick one"}, Time: now},
		{From: "user", Input: &engine.Input{Postback: "a"}, Time: now},
		{From: "user", Input: &engine.Input{Goto: "x"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "image", ImageURL: "u"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "cards", Elements: []engine.Card{{Title: "T", Subtitle: "S"}, {Title: "U"}}}, Time: now},
		{From: "user", Input: &engine.Input{Text: "hello"}, Time: now},
	}
	out := []engine.Response{text("one moment")}
	want := []webhook.Message{
		{Role: "assistant", Content: "Hi!\nPick one"},
		{Role: "user", Content: "a"},
		{Role: "assistant", Content: "T: S\nU"},
		{Role: "user", Content: "hello"},
		{Role: "assistant", Content: "one moment"},
	}
	if got := webhook.Window(tr, out, 10); !reflect.DeepEqual(got, want) {
		t.Errorf("Window = %+v", got)
	}
	if got := webhook.Window(tr, out, 2); !reflect.DeepEqual(got, want[3:]) {
		t.Errorf("Window(2) = %+v", got)
	}
}

// capture is a loopback server that records the request body and answers.
func capture(t *testing.T, status int, answer string) (*string, *http.Header, string) {
	t.Helper()
	var body string
	var h http.Header
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		body, h = string(must(io.ReadAll(r.Body))), r.Header
		w.WriteHeader(status)
		io.WriteString(w, answer)
	})
	return &body, &h, srv.URL
}

func TestMessagesFormat(t *testing.T) {
	req := &webhook.Request{
		Format: webhook.FormatMessages, ChatID: "c1", UserID: "u1", StoryID: "support", StoryName: "Support bot",
		UserAttributes: map[string]any{"default_name": "Ann", "default_email": "ann@example.com"},
		Messages:       []webhook.Message{{Role: "user", Content: "Hello!"}},
		Metadata:       map[string]any{"thread": "t1"},
	}
	tests := []struct {
		name   string
		status int
		answer string
		want   *webhook.Answer
		reason string
	}{
		{name: "content", status: 200, answer: `{"content":"Hi Ann"}`, want: &webhook.Answer{Responses: []engine.Response{text("Hi Ann")}}},
		{name: "attachments and metadata", status: 200, answer: `{"content":"Here you are","attachments":[
			{"type":"image","url":"https://cdn/x.png"},{"url":"https://cdn/doc.pdf","filename":"doc.pdf","mime_type":"application/pdf"},
			{"url":"https://cdn/y.jpg","mime_type":"image/jpeg"}],"metadata":{"model":"m1","tokens":42}}`,
			want: &webhook.Answer{
				Responses: []engine.Response{text("Here you are"),
					{Type: "image", Delay: 1000, ImageURL: "https://cdn/x.png"},
					{Type: "file", Delay: 1000, FileURL: "https://cdn/doc.pdf"},
					{Type: "image", Delay: 1000, ImageURL: "https://cdn/y.jpg"}},
				Attributes: map[string]any{"metadata": map[string]any{"model": "m1", "tokens": 42.0}},
			}},
		{name: "long content is split", status: 200, answer: `{"content":"` + strings.Repeat("word ", 300) + `"}`,
			want: &webhook.Answer{Responses: []engine.Response{
				text(strings.TrimSpace(strings.Repeat("word ", 204))), text(strings.TrimSpace(strings.Repeat("word ", 96)))}}},
		{name: "error answer", status: 429, answer: `{"error":"Rate limit exceeded","code":"rate_limit"}`, reason: "Request failed with status code 429: Rate limit exceeded"},
		{name: "no content", status: 200, answer: `{"metadata":{}}`, reason: "Invalid response: content: is required"},
		{name: "content a number", status: 200, answer: `{"content":3}`, reason: "Invalid response: content: must be a string, got number"},
		{name: "attachment of a bad type", status: 200, answer: `{"content":"x","attachments":[{"type":"video","url":"u"}]}`, reason: `Invalid response: attachments[0].type: must be image or file, got "video"`},
		{name: "attachment without url", status: 200, answer: `{"attachments":[{"type":"file"}]}`, reason: "Invalid response: attachments[0].url: is required"},
		{name: "metadata a string", status: 200, answer: `{"content":"x","metadata":"m"}`, reason: "Invalid response: metadata: must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _, url := capture(t, tt.status, tt.answer)
			res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: url}, req)
			if got := reason(err); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
			want := `{"messages":[{"role":"user","content":"Hello!"}],"conversation_id":"c1","user":{"id":"u1","name":"Ann","email":"ann@example.com"},"bot":{"id":"support","name":"Support bot"},"metadata":{"thread":"t1"}}`
			if *body != want {
				t.Errorf("request %s\nwant    %s", *body, want)
			}
			if tt.want != nil && !reflect.DeepEqual(res.Answer, tt.want) {
				t.Errorf("answer %+v\nwant   %+v", res.Answer, tt.want)
			}
		})
	}
}

func TestWidgetFormat(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		want   []engine.Response
		reason string
	}{
		{name: "output", answer: `{"output":"Hello! How can I help?"}`, want: []engine.Response{text("Hello! How can I help?")}},
		{name: "article", answer: `{"content":"Resources:","content_type":"article","content_attributes":{"items":[
			{"title":"Help Center","description":"Browse the docs","link":"https://help.example.com"},{"title":"Contact"}]}}`,
			want: []engine.Response{text("Resources:"), text("Help Center\nBrowse the docs\nhttps://help.example.com"), text("Contact")}},
		{name: "card", answer: `{"content":"Featured:","content_type":"card","content_attributes":{"cards":{"title":"Featured","cards":[
			{"title":"Premium Plan","description":"All features","image":"https://e/p.jpg","link":"https://e/p","linkText":"Learn More","price":"$29/month"},
			{"title":"Basic","description":"Few features","image":"https://e/b.jpg"},
			{"title":"No image","description":"d","link":"https://e/n"}]}}}`,
			want: []engine.Response{text("Featured:"),
				{Type: "cards", Delay: 1000, Elements: []engine.Card{
					{Title: "Premium Plan", Subtitle: "$29/month · All features", ImageURL: "https://e/p.jpg", Buttons: []engine.Button{{Type: "url", Title: "Learn More", Value: "https://e/p"}}},
					{Title: "Basic", Subtitle: "Few features", ImageURL: "https://e/b.jpg", Buttons: []engine.Button{{Type: "postback", Title: "Basic", Value: "Basic"}}},
				}},
				text("No image\nd\nhttps://e/n")}},
		{name: "form", answer: `{"content":"Get in touch:","content_type":"form","content_attributes":{"form":{"title":"Contact Us","description":"We reply soon","submitUrl":"https://x",
			"fields":[{"id":"name","type":"text","label":"Your Name","required":true},{"id":"topic","type":"select","label":"Topic","options":["Sales",{"label":"Support","value":"support"}]}]}}}`,
			want: []engine.Response{text("Get in touch:"), text("Contact Us\nWe reply soon"), text("Please tell me: Your Name (required), Topic"),
				{Type: "quickReplies", Delay: 1000, Title: "Topic", Buttons: []engine.Button{{Type: "postback", Title: "Sales", Value: "Sales"}, {Type: "postback", Title: "Support", Value: "support"}}}}},
		{name: "nothing", answer: `{}`, reason: "Invalid response: output: output or content is required"},
		{name: "unknown content type", answer: `{"content":"x","content_type":"video"}`, reason: `Invalid response: content_type: must be article, card or form, got "video"`},
		{name: "card without cards", answer: `{"content_type":"card","content_attributes":{}}`, reason: "Invalid response: content_attributes.cards: needs at least one card"},
		{name: "output a list", answer: `{"output":["a"]}`, reason: "Invalid response: output: must be a string, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _, url := capture(t, 200, tt.answer)
			res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: url},
				&webhook.Request{Format: webhook.FormatWidget, ChatID: "c1", Input: "I need help"})
			if got := reason(err); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
			if want := `{"prompt":"I need help","session_id":"c1"}`; *body != want {
				t.Errorf("request %s", *body)
			}
			if tt.reason == "" && !reflect.DeepEqual(res.Answer.Responses, tt.want) {
				t.Errorf("responses %+v\nwant      %+v", res.Answer.Responses, tt.want)
			}
		})
	}
}

func TestOpenAIFormat(t *testing.T) {
	tests := []struct {
		name, path string
		status     int
		answer     string
		want       []engine.Response
		reason     string
	}{
		{name: "base URL", path: "", status: 200, answer: `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"}}]}`,
			want: []engine.Response{text("Hello there")}},
		{name: "v1 URL", path: "/v1", status: 200, answer: `{"choices":[{"message":{"content":"ok"}}]}`, want: []engine.Response{text("ok")}},
		{name: "full URL", path: "/v1/chat/completions", status: 200, answer: `{"choices":[{"message":{"content":"ok"}}]}`, want: []engine.Response{text("ok")}},
		{name: "error", path: "", status: 401, answer: `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}`,
			reason: "Request failed with status code 401: Incorrect API key provided"},
		{name: "no choices", path: "", status: 200, answer: `{"choices":[]}`, reason: "Invalid response: choices[0].message.content: is required"},
		{name: "null content", path: "", status: 200, answer: `{"choices":[{"message":{"content":null}}]}`, reason: "Invalid response: choices[0].message.content: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *http.Request
			var body []byte
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				got, body = r, must(io.ReadAll(r.Body))
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			})
			res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL + tt.path, Token: "sk-test"},
				&webhook.Request{Format: webhook.FormatOpenAI, Model: "gpt-test", System: "Be brief.",
					Messages: []webhook.Message{{Role: "assistant", Content: "Hi"}, {Role: "user", Content: "Hello"}}})
			if r := reason(err); r != tt.reason {
				t.Fatalf("reason %q, want %q", r, tt.reason)
			}
			if got.URL.Path != "/v1/chat/completions" {
				t.Errorf("path %s", got.URL.Path)
			}
			if a := got.Header.Get("Authorization"); a != "Bearer sk-test" {
				t.Errorf("Authorization %q", a)
			}
			if s := got.Header.Get("X-Storyflow-Signature"); s != "" {
				t.Errorf("openai request signed: %q", s)
			}
			var sent struct {
				Model    string
				Messages []webhook.Message
			}
			json.Unmarshal(body, &sent)
			wantMsgs := []webhook.Message{{Role: "system", Content: "Be brief."}, {Role: "assistant", Content: "Hi"}, {Role: "user", Content: "Hello"}}
			if sent.Model != "gpt-test" || !reflect.DeepEqual(sent.Messages, wantMsgs) {
				t.Errorf("request %s", body)
			}
			if tt.reason == "" && !reflect.DeepEqual(res.Answer.Responses, tt.want) {
				t.Errorf("responses %+v", res.Answer.Responses)
			}
		})
	}
}
