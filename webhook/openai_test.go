package webhook_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// openaiMock is the Chat Completions API's validation as published: a
// bearer key, model and a non-empty messages list required, no unknown
// request argument, content parts of known types, option ranges; and the
// alternating roles that chat templates of Mistral, Llama-2 or Gemma (vLLM,
// llama.cpp) require after the system message.
func openaiMock(t *testing.T, replies ...reply) *mock {
	text := object(map[string]field{"type": req(enum("text")), "text": req(str(false))})
	part := tagged(map[string]rule{
		"text": text,
		"image_url": object(map[string]field{"type": req(enum("image_url")),
			"image_url": req(object(map[string]field{"url": req(str(true)), "detail": opt(enum("auto", "low", "high"))}))}),
	})
	message := func(path string, v any) string { // by role

		m, _ := v.(map[string]any)
		content := req(anyOf(str(false), array(1, 0, part)))
		switch m["role"] {
		case "system", "developer":
			content = req(anyOf(str(false), array(1, 0, text)))
		case "assistant":
			content = opt(anyOf(str(false), func(p string, v any) string {
				if v != nil {
					return p + ": must be a string or null"
				}
				return ""
			}))
		case "user":
		default:
			return join(path, "role") + ": must be one of system, developer, user, assistant"
		}
		return object(map[string]field{"role": req(str(true)), "content": content, "name": opt(str(true))})(path, v)
	}
	body := object(map[string]field{
		"model":                 req(str(true)),
		"messages":              req(array(1, 0, message)),
		"temperature":           opt(number(0, 2, false)),
		"top_p":                 opt(number(0, 1, false)),
		"max_tokens":            opt(number(1, 1e9, true)),
		"max_completion_tokens": opt(number(1, 1e9, true)),
		"stop":                  opt(anyOf(str(true), array(1, 4, str(true)))),
	})
	return newMock(t, func(r *http.Request, b map[string]any) (int, string) {
		if !bearerOK(r, "sk-test") {
			return 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`
		}
		if msg := body("", b); msg != "" {
			if strings.HasSuffix(msg, "Extra inputs are not permitted") && !strings.Contains(msg, ".") {
				msg = "Unrecognized request argument supplied: " + strings.TrimSuffix(msg, ": Extra inputs are not permitted")
			}
			return 400, `{"error":{"message":` + quote(msg) + `,"type":"invalid_request_error"}}`
		}
		want := "user"
		for i, m := range b["messages"].([]any) {
			role := m.(map[string]any)["role"]
			if i == 0 && (role == "system" || role == "developer") {
				continue
			}
			if role != want {
				return 400, `{"object":"error","message":"Conversation roles must alternate user/assistant/user/assistant/...","type":"BadRequestError","code":400}`
			}
			want = map[string]string{"user": "assistant", "assistant": "user"}[want]
		}
		return 0, ""
	}, replies...)
}

const openaiOK = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,
	"message":{"role":"assistant","content":"Hello there","refusal":null},"finish_reason":"stop"}],
	"usage":{"prompt_tokens":21,"completion_tokens":3,"total_tokens":24}}`

func TestOpenAI(t *testing.T) {
	hello := []webhook.Message{{Role: "user", Content: "Hello"}}
	tests := []struct {
		name     string
		path     string // appended to the mock's URL
		conn     webhook.Connection
		req      webhook.Request
		replies  []reply
		wantPath string
		wantBody string // the request, keys sorted ("" skips)
		want     []engine.Response
		call     *engine.Call
		reason   string
		attempts int
	}{
		{name: "v1 base URL, system first, usage recorded", path: "/v1",
			req:      webhook.Request{System: "Be brief.", Messages: hello},
			replies:  []reply{{200, nil, openaiOK}},
			wantPath: "/v1/chat/completions",
			wantBody: `{"messages":[{"content":"Be brief.","role":"system"},{"content":"Hello","role":"user"}],"model":"gpt-test"}`,
			want:     []engine.Response{text("Hello there")},
			call:     &engine.Call{Format: "openai", Model: "gpt-4o-mini-2024-07-18", StopReason: "stop", InputTokens: 21, OutputTokens: 3}},
		{name: "a bare host gets /v1", path: "", req: webhook.Request{Messages: hello}, replies: []reply{{200, nil, openaiOK}},
			wantPath: "/v1/chat/completions", want: []engine.Response{text("Hello there")}},
		{name: "a base not ending in /v1 is joined as the SDKs do", path: "/v1beta/openai/", req: webhook.Request{Messages: hello},
			replies: []reply{{200, nil, openaiOK}}, wantPath: "/v1beta/openai/chat/completions", want: []engine.Response{text("Hello there")}},
		{name: "a full URL is kept", path: "/api/chat/completions", req: webhook.Request{Messages: hello},
			replies: []reply{{200, nil, openaiOK}}, wantPath: "/api/chat/completions", want: []engine.Response{text("Hello there")}},
		{name: "history is made to alternate, starting and ending with the user", path: "/v1",
			req: webhook.Request{Messages: []webhook.Message{{Role: "assistant", Content: "Hi!"}, {Role: "user", Content: "a"},
				{Role: "user", Content: "b"}, {Role: "assistant", Content: "ok"}, {Role: "user", Content: "c"}, {Role: "assistant", Content: "one moment"}}},
			replies:  []reply{{200, nil, openaiOK}},
			wantBody: `{"messages":[{"content":"a\nb","role":"user"},{"content":"ok","role":"assistant"},{"content":"c","role":"user"}],"model":"gpt-test"}`,
			want:     []engine.Response{text("Hello there")}},
		{name: "options", path: "/v1",
			req:      webhook.Request{Messages: hello, Options: webhook.ModelOptions{Temperature: ptr(0.2), TopP: ptr(0.9), MaxTokens: 50, Stop: []string{"END"}}},
			replies:  []reply{{200, nil, openaiOK}},
			wantBody: `{"max_tokens":50,"messages":[{"content":"Hello","role":"user"}],"model":"gpt-test","stop":["END"],"temperature":0.2,"top_p":0.9}`,
			want:     []engine.Response{text("Hello there")}},
		{name: "max_completion_tokens", path: "/v1", req: webhook.Request{Messages: hello, Options: webhook.ModelOptions{MaxCompletionTokens: 64}},
			replies:  []reply{{200, nil, openaiOK}},
			wantBody: `{"max_completion_tokens":64,"messages":[{"content":"Hello","role":"user"}],"model":"gpt-test"}`,
			want:     []engine.Response{text("Hello there")}},
		{name: "an image goes as content parts", path: "/v1",
			req:      webhook.Request{Messages: []webhook.Message{{Role: "user", Content: "What is this?", Images: []string{"https://cdn.example/x.jpg"}}}},
			replies:  []reply{{200, nil, openaiOK}},
			wantBody: `{"messages":[{"content":[{"text":"What is this?","type":"text"},{"image_url":{"url":"https://cdn.example/x.jpg"},"type":"image_url"}],"role":"user"}],"model":"gpt-test"}`,
			want:     []engine.Response{text("Hello there")}},
		{name: "refusal", path: "/v1", req: webhook.Request{Messages: hello},
			replies: []reply{{200, nil, `{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`}},
			want:    []engine.Response{text("I can't help with that.")},
			call:    &engine.Call{Format: "openai", Model: "gpt-test", StopReason: "refusal"}},
		{name: "content as parts", path: "/v1", req: webhook.Request{Messages: hello},
			replies: []reply{{200, nil, `{"choices":[{"message":{"content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]},"finish_reason":"length"}]}`}},
			want:    []engine.Response{text("Hello")},
			call:    &engine.Call{Format: "openai", Model: "gpt-test", StopReason: "length"}},
		{name: "null content without refusal", path: "/v1", req: webhook.Request{Messages: hello},
			replies: []reply{{200, nil, `{"choices":[{"message":{"content":null}}]}`}},
			reason:  "Invalid response: choices[0].message.content: is required"},
		{name: "no choices", path: "/v1", req: webhook.Request{Messages: hello}, replies: []reply{{200, nil, `{"choices":[]}`}},
			reason: "Invalid response: choices: needs at least one choice"},
		{name: "bad key", path: "/v1", conn: webhook.Connection{Token: "sk-wrong"}, req: webhook.Request{Messages: hello},
			reason: "Request failed with status code 401: Incorrect API key provided"},
		{name: "429 retried after Retry-After", path: "/v1", conn: webhook.Connection{Retries: 2}, req: webhook.Request{Messages: hello},
			replies: []reply{{429, map[string]string{"Retry-After": "0.05"}, `{"error":{"message":"Rate limit reached","type":"requests"}}`}, {200, nil, openaiOK}},
			want:    []engine.Response{text("Hello there")}, attempts: 2},
		{name: "retry-after-ms is read first", path: "/v1", conn: webhook.Connection{Retries: 1}, req: webhook.Request{Messages: hello},
			replies: []reply{{503, map[string]string{"Retry-After-Ms": "20", "Retry-After": "3600"}, `{"error":{"message":"busy"}}`}, {200, nil, openaiOK}},
			want:    []engine.Response{text("Hello there")}, attempts: 2},
		{name: "Retry-After longer than the timeout is not waited for", path: "/v1",
			conn: webhook.Connection{Retries: 2, Timeout: time.Second}, req: webhook.Request{Messages: hello},
			replies:  []reply{{429, map[string]string{"Retry-After": "30"}, `{"error":{"message":"Rate limit reached"}}`}},
			reason:   "Request failed with status code 429: Rate limit reached (the service asks to retry after 30s, longer than the timeout)",
			attempts: 1},
		{name: "x-should-retry false", path: "/v1", conn: webhook.Connection{Retries: 2}, req: webhook.Request{Messages: hello},
			replies:  []reply{{500, map[string]string{"X-Should-Retry": "false"}, `{"error":{"message":"no"}}`}},
			reason:   "Request failed with status code 500: no",
			attempts: 1},
		{name: "400 is not retried", path: "/v1", conn: webhook.Connection{Retries: 2},
			req:      webhook.Request{Messages: hello, Options: webhook.ModelOptions{Stop: []string{"a", "b", "c", "d", "e"}}},
			reason:   "Request failed with status code 400: stop: must hold 1 to 4 items, got 5",
			attempts: 1},
		{name: "no input and no system is not sent", path: "/v1", req: webhook.Request{Messages: []webhook.Message{{Role: "assistant", Content: "Hi!"}}},
			reason: "Nothing to send: the chat has no user input yet", attempts: -1},
		{name: "a system message alone is sent", path: "/v1", req: webhook.Request{System: "Greet the user."},
			replies:  []reply{{200, nil, openaiOK}},
			wantBody: `{"messages":[{"content":"Greet the user.","role":"system"}],"model":"gpt-test"}`,
			want:     []engine.Response{text("Hello there")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := openaiMock(t, tt.replies...)
			conn := tt.conn
			conn.ID, conn.URL = "ai", m.url+tt.path
			if conn.Token == "" {
				conn.Token = "sk-test"
			}
			r := tt.req
			r.Format, r.Model = webhook.FormatOpenAI, "gpt-test"
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
			if tt.wantPath != "" && m.paths[0] != tt.wantPath {
				t.Errorf("path %s, want %s", m.paths[0], tt.wantPath)
			}
			if s := m.headers[0].Get("X-Storyflow-Signature"); s != "" {
				t.Errorf("openai request signed: %q", s)
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

func ptr[T any](v T) *T { return &v }
