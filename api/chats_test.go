package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/engine"
)

func TestCreateChat(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	r := e.do("POST", "/v1/chats", map[string]any{
		"storyId": "counter", "userId": "u1", "externalId": "ext-1",
		"userAttributes": map[string]any{"default_name": "Ann"}, "attributes": map[string]any{"plan": "pro"},
	})
	want(t, r, 201, "")
	m := r.json(t)
	if id, _ := m["chatId"].(string); len(id) != 24 {
		t.Fatalf("chatId: %s", r.body)
	}
	if m["status"] != "active" || m["node"] != "ask" || m["attributes"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("answer: %s", r.body)
	}
	rs := m["responses"].([]any)
	if len(rs) != 1 || rs[0].(map[string]any)["message"] != "Say something" {
		t.Fatalf("responses: %s", r.body)
	}
	chat := e.do("GET", "/v1/chats/"+m["chatId"].(string), nil)
	want(t, chat, 200, "")
	c := chat.json(t)
	if c["userId"] != "u1" || c["externalId"] != "ext-1" || c["storyVersion"] != 1.0 ||
		c["userAttributes"].(map[string]any)["default_name"] != "Ann" || len(c["transcript"].([]any)) != 2 {
		// The attributes the chat started with (a node entry), the prompt.
		t.Fatalf("chat: %s", chat.body)
	}
	if first := c["transcript"].([]any)[0].(map[string]any); first["from"] != "node" || first["data"].(map[string]any)["startAttributes"] == nil {
		t.Fatalf("chat: %s", chat.body)
	}
}

func TestCreateChatErrors(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"no story id", map[string]any{}, 400, "invalid_request"},
		{"bad story id", map[string]any{"storyId": "No Such"}, 400, "invalid_request"},
		{"unknown story", map[string]any{"storyId": "nope"}, 404, "story_not_found"},
		{"unknown field", `{"storyId":"counter","color":"red"}`, 400, "invalid_request"},
		{"wrong type", `{"storyId":"counter","attributes":[1]}`, 400, "invalid_request"},
		{"long user id", map[string]any{"storyId": "counter", "userId": strings.Repeat("u", 300)}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, e.do("POST", "/v1/chats", tc.body), tc.status, tc.code)
		})
	}
}

func TestMessages(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	e.putStory("short", shortStory)
	id := e.startChat("counter")["chatId"].(string)
	path := "/v1/chats/" + id + "/messages"

	r := e.do("POST", path, map[string]any{"text": "one"})
	want(t, r, 200, "")
	m := r.json(t)
	attrs := m["attributes"].(map[string]any)
	if m["status"] != "active" || m["node"] != "ask" || attrs["count"] != 1.0 || attrs["last"] != "one" {
		t.Fatalf("text: %s", r.body)
	}
	r = e.do("POST", path, map[string]any{"postback": "two"})
	want(t, r, 200, "")
	if a := r.json(t)["attributes"].(map[string]any); a["count"] != 2.0 || a["last"] != "two" {
		t.Fatalf("postback: %s", r.body)
	}
	// goto reaches only a node a goto button of the last bot turn offered.
	want(t, e.do("POST", path, map[string]any{"goto": "count"}), 409, "goto_not_offered")
	e.putStory("jump", strings.Replace(strings.Replace(counterStory, "id: counter", "id: jump", 1), "        message: Say something\n",
		"        message: Say something\n      - type: quickReplies\n        title: Or\n        buttons:\n          - {type: goto, title: Count, value: count}\n", 1))
	jump := "/v1/chats/" + e.startChat("jump")["chatId"].(string) + "/messages"
	want(t, e.do("POST", jump, map[string]any{"goto": "ask"}), 409, "goto_not_offered")
	// goto jumps to a node: count runs without waiting.
	r = e.do("POST", jump, map[string]any{"goto": "count"})
	want(t, r, 200, "")
	if a := r.json(t)["attributes"].(map[string]any); a["count"] != 1.0 {
		t.Fatalf("goto: %s", r.body)
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"nothing", map[string]any{}, 400, "invalid_request"},
		{"two inputs", map[string]any{"text": "a", "postback": "b"}, 400, "invalid_request"},
		{"empty text", map[string]any{"text": ""}, 400, "invalid_request"},
		{"empty message id", map[string]any{"text": "a", "messageId": ""}, 400, "invalid_request"},
		{"wrong type", `{"text": 5}`, 400, "invalid_request"},
		{"unknown field", `{"text": "a", "txt": "b"}`, 400, "invalid_request"},
		{"not json", `text=a`, 400, "invalid_request"},
		{"array", `["a"]`, 400, "invalid_request"},
		{"trailing data", `{"text": "a"} {}`, 400, "invalid_request"},
		{"truncated", `{"text": "a"`, 400, "invalid_request"},
		{"empty body", ``, 400, "invalid_request"},
		{"too long", map[string]any{"text": strings.Repeat("x", 5000)}, 400, "invalid_request"},
		{"unknown goto", map[string]any{"goto": "nowhere"}, 400, "unknown_node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, e.do("POST", path, tc.body), tc.status, tc.code)
		})
	}
	// None of the refused messages counted.
	c := e.do("GET", "/v1/chats/"+id, nil).json(t)
	if c["attributes"].(map[string]any)["count"] != 2.0 {
		t.Fatalf("count after refused messages: %v", c["attributes"])
	}

	want(t, e.do("POST", "/v1/chats/0123456789abcdef01234567/messages", map[string]any{"text": "a"}), 404, "chat_not_found")

	// A completed chat takes no more messages.
	short := e.startChat("short")
	if short["status"] != "completed" {
		t.Fatalf("short: %v", short)
	}
	if msg := short["responses"].([]any)[0].(map[string]any)["message"]; msg != "Hello & bye <3" {
		t.Fatalf("message %q", msg)
	}
	want(t, e.do("POST", "/v1/chats/"+short["chatId"].(string)+"/messages", map[string]any{"text": "hi"}), 409, "chat_closed")
}

