package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/webhook"
)

// backend is a webhook service: it answers verification when the token
// matches and webhook calls with an attribute and a response.
type backend struct {
	*httptest.Server
	token    string
	verifies atomic.Int32
	calls    atomic.Int32
	// fail, when set, is the status webhook calls get.
	fail atomic.Int32
	// answer, when set, replaces the webhook answer body.
	answer atomic.Value
	// last is the last webhook request body.
	last atomic.Value
}

func newBackend(t *testing.T, token string) *backend {
	b := &backend{token: token}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			b.verifies.Add(1)
			if r.URL.Query().Get("token") != b.token {
				http.Error(w, "bad token", http.StatusForbidden)
				return
			}
			io.WriteString(w, r.URL.Query().Get("challenge"))
			return
		}
		n := b.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		b.last.Store(body)
		if s := b.fail.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if a, ok := b.answer.Load().(string); ok && a != "" {
			io.WriteString(w, a)
			return
		}
		fmt.Fprintf(w, `{"attributes":{"hooked":true,"calls":%d},"responses":[{"type":"text","message":"from backend"}]}`, n)
	}))
	t.Cleanup(b.Close)
	return b
}

func connBody(storyID, name, url, token string) map[string]any {
	m := map[string]any{"storyId": storyID, "name": name, "url": url}
	if token != "" {
		m["token"] = token
	}
	return m
}

const hookedStory = `id: hooked
name: Hooked
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: go}]
    next: call
  call:
    type: webhook
    webhook: backend
    next: ask
    failure: ask
`

func TestConnectionCRUD(t *testing.T) {
	e := newEnv(t)
	b := newBackend(t, "tok")
	e.putStory("hooked", strings.Replace(hookedStory, "webhook: backend", "webhook: {url: "+b.URL+"}", 1))

	r := e.do("POST", "/v2/integrations/webhook", map[string]any{
		"storyId": "hooked", "name": "backend", "url": b.URL, "token": "tok",
		"headers": map[string]string{"X-Source": "test"}, "auth": map[string]string{"username": "u", "password": "p"},
	})
	want(t, r, 201, "")
	m := r.json(t)
	id, _ := m["id"].(string)
	st := m["status"].(map[string]any)
	if len(id) != 24 || st["code"] != 201.0 || st["type"] != "created" || !strings.HasSuffix(m["timestamp"].(string), "Z") {
		t.Fatalf("create: %s", r.body)
	}
	if b.verifies.Load() != 1 {
		t.Fatalf("verifications: %d", b.verifies.Load())
	}

	l := e.do("GET", "/v2/integrations/webhook", nil).list(t)
	if len(l) != 1 {
		t.Fatalf("list: %v", l)
	}
	item := l[0]
	if item["id"] != id || item["name"] != "backend" || item["url"] != b.URL || item["error"] != false ||
		item["story"].(map[string]any)["id"] != "hooked" || item["story"].(map[string]any)["name"] != "Hooked" {
		t.Fatalf("list item: %v", item)
	}
	if _, ok := item["token"]; ok {
		t.Fatalf("list shows the token: %v", item)
	}
	if got := e.do("GET", "/v2/integrations/webhook?storyId=other", nil).list(t); len(got) != 0 {
		t.Fatalf("filtered list: %v", got)
	}

	r = e.do("GET", "/v2/integrations/webhook/"+id, nil)
	want(t, r, 200, "")
	d := r.json(t)
	if d["token"] != "tok" || d["headers"].(map[string]any)["X-Source"] != "test" ||
		d["auth"].(map[string]any)["username"] != "u" || d["error"] != nil {
		t.Fatalf("get: %s", r.body)
	}
	if _, ok := d["error"]; !ok {
		t.Fatalf("get has no error field: %s", r.body)
	}

	// A new name only: no verification.
	r = e.do("PUT", "/v2/integrations/webhook/"+id, map[string]any{"name": "renamed", "url": b.URL, "token": "tok"})
	want(t, r, 200, "")
	if st := r.json(t)["status"].(map[string]any); st["code"] != 200.0 || st["type"] != "success" {
		t.Fatalf("update: %s", r.body)
	}
	if b.verifies.Load() != 1 {
		t.Fatalf("rename verified: %d", b.verifies.Load())
	}
	d = e.do("GET", "/v2/integrations/webhook/"+id, nil).json(t)
	if d["name"] != "renamed" || d["headers"] != nil || d["auth"] != nil {
		t.Fatalf("after update (PUT replaces): %v", d)
	}

	// A new token is verified; a refused one changes nothing.
	want(t, e.do("PUT", "/v2/integrations/webhook/"+id, map[string]any{"name": "renamed", "url": b.URL, "token": "wrong"}), 400, "verification_failed")
	if b.verifies.Load() != 2 {
		t.Fatalf("token change not verified: %d", b.verifies.Load())
	}
	if d := e.do("GET", "/v2/integrations/webhook/"+id, nil).json(t); d["token"] != "tok" {
		t.Fatalf("refused update saved: %v", d)
	}

	want(t, e.do("DELETE", "/v2/integrations/webhook/"+id, nil), 200, "")
	want(t, e.do("GET", "/v2/integrations/webhook/"+id, nil), 404, "connection_not_found")
	want(t, e.do("DELETE", "/v2/integrations/webhook/"+id, nil), 404, "connection_not_found")
	want(t, e.do("PUT", "/v2/integrations/webhook/"+id, connBody("hooked", "x", b.URL, "tok")), 404, "connection_not_found")
	want(t, e.do("GET", "/v2/integrations/webhook/nope", nil), 404, "connection_not_found")
}

