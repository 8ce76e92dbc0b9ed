package webhook_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// anthropicMock is the Messages API's validation as published: x-api-key
// and anthropic-version headers, model, max_tokens and non-empty messages
// required, roles user and assistant only (system is a field), the first
// message the user's, roles alternating, known content blocks, no extra
// inputs; errors as {"type": "error", "error": {type, message}}.
func anthropicMock(t *testing.T, replies ...reply) *mock {
	block := tagged(map[string]rule{
		"text": object(map[string]field{"type": req(enum("text")), "text": req(str(true))}),
		"image": object(map[string]field{"type": req(enum("image")), "source": req(tagged(map[string]rule{
			"url": object(map[string]field{"type": req(enum("url")), "url": req(str(true))}),
			"base64": object(map[string]field{"type": req(enum("base64")), "data": req(str(true)),
				"media_type": req(enum("image/jpeg", "image/png", "image/gif", "image/webp"))}),
		}))}),
	})
	message := object(map[string]field{
		"role":    req(enum("user", "assistant")),
		"content": req(anyOf(str(true), array(1, 0, block))),
	})
	body := object(map[string]field{
		"model":          req(str(true)),
		"max_tokens":     req(number(1, 1e9, true)),
		"messages":       req(array(1, 0, message)),
		"system":         opt(str(false)),
		"temperature":    opt(number(0, 1, false)),
		"top_p":          opt(number(0, 1, false)),
		"top_k":          opt(number(0, 1e9, true)),
		"stop_sequences": opt(array(0, 0, str(true))),
		"metadata":       opt(object(map[string]field{"user_id": opt(str(false))})),
	})
	fail := func(status int, typ, msg string) (int, string) {
		return status, `{"type":"error","error":{"type":"` + typ + `","message":` + quote(msg) + `}}`
	}
	return newMock(t, func(r *http.Request, b map[string]any) (int, string) {
		if r.Header.Get("X-Api-Key") != "sk-ant-test" {
			return fail(401, "authentication_error", "invalid x-api-key")
		}
		if r.Header.Get("Anthropic-Version") == "" {
			return fail(400, "invalid_request_error", "anthropic-version: header is required")
		}
		if msg := body("", b); msg != "" {
			return fail(400, "invalid_request_error", msg)
		}
		for i, m := range b["messages"].([]any) {
			role := m.(map[string]any)["role"]
			if want := []string{"user", "assistant"}[i%2]; role != want {
				return fail(400, "invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\"")
			}
		}
		return 0, ""
	}, replies...)
}