func TestErrorMessages(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	id := e.startChat("counter")["chatId"].(string)
	for _, tc := range []struct {
		body, msg string
	}{
		{`{"text": 5}`, "field text must be a string, got a number"},
		{`{"text": "a", "txt": "b"}`, "unknown field txt"},
		{`{"text": "a"`, "request body is not valid JSON: unexpected end"},
		{`["a"]`, "request body must be a JSON object, got an array"},
		{`{"messageId": true, "text": "a"}`, "field messageId must be a string, got a boolean"},
	} {
		r := e.do("POST", "/v1/chats/"+id+"/messages", tc.body)
		if m := r.json(t); m["error"] != tc.msg {
			t.Errorf("%s: error %q, want %q", tc.body, m["error"], tc.msg)
		}
	}
}

func TestIdempotentMessages(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	id := e.startChat("counter")["chatId"].(string)
	path := "/v1/chats/" + id + "/messages"

	first := e.do("POST", path, map[string]any{"text": "a", "messageId": "m-1"})
	want(t, first, 200, "")
	again := e.do("POST", path, map[string]any{"text": "a", "messageId": "m-1"})
	want(t, again, 200, "")
	if !bytes.Equal(first.body, again.body) {
		t.Fatalf("repeat differs:\n%s\n%s", first.body, again.body)
	}
	// The repeat runs nothing, whatever it carries.
	other := e.do("POST", path, map[string]any{"text": "b", "messageId": "m-1"})
	if !bytes.Equal(first.body, other.body) {
		t.Fatalf("repeat with other text differs:\n%s\n%s", first.body, other.body)
	}
	// Concurrent repeats of a new id: one turn.
	var wg sync.WaitGroup
	bodies := make([][]byte, 10)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.try("POST", path, map[string]any{"text": "c", "messageId": "m-2"}, "Bearer "+token)
			if err != nil || r.status != 200 {
				t.Errorf("concurrent repeat: %v %d %s", err, r.status, r.body)
				return
			}
			bodies[i] = r.body
		}()
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		if !bytes.Equal(b, bodies[0]) {
			t.Fatalf("concurrent repeats differ:\n%s\n%s", bodies[0], b)
		}
	}
	c := e.do("GET", "/v1/chats/"+id, nil).json(t)
	if n := c["attributes"].(map[string]any)["count"]; n != 2.0 {
		t.Fatalf("count %v, want 2", n)
	}
}

// TestOrdering sends 100 concurrent messages to one chat: each is applied
// once, one at a time (every answer sees a different count).
func TestOrdering(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	id := e.startChat("counter")["chatId"].(string)
	const n = 100
	counts := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.try("POST", "/v1/chats/"+id+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)}, "Bearer "+token)
			if err != nil || r.status != 200 {
				t.Errorf("message %d: %v %d %s", i, err, r.status, r.body)
				return
			}
			counts[i] = int(r.json(t)["attributes"].(map[string]any)["count"].(float64))
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, c := range counts {
		if c < 1 || c > n || seen[c] {
			t.Fatalf("message %d saw count %d (seen before: %v)", i, c, seen[c])
		}
		seen[c] = true
	}
	chat := e.do("GET", "/v1/chats/"+id, nil).json(t)
	if c := chat["attributes"].(map[string]any)["count"]; c != float64(n) {
		t.Fatalf("count %v, want %d", c, n)
	}
	inputs := map[string]int{}
	for _, en := range chat["transcript"].([]any) {
		if in, ok := en.(map[string]any)["input"].(map[string]any); ok {
			inputs[in["text"].(string)]++
		}
	}
	for i := range n {
		if inputs[fmt.Sprintf("m%d", i)] != 1 {
			t.Fatalf("m%d is %d times in the transcript", i, inputs[fmt.Sprintf("m%d", i)])
		}
	}
}