func TestConnectionVerification(t *testing.T) {
	b := newBackend(t, "tok")
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	echoNothing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer echoNothing.Close()

	for _, tc := range []struct {
		name, url, token, msg string
	}{
		{"wrong token", b.URL, "nope", "status code 403"},
		{"no challenge echo", echoNothing.URL, "", "challenge"},
		{"connection refused", closedURL, "", "verification failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.do("POST", "/v2/integrations/webhook", connBody("s", "n", tc.url, tc.token))
			want(t, r, 400, "verification_failed")
			if msg := r.json(t)["error"].(string); !strings.HasPrefix(msg, "verification failed: ") || !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q", msg)
			}
			if l := e.do("GET", "/v2/integrations/webhook", nil).list(t); len(l) != 0 {
				t.Fatalf("refused connection saved: %v", l)
			}
		})
	}

	t.Run("private address refused", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.AllowPrivateWebhooks = false })
		r := e.do("POST", "/v2/integrations/webhook", connBody("s", "n", b.URL, "tok"))
		want(t, r, 400, "verification_failed")
	})
}

func TestConnectionInput(t *testing.T) {
	e := newEnv(t)
	b := newBackend(t, "tok")
	long := strings.Repeat("x", 1025)
	headers := map[string]string{}
	for i := range 11 {
		headers[fmt.Sprintf("X-H%d", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		body any
		msg  string
	}{
		{"no story", map[string]any{"name": "n", "url": b.URL}, "storyId is required"},
		{"bad story id", connBody("Bad Id", "n", b.URL, ""), "not a valid story id"},
		{"no name", map[string]any{"storyId": "s", "url": b.URL}, "name is required"},
		{"empty name", connBody("s", "", b.URL, ""), "name must be 1 to 128"},
		{"long name", connBody("s", strings.Repeat("n", 129), b.URL, ""), "name must be 1 to 128"},
		{"no url", map[string]any{"storyId": "s", "name": "n"}, "url is required"},
		{"long url", connBody("s", "n", "http://x/"+long, ""), "url must be 1 to 1024"},
		{"ftp url", connBody("s", "n", "ftp://example.com/", ""), "http"},
		{"empty token", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "token": ""}, "token must be 1 to 1024"},
		{"long token", connBody("s", "n", b.URL, long), "token must be 1 to 1024"},
		{"no headers", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "headers": map[string]string{}}, "headers must hold 1 to 10"},
		{"11 headers", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "headers": headers}, "headers must hold 1 to 10"},
		{"bad header", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "headers": map[string]string{"Bad Header": "v"}}, "header Bad Header"},
		{"auth without password", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "auth": map[string]string{"username": "u"}}, "auth.password is required"},
		{"header not a string", `{"storyId":"s","name":"n","url":"http://x","headers":{"X":1}}`, "must be a string"},
		{"unknown field", `{"storyId":"s","name":"n","url":"http://x","secret":"y"}`, "unknown field secret"},
		{"maxInFlight 0", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "maxInFlight": 0}, "field maxInFlight must be 1 to 1000, got 0"},
		{"maxInFlight too big", map[string]any{"storyId": "s", "name": "n", "url": b.URL, "maxInFlight": 1001}, "field maxInFlight must be 1 to 1000, got 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v2/integrations/webhook", tc.body)
			want(t, r, 400, "invalid_request")
			if msg := r.json(t)["error"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q lacks %q", msg, tc.msg)
			}
		})
	}
	if b.verifies.Load() != 0 {
		t.Fatalf("invalid input verified: %d", b.verifies.Load())
	}
	// Two connections of one story may not share a name.
	want(t, e.do("POST", "/v2/integrations/webhook", connBody("s", "n", b.URL, "tok")), 201, "")
	want(t, e.do("POST", "/v2/integrations/webhook", connBody("s", "n", b.URL, "tok")), 409, "name_taken")
	want(t, e.do("POST", "/v2/integrations/webhook", connBody("t", "n", b.URL, "tok")), 201, "")
}

