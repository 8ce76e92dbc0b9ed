package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/storyflow/storyflow/webhook"
)

// handoffStory asks for a problem, publishes an order, hands the chat to a
// human, and has a node to resume at.
const handoffStory = `id: help
name: Help
start: ask
nodes:
  ask:
    type: question
    responses:
      - type: text
        message: What is the problem?
    save: problem
    next: order
  order:
    type: emit
    event: order.requested
    data:
      sku: A1
      problem: "{{ attributes.problem }}"
    next: human
  human:
    type: handoff
    responses:
      - type: text
        message: A colleague will reply right here.
    task:
      topic: "{{ attributes.problem }}"
      priority: high
  thanks:
    type: end
    responses:
      - type: text
        message: Glad we could help.
`

// hookLog is a receiver of event webhooks on loopback.
type hookLog struct {
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func (h *hookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.CheckSignature("whsec", r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute); err != nil {
		h.mu.Lock()
		h.bad++
		h.mu.Unlock()
		http.Error(w, "bad signature", 401)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	h.mu.Lock()
	h.events = append(h.events, m)
	h.mu.Unlock()
}

func (h *hookLog) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e["event"].(string))
	}
	return out
}

// newEventsEnv is a server with the embedded pebble store and a running
// delivery worker.
func newEventsEnv(t *testing.T, allowPrivate bool) *env {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hooks := webhook.NewClient(webhook.Options{AllowPrivate: allowPrivate})
	w := events.New(events.Options{Store: st, HTTP: hooks.HTTP(), Logger: quiet(), Backoff: 20 * time.Millisecond, Poll: 10 * time.Millisecond})
	srv, err := api.New(api.Config{Store: st, Token: token, AllowPrivateWebhooks: allowPrivate, Logger: quiet(), Webhooks: hooks, Events: w})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { w.Run(ctx); done <- struct{}{} }()
	go func() { srv.Serve(ln); done <- struct{}{} }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		cancel()
		<-done
		<-done
		st.Close()
	})
	return &env{t: t, srv: srv, st: st, url: "http://" + ln.Addr().String()}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandoffRoundTrip(t *testing.T) {
	e := newEventsEnv(t, true)
	hook := &hookLog{}
	rcv := httptest.NewServer(hook)
	defer rcv.Close()
	e.putStory("help", handoffStory)

	r := e.do("POST", "/v1/event-webhooks", map[string]any{"url": rcv.URL, "events": []string{"*"}, "secret": "whsec"})
	want(t, r, 201, "")
	sub := r.json(t)
	if sub["signed"] != true || sub["secret"] != nil {
		t.Fatalf("subscription %s shows its secret or is not signed", r.body)
	}
	subID := sub["id"].(string)

	r = e.do("POST", "/v1/chats", map[string]any{"storyId": "help", "userId": "ann", "userAttributes": map[string]any{"email": "ann@example.com"}})
	want(t, r, 201, "")
	chatID := r.json(t)["chatId"].(string)
	r = e.do("POST", "/v1/chats/"+chatID+"/messages", map[string]any{"text": "my order is late", "messageId": "m-late"})
	want(t, r, 200, "")
	a := r.json(t)
	task, _ := a["task"].(map[string]any)
	if a["status"] != "handoff" || task == nil || task["status"] != "open" {
		t.Fatalf("turn answer %s, want handoff with an open task", r.body)
	}
	taskID := task["id"].(string)
	if data := task["data"].(map[string]any); data["topic"] != "my order is late" || data["priority"] != "high" {
		t.Errorf("task data %v", data)
	}

	// While a human has the chat, input is kept and no node runs.
	r = e.do("POST", "/v1/chats/"+chatID+"/messages", map[string]any{"text": "hello?"})
	want(t, r, 200, "")
	if a := r.json(t); a["status"] != "handoff" || len(a["responses"].([]any)) != 0 || a["task"] == nil {
		t.Fatalf("answer while in handoff: %s", r.body)
	}

	r = e.do("GET", "/v1/tasks?status=open", nil)
	want(t, r, 200, "")
	if l := r.list(t); len(l) != 1 || l[0]["id"] != taskID || l[0]["chatId"] != chatID {
		t.Fatalf("open tasks %s", r.body)
	}
	r = e.do("PATCH", "/v1/tasks/"+taskID, map[string]any{"assignee": "bob", "data": map[string]any{"priority": nil, "note": "called"}})
	want(t, r, 200, "")
	if p := r.json(t); p["assignee"] != "bob" || p["data"].(map[string]any)["priority"] != nil || p["data"].(map[string]any)["note"] != "called" {
		t.Errorf("patched task %s", r.body)
	}

	r = e.do("POST", "/v1/chats/"+chatID+"/agent-messages", map[string]any{"text": "Hi Ann, it ships today.", "agent": "bob"})
	want(t, r, 201, "")
	r = e.do("GET", "/v1/chats/"+chatID, nil)
	want(t, r, 200, "")
	var chat struct {
		Status     string
		Task       map[string]any
		Transcript []struct {
			From     string
			Response *struct{ Message string }
		}
	}
	json.Unmarshal(r.body, &chat)
	last := chat.Transcript[len(chat.Transcript)-1]
	if chat.Status != "handoff" || chat.Task["id"] != taskID || last.From != "agent" || last.Response.Message != "Hi Ann, it ships today." {
		t.Fatalf("chat after the agent's reply: %s", r.body)
	}

	r = e.do("POST", "/v1/chats/"+chatID+"/resume", map[string]any{"node": "nope"})
	want(t, r, 400, "unknown_node")
	r = e.do("POST", "/v1/chats/"+chatID+"/resume", map[string]any{"node": "thanks"})
	want(t, r, 200, "")
	if a := r.json(t); a["status"] != "completed" || a["responses"].([]any)[0].(map[string]any)["message"] != "Glad we could help." {
		t.Fatalf("resume answer %s", r.body)
	}
	r = e.do("POST", "/v1/chats/"+chatID+"/agent-messages", map[string]any{"text": "late"})
	want(t, r, 409, "not_in_handoff")
	r = e.do("GET", "/v1/tasks?status=completed", nil)
	if l := r.list(t); len(l) != 1 || l[0]["id"] != taskID {
		t.Fatalf("completed tasks %s", r.body)
	}

	// One chat's events arrive in order; contact events have their own stream.
	wantEvents := []string{"conversation.created", "order.requested", "task.created", "conversation.updated",
		"conversation.updated", "task.updated", "conversation.updated", "task.completed", "conversation.updated", "conversation.completed"}
	waitUntil(t, "events", func() bool { return len(hook.names()) >= len(wantEvents)+1 })
	time.Sleep(50 * time.Millisecond)
	got := slices.DeleteFunc(hook.names(), func(n string) bool { return n == "contact.created" })
	if len(got) != len(hook.names())-1 {
		t.Errorf("want one contact.created, got %v", hook.names())
	}
	if !slices.Equal(got, wantEvents) {
		t.Errorf("events\n got %v\nwant %v", got, wantEvents)
	}
	hook.mu.Lock()
	for _, ev := range hook.events {
		if ev["webhookId"] != subID || ev["id"] == "" || ev["timestamp"] == "" {
			t.Errorf("payload %v", ev)
		}
		if ev["event"] == "order.requested" {
			if d := ev["data"].(map[string]any); d["sku"] != "A1" || d["problem"] != "my order is late" || d["chatId"] != chatID {
				t.Errorf("order.requested data %v", d)
			}
		}
	}
	hook.mu.Unlock()

	r = e.do("GET", "/v1/event-webhooks/"+subID+"/deliveries?status=succeeded&limit=1000", nil)
	want(t, r, 200, "")
	if l := r.list(t); len(l) != len(wantEvents)+1 {
		t.Errorf("%d succeeded deliveries, want %d", len(l), len(wantEvents))
	}

	// Contacts.
	r = e.do("GET", "/v1/contacts/ann", nil)
	want(t, r, 200, "")
	if c := r.json(t); c["userAttributes"].(map[string]any)["email"] != "ann@example.com" || len(c["chats"].([]any)) != 1 {
		t.Fatalf("contact %s", r.body)
	}
	r = e.do("PUT", "/v1/contacts/ann", map[string]any{"userAttributes": map[string]any{"email": "ann@new.example"}})
	want(t, r, 200, "")
	r = e.do("DELETE", "/v1/contacts/ann", nil)
	want(t, r, 200, "")
	if d := r.json(t); d["chats"] != float64(1) || d["entries"].(float64) < 6 || d["deliveries"].(float64) < float64(len(wantEvents)) {
		t.Fatalf("erasure answer %s", r.body)
	}
	// The stored deliveries of her events keep only ids and a mark.
	r = e.do("GET", "/v1/event-webhooks/"+subID+"/deliveries?limit=1000", nil)
	want(t, r, 200, "")
	if got := string(r.body); containsAny(got, "ann@", "my order is late", "Hi Ann", "\"A1\"") || !contains(got, `"erased":true`) {
		t.Fatalf("deliveries after the erasure: %s", got)
	}
	r = e.do("GET", "/v1/contacts/ann", nil)
	want(t, r, 404, "contact_not_found")
	r = e.do("GET", "/v1/chats/"+chatID, nil)
	if got := string(r.body); containsAny(got, "ann@", "my order is late", "Hi Ann", "\"ann\"") {
		t.Fatalf("erased chat still holds personal data: %s", got)
	}
	// A retry of a message answered before the erasure does not get that
	// answer back: the chat (completed by now) answers as to a new message.
	r = e.do("POST", "/v1/chats/"+chatID+"/messages", map[string]any{"text": "my order is late", "messageId": "m-late"})
	if got := string(r.body); r.status == 200 || containsAny(got, "ann@", "my order is late", "Hi Ann", "A1") {
		t.Fatalf("a retry after the erasure: %d %s", r.status, got)
	}
	waitUntil(t, "contact events", func() bool { return slices.Contains(hook.names(), "contact.deleted") })
	if !slices.Contains(hook.names(), "contact.updated") {
		t.Errorf("no contact.updated event")
	}
	if hook.bad != 0 {
		t.Errorf("%d requests with a bad signature", hook.bad)
	}

	r = e.do("DELETE", "/v1/tasks/"+taskID, nil)
	want(t, r, 200, "")
	r = e.do("DELETE", "/v1/tasks/"+taskID, nil)
	want(t, r, 404, "task_not_found")
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if len(x) > 0 && json.Valid([]byte(s)) && contains(s, x) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestEventWebhookRoutes(t *testing.T) {
	e := newEventsEnv(t, false)
	for _, c := range []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"url": "http://127.0.0.1:9/x", "events": []string{"*"}}, 400, "address_refused"},
		{map[string]any{"url": "http://localhost:9/x", "events": []string{"*"}}, 400, "address_refused"},
		{map[string]any{"url": "ftp://example.com/", "events": []string{"*"}}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{}}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{"Bad Name"}}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{"a.b"}, "secret": ""}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{"a.b"}, "nope": 1}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{"a.b"}, "headers": map[string]string{"Bad Header": "x"}}, 400, "invalid_request"},
		{map[string]any{"url": "https://example.com/", "events": []string{"order.requested"}, "headers": map[string]string{"X-Key": "k"}}, 201, ""},
	} {
		r := e.do("POST", "/v1/event-webhooks", c.body)
		want(t, r, c.status, c.code)
	}
	r := e.do("GET", "/v1/event-webhooks", nil)
	l := r.list(t)
	if len(l) != 1 {
		t.Fatalf("list %s", r.body)
	}
	id := l[0]["id"].(string)
	want(t, e.do("GET", "/v1/event-webhooks/"+id, nil), 200, "")
	want(t, e.do("GET", "/v1/event-webhooks/nope", nil), 404, "event_webhook_not_found")
	want(t, e.do("GET", "/v1/event-webhooks/"+id+"/deliveries?limit=0", nil), 400, "invalid_request")
	want(t, e.do("POST", "/v1/event-webhooks/"+id+"/deliveries/nope/replay", nil), 404, "delivery_not_found")
	want(t, e.do("PATCH", "/v1/tasks/nochat_1", map[string]any{"assignee": "x"}), 404, "task_not_found")
	want(t, e.do("GET", "/v1/tasks?status=bogus", nil), 400, "invalid_request")
	want(t, e.do("DELETE", "/v1/event-webhooks/"+id, nil), 200, "")
	want(t, e.do("DELETE", "/v1/event-webhooks/"+id, nil), 404, "event_webhook_not_found")
	want(t, e.doAuth("GET", "/v1/event-webhooks", nil, ""), 401, "")
}

