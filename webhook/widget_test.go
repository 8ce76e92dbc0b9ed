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

// widgetMock is the chat widget document's backend: its input validation
// (prompt and session_id non-empty strings, a prompt of at most 1000
// characters, 400 {"error"} otherwise) and no other fields.
func widgetMock(t *testing.T, replies ...reply) *mock {
	body := object(map[string]field{"prompt": req(str(false)), "session_id": req(str(false))})
	return newMock(t, func(_ *http.Request, b map[string]any) (int, string) {
		if msg := body("", b); msg != "" {
			return 400, `{"error":` + quote(msg) + `}`
		}
		if p, _ := b["prompt"].(string); p == "" {
			return 400, `{"error":"Invalid prompt"}`
		} else if len([]rune(p)) > 1000 {
			return 400, `{"error":"Prompt too long"}`
		}
		if s, _ := b["session_id"].(string); s == "" {
			return 400, `{"error":"Invalid session_id"}`
		}
		return 0, ""
	}, replies...)
}

func TestWidget(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		messages []webhook.Message
		conn     webhook.Connection
		replies  []reply
		want     []engine.Response
		form     *webhook.Form
		reason   string
		attempts int
	}{
		{name: "output", replies: []reply{{200, nil, `{"output":"Hello! How can I help?"}`}}, want: []engine.Response{text("Hello! How can I help?")}},
		{name: "prompt from the last user message", input: "-", messages: []webhook.Message{{Role: "user", Content: "I need help"}, {Role: "assistant", Content: "?"}},
			replies: []reply{{200, nil, `{"output":"ok"}`}}, want: []engine.Response{text("ok")}},
		{name: "article", replies: []reply{{200, nil, `{"content":"Resources:","content_type":"article","content_attributes":{"items":[
			{"title":"Help Center","description":"Browse the docs","link":"https://help.example.com"},{"title":"Contact"}]}}`}},
			want: []engine.Response{text("Resources:"), text("Help Center\nBrowse the docs\nhttps://help.example.com"), text("Contact")}},
		{name: "card group with its title", replies: []reply{{200, nil, `{"content":"Check out our featured products:","content_type":"card","content_attributes":{"cards":{"title":"Featured Products","cards":[
			{"title":"Premium Plan","description":"All features","image":"https://e/p.jpg","link":"https://e/p","linkText":"Learn More","price":"$29/month"},
			{"title":"Basic","description":"Few features","image":"https://e/b.jpg"},
			{"title":"No image","description":"d","link":"https://e/n"}]}}}`}},
			want: []engine.Response{text("Check out our featured products:"), text("Featured Products"),
				{Type: "cards", Delay: 1000, Elements: []engine.Card{
					{Title: "Premium Plan", Subtitle: "$29/month · All features", ImageURL: "https://e/p.jpg", Buttons: []engine.Button{{Type: "url", Title: "Learn More", Value: "https://e/p"}}},
					{Title: "Basic", Subtitle: "Few features", ImageURL: "https://e/b.jpg", Buttons: []engine.Button{{Type: "postback", Title: "Basic", Value: "Basic"}}},
				}},
				text("No image\nd\nhttps://e/n")}},
		{name: "cards as a list", replies: []reply{{200, nil, `{"content_type":"card","content_attributes":{"cards":[{"title":"A","image":"https://e/a.jpg"}]}}`}},
			want: []engine.Response{{Type: "cards", Delay: 1000, Elements: []engine.Card{{Title: "A", Subtitle: "A", ImageURL: "https://e/a.jpg",
				Buttons: []engine.Button{{Type: "postback", Title: "A", Value: "A"}}}}}}},
		{name: "form without submitUrl: a listing with the field types", replies: []reply{{200, nil, `{"content":"Get in touch:","content_type":"form","content_attributes":{"form":{"title":"Contact Us","description":"We reply soon",
			"fields":[{"id":"name","type":"text","label":"Your Name","required":true},{"id":"email","type":"email","label":"Email Address","required":true},
			{"id":"topic","type":"select","label":"Topic","options":["Sales",{"label":"Support","value":"support"}]},{"id":"news","type":"checkbox","label":"Newsletter"}]}}}`}},
			want: []engine.Response{text("Get in touch:"), text("Contact Us\nWe reply soon"),
				text("Please tell me: Your Name (required), Email Address (an email address, required), Topic, Newsletter"),
				{Type: "quickReplies", Delay: 1000, Title: "Topic", Buttons: []engine.Button{{Type: "postback", Title: "Sales", Value: "Sales"}, {Type: "postback", Title: "Support", Value: "support"}}},
				{Type: "quickReplies", Delay: 1000, Title: "Newsletter", Buttons: []engine.Button{{Type: "postback", Title: "Yes", Value: "yes"}, {Type: "postback", Title: "No", Value: "no"}}}}},
		{name: "form with submitUrl: filled in the chat", replies: []reply{{200, nil, `{"content":"Get in touch:","content_type":"form","content_attributes":{"form":{"title":"Contact Us","submitUrl":"https://x/contact",
			"fields":[{"id":"email","type":"email","label":"Email Address","required":true},{"id":"topic","type":"select","label":"Topic","options":["Sales",{"label":"Support","value":"support"}]}]}}}`}},
			want: []engine.Response{text("Get in touch:"), text("Contact Us")},
			form: &webhook.Form{SubmitURL: "https://x/contact", Values: map[string]any{}, Fields: []webhook.FormField{
				{ID: "email", Type: "email", Label: "Email Address", Required: true},
				{ID: "topic", Type: "select", Label: "Topic", Options: []webhook.FormOption{{Label: "Sales", Value: "Sales"}, {Label: "Support", Value: "support"}}}}}},
		{name: "form with a bad submitUrl", replies: []reply{{200, nil, `{"content_type":"form","content_attributes":{"form":{"submitUrl":"/contact","fields":[{"id":"a"}]}}}`}},
			reason: "Invalid response: content_attributes.form.submitUrl: must be an http or https URL"},
		{name: "500 with the document's apology", replies: []reply{{500, nil, `{"output":"I'm sorry, I'm experiencing technical difficulties. Please try again."}`}},
			reason: "Request failed with status code 500: I'm sorry, I'm experiencing technical difficulties. Please try again."},
		{name: "FastAPI detail", replies: []reply{{500, nil, `{"detail":"I'm sorry, I'm experiencing technical difficulties."}`}},
			reason: "Request failed with status code 500: I'm sorry, I'm experiencing technical difficulties."},
		{name: "FastAPI validation detail", replies: []reply{{422, nil, `{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"value_error.missing"}]}`}},
			reason: "Request failed with status code 422: body.prompt: field required"},
		{name: "429 is retried", conn: webhook.Connection{Retries: 1},
			replies: []reply{{429, map[string]string{"Retry-After": "0"}, `{"error":"Too many chat requests"}`}, {200, nil, `{"output":"ok"}`}},
			want:    []engine.Response{text("ok")}, attempts: 2},
		{name: "an empty prompt is not sent", input: "-", reason: "Nothing to send: the chat has no user input yet", attempts: -1},
		{name: "a prompt over 1000 characters is not sent", input: strings.Repeat("é", 1001),
			reason: "Prompt too long: the widget format allows 1000 characters, got 1001", attempts: -1},
		{name: "a prompt of 1000 characters is", input: strings.Repeat("é", 1000), replies: []reply{{200, nil, `{"output":"long"}`}},
			want: []engine.Response{text("long")}},
		{name: "nothing", replies: []reply{{200, nil, `{}`}}, reason: "Invalid response: output: output or content is required"},
		{name: "unknown content type", replies: []reply{{200, nil, `{"content":"x","content_type":"video"}`}},
			reason: `Invalid response: content_type: must be article, card or form, got "video"`},
		{name: "card without cards", replies: []reply{{200, nil, `{"content_type":"card","content_attributes":{}}`}},
			reason: "Invalid response: content_attributes.cards: needs at least one card"},
		{name: "output a list", replies: []reply{{200, nil, `{"output":["a"]}`}}, reason: "Invalid response: output: must be a string, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := widgetMock(t, tt.replies...)
			conn := tt.conn
			conn.ID, conn.URL, conn.Token = "w", m.url, "secret"
			in := tt.input
			switch in {
			case "":
				in = "I need help"
			case "-":
				in = ""
			}
			res, err := local.Call(context.Background(), &conn,
				&webhook.Request{Format: webhook.FormatWidget, ChatID: "c1", Input: in, Messages: tt.messages})
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
			if !strings.HasPrefix(m.headers[0].Get("X-Storyflow-Signature"), "sha256=") {
				t.Error("widget request not signed")
			}
			if len(in) < 100 && in != "" {
				if want := `{"prompt":` + quote(in) + `,"session_id":"c1"}`; m.jsonOf(0) != want {
					t.Errorf("request %s, want %s", m.jsonOf(0), want)
				}
			}
			if tt.reason != "" {
				return
			}
			if len(m.refused) > 0 {
				t.Errorf("the mock refused %v", m.refused)
			}
			if !reflect.DeepEqual(res.Answer.Responses, tt.want) {
				t.Errorf("responses %+v\nwant      %+v", res.Answer.Responses, tt.want)
			}
			if !reflect.DeepEqual(res.Answer.Form, tt.form) {
				t.Errorf("form %+v\nwant %+v", res.Answer.Form, tt.form)
			}
		})
	}
}