func TestListChats(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	e.putStory("short", shortStory)
	var counters []string
	for range 3 {
		counters = append(counters, e.startChat("counter")["chatId"].(string))
	}
	e.startChat("short")

	ids := func(r resp) []string {
		var out []string
		for _, c := range r.list(t) {
			if _, ok := c["transcript"]; ok {
				t.Fatalf("list item has a transcript: %v", c)
			}
			out = append(out, c["id"].(string))
		}
		return out
	}
	if got := ids(e.do("GET", "/v1/chats", nil)); len(got) != 4 {
		t.Fatalf("all: %v", got)
	}
	if got := ids(e.do("GET", "/v1/chats?storyId=counter", nil)); fmt.Sprint(got) != fmt.Sprint(counters) {
		t.Fatalf("counter: %v, want %v", got, counters)
	}
	if got := ids(e.do("GET", "/v1/chats?status=completed", nil)); len(got) != 1 {
		t.Fatalf("completed: %v", got)
	}
	if got := ids(e.do("GET", "/v1/chats?storyId=counter&limit=2", nil)); fmt.Sprint(got) != fmt.Sprint(counters[:2]) {
		t.Fatalf("limit: %v", got)
	}
	if got := ids(e.do("GET", "/v1/chats?storyId=counter&after="+counters[1], nil)); fmt.Sprint(got) != fmt.Sprint(counters[2:]) {
		t.Fatalf("after: %v", got)
	}
	want(t, e.do("GET", "/v1/chats?status=sleeping", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/chats?limit=0", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/chats?limit=x", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/chats?storyId=Bad!", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/chats/nope", nil), 404, "chat_not_found")
}

func TestBodyTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		size  int
	}{
		{"default limit", 0, api.DefaultBodyLimit + 1},
		{"small limit", 1024, 8 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *api.Config) { c.BodyLimit = tc.limit })
			for _, rq := range []struct{ method, path, body string }{
				{"POST", "/v1/chats", `{"storyId":"` + strings.Repeat("a", tc.size) + `"}`},
				{"PUT", "/v1/stories/big", "# " + strings.Repeat("x", tc.size)},
			} {
				want(t, e.raw(rq.method, rq.path, rq.body), 413, "body_too_large")
			}
			// The server still serves.
			want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
		})
	}
}

// raw sends a request on its own connection and reads the answer while the
// body is still being written: a server may answer (413) and close before
// reading it all, which an http.Client can report as a write error.
func (e *env) raw(method, path, body string) resp {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", method, path, token, len(body), body)
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// panicNode is a node type that panics, to show the server survives.
type panicNode struct{}

func (panicNode) Run(context.Context, *engine.Turn) (engine.Result, error) { panic("boom") }

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Register = func(r *engine.Registry) error {
			return r.Register(engine.Spec{Type: "boom", Summary: "panics"}, func(*engine.Config) (engine.Node, error) { return panicNode{}, nil })
		}
	})
	e.putStory("boom", "id: boom\nstart: b\nnodes:\n  b:\n    type: boom\n")
	want(t, e.do("POST", "/v1/chats", map[string]any{"storyId": "boom"}), 500, "internal")
	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
}

// TestShutdownFinishesTurns shuts the server down while a turn waits for a
// slow webhook: the turn finishes and is stored.
func TestShutdownFinishesTurns(t *testing.T) {
	started := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"attributes":{"slow":"done"}}`)
	}))
	defer backend.Close()
	e := newEnv(t)
	e.putStory("slow", fmt.Sprintf(`id: slow
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: go}]
    next: call
  call:
    type: webhook
    webhook: {url: %q}
    next: ask
`, backend.URL))
	id := e.startChat("slow")["chatId"].(string)
	type result struct {
		r   resp
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.try("POST", "/v1/chats/"+id+"/messages", map[string]any{"text": "x"}, "Bearer "+token)
		done <- result{r, err}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	res := <-done
	if res.err != nil || res.r.status != 200 {
		t.Fatalf("turn in flight: %v %d %s", res.err, res.r.status, res.r.body)
	}
	c, err := e.st.GetChat(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attributes["slow"] != "done" {
		t.Fatalf("turn not stored: %v", c.Attributes)
	}
	// New requests are refused once shut down.
	if _, err := e.try("GET", "/healthz", nil, ""); err == nil {
		t.Fatal("served after shutdown")
	} else if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "refused") {
		t.Logf("after shutdown: %v", err)
	}
}