// TestEventWebhookTestAndReplay: the test route sends one signed sample;
// a delivery that failed every attempt is replayed once the receiver
// works.
func TestEventWebhookTestAndReplay(t *testing.T) {
	e := newEventsEnv(t, true)
	var mu sync.Mutex
	failing := true
	hook := &hookLog{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := failing
		mu.Unlock()
		if f {
			http.Error(w, "down", 503)
			return
		}
		hook.ServeHTTP(w, r)
	}))
	defer rcv.Close()
	e.putStory("short", shortStory)
	r := e.do("POST", "/v1/event-webhooks", map[string]any{"url": rcv.URL, "events": []string{"conversation.completed"}, "secret": "whsec"})
	want(t, r, 201, "")
	id := r.json(t)["id"].(string)
	r = e.do("POST", "/v1/event-webhooks/"+id+"/test", nil)
	want(t, r, 200, "")
	if m := r.json(t); m["success"] != false || m["status"] != float64(503) {
		t.Fatalf("test answer %s", r.body)
	}
	want(t, e.do("POST", "/v1/chats", map[string]any{"storyId": "short"}), 201, "")
	var did string
	waitUntil(t, "a failed delivery", func() bool {
		l := e.do("GET", "/v1/event-webhooks/"+id+"/deliveries?status=failed", nil).list(t)
		if len(l) == 1 {
			did = l[0]["id"].(string)
			return len(l[0]["attempts"].([]any)) == 4
		}
		return false
	})
	mu.Lock()
	failing = false
	mu.Unlock()
	r = e.do("POST", "/v1/event-webhooks/"+id+"/test", nil)
	if m := r.json(t); m["success"] != true {
		t.Fatalf("test answer %s", r.body)
	}
	want(t, e.do("POST", "/v1/event-webhooks/"+id+"/deliveries/"+did+"/replay", nil), 202, "")
	waitUntil(t, "the replayed delivery", func() bool {
		l := e.do("GET", "/v1/event-webhooks/"+id+"/deliveries?status=succeeded", nil).list(t)
		return len(l) == 1 && len(l[0]["attempts"].([]any)) == 5
	})
	if n := hook.names(); len(n) < 2 || n[0] != "conversation.completed" || n[1] != "conversation.completed" {
		t.Errorf("received %v", n)
	}
}