func TestFormFieldParse(t *testing.T) {
	tests := []struct {
		field webhook.FormField
		in    string
		want  any
		hint  string
	}{
		{webhook.FormField{Type: "email", Label: "Email", Required: true}, "ann@example.com", "ann@example.com", ""},
		{webhook.FormField{Type: "email", Label: "Email", Required: true}, "Ann <ann@example.com>", nil, "Please enter an email address."},
		{webhook.FormField{Type: "email", Label: "Email", Required: true}, " ", nil, "Email is required."},
		{webhook.FormField{Type: "number", Label: "Age"}, "42", 42.0, ""},
		{webhook.FormField{Type: "number", Label: "Age"}, "skip", nil, ""},
		{webhook.FormField{Type: "number", Label: "Age"}, "forty", nil, "Please enter a number."},
		{webhook.FormField{Type: "tel", Label: "Phone"}, "+44 20 7946 0000", "+44 20 7946 0000", ""},
		{webhook.FormField{Type: "date", Label: "Day"}, "2026-02-30", nil, "Please enter a date as YYYY-MM-DD."},
		{webhook.FormField{Type: "date", Label: "Day"}, "2026-02-28", "2026-02-28", ""},
		{webhook.FormField{Type: "url", Label: "Site"}, "ftp://x", nil, "Please enter a URL (https://…)."},
		{webhook.FormField{Type: "checkbox", Label: "News"}, "Yes", true, ""},
		{webhook.FormField{Type: "select", Label: "Topic", Options: []webhook.FormOption{{Label: "Support", Value: "support"}}}, "SUPPORT", "support", ""},
		{webhook.FormField{Type: "select", Label: "Topic", Options: []webhook.FormOption{{Label: "Support", Value: "support"}}}, "sales", nil, "Please pick one of the options."},
		{webhook.FormField{Type: "textarea", Label: "Message", Required: true}, "Hello\nthere", "Hello\nthere", ""},
	}
	for _, tt := range tests {
		got, ok, hint := tt.field.Parse(tt.in)
		if !reflect.DeepEqual(got, tt.want) || hint != tt.hint || ok != (hint == "") {
			t.Errorf("%s %q: got %v %v %q, want %v %q", tt.field.Type, tt.in, got, ok, hint, tt.want, tt.hint)
		}
	}
}