// TestConnectionUsedByStory: a webhook node names a connection made
// through the API; its failures are recorded on the connection and
// cleared by the next success.
func TestConnectionUsedByStory(t *testing.T) {
	e := newEnv(t)
	b := newBackend(t, "tok")
	// Without the connection the story does not load.
	want(t, e.do("PUT", "/v1/stories/hooked", hookedStory), 422, "story_invalid")

	r := e.do("POST", "/v2/integrations/webhook", map[string]any{
		"storyId": "hooked", "name": "backend", "url": b.URL, "token": "tok", "headers": map[string]string{"X-Source": "test"},
	})
	want(t, r, 201, "")
	connID := r.json(t)["id"].(string)
	e.putStory("hooked", hookedStory)
	chat := e.startChat("hooked")["chatId"].(string)
	msg := "/v1/chats/" + chat + "/messages"

	r = e.do("POST", msg, map[string]any{"text": "hi"})
	want(t, r, 200, "")
	m := r.json(t)
	if m["attributes"].(map[string]any)["hooked"] != true || m["responses"].([]any)[0].(map[string]any)["message"] != "from backend" {
		t.Fatalf("webhook answer not used: %s", r.body)
	}
	var req map[string]any
	if err := json.Unmarshal(b.last.Load().([]byte), &req); err != nil {
		t.Fatal(err)
	}
	node := req["node"].(map[string]any)
	if req["chatId"] != chat || node["webhookId"] != connID || node["webhookName"] != "backend" || node["id"] != "call" {
		t.Fatalf("webhook request: %v", req)
	}

	errorOf := func() (list, detail any) {
		l := e.do("GET", "/v2/integrations/webhook", nil).list(t)
		d := e.do("GET", "/v2/integrations/webhook/"+connID, nil).json(t)
		return l[0]["error"], d["error"]
	}
	b.fail.Store(404)
	want(t, e.do("POST", msg, map[string]any{"text": "again"}), 200, "")
	if l, d := errorOf(); l != "Request failed with status code 404" || d != "Request failed with status code 404" {
		t.Fatalf("error after a failure: list %v, get %v", l, d)
	}
	b.fail.Store(0)
	want(t, e.do("POST", msg, map[string]any{"text": "again"}), 200, "")
	if l, d := errorOf(); l != false || d != nil {
		t.Fatalf("error after a success: list %v, get %v", l, d)
	}

	// The connection found by id works too.
	e.putStory("hooked", strings.Replace(hookedStory, "webhook: backend", "webhook: "+connID, 1))
	chat2 := e.startChat("hooked")["chatId"].(string)
	r = e.do("POST", "/v1/chats/"+chat2+"/messages", map[string]any{"text": "hi"})
	if r.json(t)["attributes"].(map[string]any)["hooked"] != true {
		t.Fatalf("by id: %s", r.body)
	}

	// A deleted connection makes the node take its failure branch.
	want(t, e.do("DELETE", "/v2/integrations/webhook/"+connID, nil), 200, "")
	calls := b.calls.Load()
	r = e.do("POST", msg, map[string]any{"text": "after delete"})
	want(t, r, 200, "")
	if b.calls.Load() != calls || r.json(t)["node"] != "ask" {
		t.Fatalf("after delete: calls %d→%d %s", calls, b.calls.Load(), r.body)
	}
}