const anthropicOK = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
	"content":[{"type":"text","text":"Hello! "},{"type":"text","text":"How can I help?"}],
	"stop_reason":"end_turn","stop_sequence":null,
	"usage":{"input_tokens":12,"output_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":100}}`

func TestAnthropic(t *testing.T) {
	hello := []webhook.Message{{Role: "user", Content: "Hello"}}
	opts := webhook.ModelOptions{MaxTokens: 256}
	tests := []struct {
		name     string
		path     string
		conn     webhook.Connection
		req      webhook.Request
		replies  []reply
		wantPath string
		wantBody string
		want     []engine.Response
		call     *engine.Call
		reason   string
		attempts int
	}{
		{name: "base URL, system apart, text blocks joined, usage", path: "",
			req:      webhook.Request{System: "Be brief.", Messages: hello, Options: opts},
			replies:  []reply{{200, nil, anthropicOK}},
			wantPath: "/v1/messages",
			wantBody: `{"max_tokens":256,"messages":[{"content":"Hello","role":"user"}],"model":"claude-test","system":"Be brief."}`,
			want:     []engine.Response{text("Hello! How can I help?")},
			call:     &engine.Call{Format: "anthropic", Model: "claude-sonnet-4-5-20250929", StopReason: "end_turn", InputTokens: 112, OutputTokens: 9}},
		{name: "a URL ending in /v1", path: "/v1/", req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{200, nil, anthropicOK}}, wantPath: "/v1/messages", want: []engine.Response{text("Hello! How can I help?")}},
		{name: "a gateway base", path: "/anthropic", req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{200, nil, anthropicOK}}, wantPath: "/anthropic/v1/messages", want: []engine.Response{text("Hello! How can I help?")}},
		{name: "history alternates from the user and ends with the user", path: "",
			req: webhook.Request{Options: opts, Messages: []webhook.Message{{Role: "assistant", Content: "Welcome!"}, {Role: "user", Content: "a"},
				{Role: "assistant", Content: "b"}, {Role: "assistant", Content: "c"}, {Role: "user", Content: "d"}, {Role: "assistant", Content: "wait"}}},
			replies:  []reply{{200, nil, anthropicOK}},
			wantBody: `{"max_tokens":256,"messages":[{"content":"a","role":"user"},{"content":"b\nc","role":"assistant"},{"content":"d","role":"user"}],"model":"claude-test"}`,
			want:     []engine.Response{text("Hello! How can I help?")}},
		{name: "options", path: "",
			req:      webhook.Request{Messages: hello, Options: webhook.ModelOptions{MaxTokens: 100, Temperature: ptr(0.5), TopP: ptr(0.8), Stop: []string{"\n\nHuman:"}}},
			replies:  []reply{{200, nil, anthropicOK}},
			wantBody: `{"max_tokens":100,"messages":[{"content":"Hello","role":"user"}],"model":"claude-test","stop_sequences":["\n\nHuman:"],"temperature":0.5,"top_p":0.8}`,
			want:     []engine.Response{text("Hello! How can I help?")}},
		{name: "images: url and base64 sources, before the text", path: "",
			req: webhook.Request{Options: opts, Messages: []webhook.Message{{Role: "user", Content: "Compare",
				Images: []string{"https://cdn.example/a.png", "data:image/png;base64,iVBORw0KGgo="}}}},
			replies:  []reply{{200, nil, anthropicOK}},
			wantBody: `{"max_tokens":256,"messages":[{"content":[{"source":{"type":"url","url":"https://cdn.example/a.png"},"type":"image"},{"source":{"data":"iVBORw0KGgo=","media_type":"image/png","type":"base64"},"type":"image"},{"text":"Compare","type":"text"}],"role":"user"}],"model":"claude-test"}`,
			want:     []engine.Response{text("Hello! How can I help?")}},
		{name: "without max_tokens the API refuses", path: "", req: webhook.Request{Messages: hello},
			reason: "Request failed with status code 400: max_tokens: must be 1 to 1e+09"},
		{name: "no user input is not sent", path: "", req: webhook.Request{System: "Greet.", Options: opts},
			reason: "Nothing to send: the chat has no user input yet", attempts: -1},
		{name: "bad key", path: "", conn: webhook.Connection{Token: "nope"}, req: webhook.Request{Messages: hello, Options: opts},
			reason: "Request failed with status code 401: invalid x-api-key"},
		{name: "529 overloaded is retried after retry-after", path: "", conn: webhook.Connection{Retries: 2},
			req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{529, map[string]string{"Retry-After": "0"}, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
				{429, map[string]string{"Retry-After": "0.02"}, `{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}`},
				{200, nil, anthropicOK}},
			want: []engine.Response{text("Hello! How can I help?")}, attempts: 3},
		{name: "overloaded, retries exhausted", path: "", conn: webhook.Connection{Retries: 1},
			req:     webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}},
			reason:  "Request failed with status code 529: Overloaded", attempts: 2},
		{name: "max_tokens reached", path: "", req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{200, nil, `{"type":"message","content":[{"type":"text","text":"Once upon"}],"stop_reason":"max_tokens","usage":{"input_tokens":5,"output_tokens":256}}`}},
			want:    []engine.Response{text("Once upon")},
			call:    &engine.Call{Format: "anthropic", Model: "claude-test", StopReason: "max_tokens", InputTokens: 5, OutputTokens: 256}},
		{name: "refusal without text", path: "", req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{200, nil, `{"type":"message","content":[],"stop_reason":"refusal","usage":{"input_tokens":5,"output_tokens":0}}`}},
			reason:  "Invalid response: content: is empty: the model refused (stop_reason refusal)"},
		{name: "no text block", path: "", req: webhook.Request{Messages: hello, Options: opts},
			replies: []reply{{200, nil, `{"type":"message","content":[{"type":"tool_use","id":"t","name":"x","input":{}}],"stop_reason":"tool_use"}`}},
			reason:  "Invalid response: content: is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := anthropicMock(t, tt.replies...)
			conn := tt.conn
			conn.ID, conn.URL = "claude", m.url+tt.path
			if conn.Token == "" {
				conn.Token = "sk-ant-test"
			}
			r := tt.req
			r.Format, r.Model = webhook.FormatAnthropic, "claude-test"
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
			h := m.headers[0]
			if h.Get("Anthropic-Version") != webhook.AnthropicVersion || h.Get("Authorization") != "" || h.Get("X-Storyflow-Signature") != "" {
				t.Errorf("headers %v", h)
			}
			if tt.wantPath != "" && m.paths[0] != tt.wantPath {
				t.Errorf("path %s, want %s", m.paths[0], tt.wantPath)
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
			if !reflect.DeepEqual(res.Answer.Responses, tt.want) {
				t.Errorf("responses %+v\nwant      %+v", res.Answer.Responses, tt.want)
			}
			if tt.call != nil && !reflect.DeepEqual(res.Answer.Call, tt.call) {
				t.Errorf("call %+v\nwant %+v", res.Answer.Call, tt.call)
			}
		})
	}
}

// TestAnthropicVersionHeader: a connection's own anthropic-version wins.
func TestAnthropicVersionHeader(t *testing.T) {
	m := anthropicMock(t, reply{200, nil, anthropicOK})
	conn := &webhook.Connection{ID: "c", URL: m.url, Token: "sk-ant-test", Headers: map[string]string{"anthropic-version": "2099-01-01"}}
	_, err := local.Call(context.Background(), conn, &webhook.Request{Format: webhook.FormatAnthropic, Model: "m",
		Messages: []webhook.Message{{Role: "user", Content: "hi"}}, Options: webhook.ModelOptions{MaxTokens: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if v := m.headers[0].Values("Anthropic-Version"); !reflect.DeepEqual(v, []string{"2099-01-01"}) {
		t.Errorf("anthropic-version %v", v)
	}
}