// TestTurnStoresWantedEvents: a turn stores in the outbox only the events
// some event webhook wants; one made through the API counts at once.
func TestTurnStoresWantedEvents(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	ob := e.st.(store.Outbox)
	claim := func() []store.Event {
		t.Helper()
		evs, err := ob.ClaimEvents(context.Background(), "test", time.Now().Add(time.Minute), 100)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	turn := func() {
		t.Helper()
		r := e.do("POST", "/v1/chats", map[string]any{"storyId": "counter"})
		want(t, r, 201, "")
		want(t, e.do("POST", "/v1/chats/"+r.json(t)["chatId"].(string)+"/messages", map[string]any{"text": "1"}), 200, "")
	}
	turn()
	if evs := claim(); len(evs) != 0 {
		t.Fatalf("%d events stored without an event webhook: %v", len(evs), evs)
	}
	r := e.do("POST", "/v1/event-webhooks", map[string]any{"url": "https://example.com/", "events": []string{"x.never"}})
	want(t, r, 201, "")
	turn()
	if evs := claim(); len(evs) != 0 {
		t.Fatalf("%d events stored that no event webhook wants: %v", len(evs), evs)
	}
	want(t, e.do("POST", "/v1/event-webhooks", map[string]any{"url": "https://example.com/", "events": []string{"conversation.created"}}), 201, "")
	turn()
	evs := claim()
	if len(evs) != 1 || evs[0].Name != "conversation.created" {
		t.Fatalf("events stored with a conversation.created webhook: %v", evs)
	}
}