func TestConnectionTest(t *testing.T) {
	e := newEnv(t)
	b := newBackend(t, "tok")
	e.putStory("counter", counterStory)
	r := e.do("POST", "/v2/integrations/webhook", connBody("counter", "backend", b.URL, "tok"))
	want(t, r, 201, "")
	id := r.json(t)["id"].(string)
	path := "/v2/integrations/webhook/" + id + "/test"

	r = e.do("POST", path, nil)
	want(t, r, 200, "")
	m := r.json(t)
	if m["status"] != 200.0 || !strings.Contains(m["body"].(string), "from backend") || len(m["errors"].([]any)) != 0 {
		t.Fatalf("test: %s", r.body)
	}
	if _, ok := m["timeMs"].(float64); !ok {
		t.Fatalf("timeMs: %s", r.body)
	}
	var req map[string]any
	json.Unmarshal(b.last.Load().([]byte), &req)
	if req["node"].(map[string]any)["webhookId"] != id || req["userAttributes"] == nil {
		t.Fatalf("sample request: %v", req)
	}

	b.answer.Store(`{"responses":[{"type":"text","message":""}],"attributes":{"a":1}}`)
	m = e.do("POST", path, nil).json(t)
	errs := m["errors"].([]any)
	if m["status"] != 200.0 || len(errs) == 0 || !strings.Contains(fmt.Sprint(errs[0]), "responses[0]") {
		t.Fatalf("invalid answer: %v", m)
	}
	b.answer.Store("")
	b.fail.Store(500)
	m = e.do("POST", path, nil).json(t)
	if m["status"] != 500.0 || len(m["errors"].([]any)) != 1 || m["error"] != "Request failed with status code 500" {
		t.Fatalf("failed call: %v", m)
	}
	want(t, e.do("POST", "/v2/integrations/webhook/0123456789abcdef01234567/test", nil), 404, "connection_not_found")
}

// TestConnectionProtection: an API connection's maxInFlight bounds its
// calls, and an open circuit shows as the connection's error.
func TestConnectionProtection(t *testing.T) {
	client := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: 2, BreakerOpen: time.Hour, QueueWait: 10 * time.Millisecond})
	e := newEnv(t, func(c *api.Config) { c.Webhooks = client })
	b := newBackend(t, "tok")
	// gate holds the first call until released.
	release := make(chan struct{})
	var posts atomic.Int32
	arrived := make(chan struct{}, 10)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && posts.Add(1) == 1 {
			arrived <- struct{}{}
			<-release
		}
		b.Config.Handler.ServeHTTP(w, r)
	}))
	defer gate.Close()
	r := e.do("POST", "/v2/integrations/webhook", map[string]any{"storyId": "hooked", "name": "backend", "url": gate.URL, "token": "tok", "maxInFlight": 1})
	want(t, r, 201, "")
	id := r.json(t)["id"].(string)
	if d := e.do("GET", "/v2/integrations/webhook/"+id, nil).json(t); d["maxInFlight"] != 1.0 {
		t.Fatalf("detail: %v", d)
	}
	e.putStory("hooked", hookedStory)
	turn := func(chat string) resp {
		return e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "hi"})
	}
	errorOf := func() any { return e.do("GET", "/v2/integrations/webhook/"+id, nil).json(t)["error"] }

	// One call in flight: another chat's call is refused.
	first, second := e.startChat("hooked")["chatId"].(string), e.startChat("hooked")["chatId"].(string)
	done := make(chan resp, 1)
	go func() { done <- turn(first) }()
	<-arrived
	if r := turn(second); r.json(t)["attributes"].(map[string]any)["hooked"] != nil {
		t.Errorf("a call over the bound went through: %s", r.body)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("the service saw %d calls while the first was held", n)
	}
	close(release)
	if r := <-done; r.json(t)["attributes"].(map[string]any)["hooked"] != true {
		t.Fatalf("held turn: %s", r.body)
	}

	// Two failures open the circuit: the next turn does not call.
	b.fail.Store(500)
	want(t, turn(first), 200, "")
	want(t, turn(first), 200, "")
	calls := b.calls.Load()
	want(t, turn(first), 200, "")
	if b.calls.Load() != calls {
		t.Errorf("the open circuit let a call through")
	}
	got, _ := errorOf().(string)
	if w := "Circuit open: 2 failures in a row (last: Request failed with status code 500), next probe at "; !strings.HasPrefix(got, w) {
		t.Errorf("error %q, want %q…", got, w)
	}
}

// countingStore counts ListConnections calls.
type countingStore struct {
	store.Store
	lists atomic.Int32
}

func (c *countingStore) ListConnections(ctx context.Context, storyID string) ([]store.Connection, error) {
	c.lists.Add(1)
	return c.Store.ListConnections(ctx, storyID)
}

// TestConnectionLookupCached: webhook calls through an API connection read
// the story's connection list at most once a second, and a change made
// through this server is used by the next call.
func TestConnectionLookupCached(t *testing.T) {
	var cs *countingStore
	e := newEnv(t, func(c *api.Config) {
		cs = &countingStore{Store: c.Store}
		c.Store = cs
	})
	b := newBackend(t, "tok")
	r := e.do("POST", "/v2/integrations/webhook", connBody("hooked", "backend", b.URL, "tok"))
	want(t, r, 201, "")
	connID := r.json(t)["id"].(string)
	e.putStory("hooked", hookedStory)
	msg := "/v1/chats/" + e.startChat("hooked")["chatId"].(string) + "/messages"

	before := cs.lists.Load()
	for i := range 5 {
		want(t, e.do("POST", msg, map[string]any{"text": fmt.Sprint("turn ", i)}), 200, "")
	}
	if n := cs.lists.Load() - before; n > 1 || b.calls.Load() != 5 {
		t.Fatalf("5 webhook calls read the connection list %d times (want at most 1), backend got %d calls", n, b.calls.Load())
	}
	time.Sleep(1100 * time.Millisecond)
	before = cs.lists.Load()
	want(t, e.do("POST", msg, map[string]any{"text": "later"}), 200, "")
	if n := cs.lists.Load() - before; n != 1 {
		t.Fatalf("a call after the list expired read it %d times, want 1", n)
	}

	// An error another process recorded is seen once the list is read
	// again, and this process's next success clears it.
	if err := cs.Store.SetConnectionError(context.Background(), connID, "Request failed with status code 500"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	want(t, e.do("POST", msg, map[string]any{"text": "after the other process"}), 200, "")
	if d := e.do("GET", "/v2/integrations/webhook/"+connID, nil).json(t); d["error"] != nil {
		t.Fatalf("error after a success: %v", d["error"])
	}

	b2 := newBackend(t, "tok")
	want(t, e.do("PUT", "/v2/integrations/webhook/"+connID, connBody("hooked", "backend", b2.URL, "tok")), 200, "")
	want(t, e.do("POST", msg, map[string]any{"text": "moved"}), 200, "")
	if b2.calls.Load() != 1 || b.calls.Load() != 7 {
		t.Fatalf("after the update: new backend %d calls (want 1), old %d (want 7)", b2.calls.Load(), b.calls.Load())
	}
}
