package nodes_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/webhook"
)

// hook is a loopback webhook service: it records each request and answers
// with the handler's answer.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
}

func newHook(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *hook {
	t.Helper()
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, r)
		h.bodies = append(h.bodies, b)
		n := len(h.reqs)
		h.mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(h.Close)
	return h
}

// answers answers status and body.
func answers(status int, body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func (h *hook) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reqs)
}

func (h *hook) body(t *testing.T, i int) map[string]any {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(h.bodies[i], &m); err != nil {
		t.Fatalf("request body %q: %v", h.bodies[i], err)
	}
	return m
}

// fast is the client of most tests: loopback allowed, short backoff.
var fast = webhook.NewClient(webhook.Options{AllowPrivate: true, Backoff: time.Millisecond})

func whLoad(t *testing.T, src string, o nodes.Options) *engine.Story {
	t.Helper()
	if o.Webhooks == nil {
		o.Webhooks = fast
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, _, err := stories.Load("story.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(o)})
	if err != nil {
		t.Fatalf("load: %v\n%s", err, src)
	}
	return s
}

func whRun(t *testing.T, s *engine.Story, c *engine.Chat, input string) []string {
	t.Helper()
	r := engine.Runner{Logger: slog.New(slog.DiscardHandler)}
	var turn *engine.Turn
	var err error
	if c.Node == s.Start && len(c.Transcript) == 0 && input == "" {
		turn, err = r.Start(context.Background(), s, c)
	} else {
		turn, err = r.Send(context.Background(), s, c, engine.Input{Text: input})
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var out []string
	for _, r := range turn.Output {
		out = append(out, r.Message+r.Title+r.ImageURL+r.FileURL)
	}
	return out
}

func TestWebhookRequest(t *testing.T) {
	h := newHook(t, answers(200, `{}`))
	s := whLoad(t, fmt.Sprintf(`
id: support
start: ask_email
attributes: {plan: free}
webhooks:
  crm:
    url: %s/crm?src=bot
    token: s3cret
    headers: {X-Source: storyflow, X-Api-Key: k1}
    auth: {username: bot, password: pw}
nodes:
  ask_email:
    type: question
    responses: [{type: text, message: "Email?"}]
    save: email
    next: check_customer
  check_customer:
    name: Check customer
    type: webhook
    webhook: crm
    next: inline
  inline:
    name: Inline call
    type: webhook
    webhook: {url: %q}
`, h.URL, h.URL+"/inline"), nodes.Options{})
	c := engine.NewChat(s, "chat-1", "user-1", "ext-1", map[string]any{"default_name": "Ann", "default_email": "ann@example.com"}, nil)
	whRun(t, s, c, "")
	before := time.Now().Unix()
	whRun(t, s, c, "ann@example.com")
	if h.calls() != 2 {
		t.Fatalf("%d calls, want 2", h.calls())
	}
	r, raw := h.reqs[0], h.bodies[0]
	if r.Method != "POST" || r.URL.RequestURI() != "/crm?src=bot" {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "X-Source": "storyflow", "X-Api-Key": "k1"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "bot" || p != "pw" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	ts := r.Header.Get("X-Storyflow-Timestamp")
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err != nil || sec < before-1 || sec > time.Now().Unix()+1 {
		t.Errorf("timestamp %q", ts)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(ts + "." + string(raw)))
	if got, want := r.Header.Get("X-Storyflow-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	body := h.body(t, 0)
	id, _ := body["messageId"].(string)
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("messageId %q is not a UUID", id)
	}
	want := map[string]any{
		"chatId": "chat-1", "messageId": id, "userId": "user-1", "externalId": "ext-1",
		"node": map[string]any{"id": "check_customer", "name": "Check customer", "type": "WEBHOOK",
			"webhookId": "crm", "webhookName": "crm"},
		"userAttributes": map[string]any{"default_name": "Ann", "default_email": "ann@example.com"},
		"attributes":     map[string]any{"plan": "free", "email": "ann@example.com"},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body %s\nwant %v", raw, want)
	}

	// The inline connection: its id and name are the node's; no token, no signature.
	inline := h.body(t, 1)
	if n := inline["node"]; !reflect.DeepEqual(n, map[string]any{"id": "inline", "name": "Inline call", "type": "WEBHOOK", "webhookId": "inline", "webhookName": "Inline call"}) {
		t.Errorf("inline node %v", n)
	}
	if inline["messageId"] == id {
		t.Errorf("two calls share messageId %s", id)
	}
	if h.reqs[1].Header.Get("X-Storyflow-Signature") != "" || h.reqs[1].URL.Path != "/inline" {
		t.Errorf("inline request %s signed %q", h.reqs[1].URL, h.reqs[1].Header.Get("X-Storyflow-Signature"))
	}
}

func TestWebhookAnswer(t *testing.T) {
	story := `
id: s
start: call
attributes: {plan: free, stale: x, keep: 1}
nodes:
  call:
    type: webhook
    webhook: {url: %q}
    routes:
      - when: webhook.status == 202
        next: accepted
      - when: attributes.plan == "pro"
        next: vip
    next: regular
    failure: sorry
  accepted: {type: end, responses: [{type: text, message: accepted}]}
  vip: {type: end, responses: [{type: text, message: vip}]}
  regular: {type: end, responses: [{type: text, message: regular}]}
  sorry: {type: end, responses: [{type: text, message: sorry}]}
`
	tests := []struct {
		name   string
		status int
		answer string
		attrs  map[string]any
		out    []string
	}{
		{"merge, remove, respond in order, route on attributes", 200,
			`{"responses":[{"type":"text","message":"a"},{"type":"randomText","messages":["b"]},{"type":"image","imageUrl":"https://x/i.png"}],
			  "attributes":{"plan":"pro","stale":null,"n":2,"obj":{"k":[1,"v"]}}}`,
			map[string]any{"plan": "pro", "keep": 1, "n": 2.0, "obj": map[string]any{"k": []any{1.0, "v"}}},
			[]string{"a", "b", "https://x/i.png", "vip"}},
		{"attributes only, no route: next", 200, `{"attributes":{"plan":"basic"}}`,
			map[string]any{"plan": "basic", "stale": "x", "keep": 1}, []string{"regular"}},
		{"empty answer", 200, ``, map[string]any{"plan": "free", "stale": "x", "keep": 1}, []string{"regular"}},
		{"route on webhook.status", 202, `{"attributes":{"plan":"pro"}}`,
			map[string]any{"plan": "pro", "stale": "x", "keep": 1}, []string{"accepted"}},
		{"goto button to a node of the story", 200,
			`{"responses":[{"type":"quickReplies","title":"Go?","buttons":[{"type":"goto","title":"VIP","value":"vip"}]}]}`,
			map[string]any{"plan": "free", "stale": "x", "keep": 1}, []string{"Go?", "regular"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t, answers(tt.status, tt.answer))
			s := whLoad(t, fmt.Sprintf(story, h.URL), nodes.Options{})
			c := engine.NewChat(s, "c", "", "", nil, nil)
			out := whRun(t, s, c, "")
			if !reflect.DeepEqual(out, tt.out) {
				t.Errorf("output %q, want %q", out, tt.out)
			}
			if !reflect.DeepEqual(c.Attributes, tt.attrs) {
				t.Errorf("attributes %v, want %v", c.Attributes, tt.attrs)
			}
			if c.Status != engine.StatusCompleted {
				t.Errorf("status %s", c.Status)
			}
		})
	}
}

func TestWebhookWithoutNextCompletes(t *testing.T) {
	h := newHook(t, answers(200, `{"responses":[{"type":"text","message":"done"}]}`))
	s := whLoad(t, fmt.Sprintf("id: s\nstart: call\nnodes:\n  call: {type: webhook, webhook: {url: %q}}\n", h.URL), nodes.Options{})
	c := engine.NewChat(s, "c", "", "", nil, nil)
	if out := whRun(t, s, c, ""); !reflect.DeepEqual(out, []string{"done"}) || c.Status != engine.StatusCompleted {
		t.Errorf("output %q, status %s", out, c.Status)
	}
}

// trickle answers 200, then a byte of white space every 20ms for 5s.
func trickle(w http.ResponseWriter, r *http.Request, _ int) {
	io.WriteString(w, `{"responses":[`)
	w.(http.Flusher).Flush()
	for range 250 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
			io.WriteString(w, " ")
			w.(http.Flusher).Flush()
		}
	}
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func hostPort(t *testing.T, raw string) netip.AddrPort {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

func TestWebhookFailures(t *testing.T) {
	story := `
id: s
start: ask
attributes: {plan: free}
webhooks:
  crm: {url: %q, timeout: %s}
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], save: q, next: call}
  call:
    type: webhook
    webhook: crm
    next: done
    failure: sorry
  done: {type: end, responses: [{type: text, message: done}]}
  sorry: {type: message, responses: [{type: text, message: sorry}], next: ask}
`
	target := newHook(t, answers(200, `{"attributes":{"plan":"pro"}}`))
	var redirect *hook
	redirect = newHook(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	guarded := webhook.NewClient(webhook.Options{
		Allow:    []netip.AddrPort{hostPort(t, redirect.URL)},
		Resolver: webhook.MapResolver(map[string][]netip.Addr{"crm.internal.test": {netip.MustParseAddr("10.0.0.1")}}),
	})
	big := `{"attributes":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request, int)
		url     string // instead of the handler's server
		client  *webhook.Client
		timeout string
		reason  string
	}{
		{name: "connection refused", url: closedPort(t), reason: "Connection refused"},
		{name: "DNS failure", url: "http://nowhere.test/hook", client: guarded, reason: "Host not found: nowhere.test"},
		{name: "timeout", handler: func(w http.ResponseWriter, r *http.Request, _ int) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, timeout: "100ms", reason: "Request timed out after 100ms"},
		{name: "body trickles past the timeout", handler: trickle, timeout: "200ms", reason: "Request timed out after 200ms"},
		{name: "404", handler: answers(404, "no"), reason: "Request failed with status code 404"},
		{name: "500", handler: answers(500, `{"error":"db down"}`), reason: "Request failed with status code 500: db down"},
		{name: "not JSON", handler: answers(200, "OK"), reason: "Response is not JSON"},
		{name: "5 MB answer", handler: answers(200, big), reason: "Response body exceeds 102400 bytes"},
		{name: "responses of a wrong type", handler: answers(200, `{"responses":"hi","attributes":{"plan":"pro"}}`), reason: "Invalid response: responses: must be a list, got string"},
		{name: "attributes of a wrong type", handler: answers(200, `{"attributes":["plan"]}`), reason: "Invalid response: attributes: must be an object, got array"},
		{name: "response breaks §2", handler: answers(200, `{"responses":[{"type":"text","message":"ok"},{"type":"text"}],"attributes":{"plan":"pro"}}`),
			reason: "Invalid response: responses[1].message: is required"},
		{name: "goto to no node", handler: answers(200, `{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"goto","title":"x","value":"nope"}]}]}`),
			reason: `Invalid response: responses[0].buttons[0].value: goto target "nope" names no node`},
		{name: "redirect to a refused address", url: redirect.URL, client: guarded, reason: "Address not allowed: 127.0.0.1 is a loopback address"},
		{name: "host resolving to 10.0.0.1", url: "http://crm.internal.test/hook", client: guarded, reason: "Address not allowed: 10.0.0.1 is a private address"},
		{name: "loopback refused by default", url: target.URL, client: webhook.NewClient(webhook.Options{}), reason: "Address not allowed: 127.0.0.1 is a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if tt.handler != nil {
				u = newHook(t, tt.handler).URL
			}
			timeout := cmpOr(tt.timeout, "2s")
			errs := newRecorded()
			logs := &records{}
			s := whLoad(t, fmt.Sprintf(story, u, timeout), nodes.Options{Webhooks: tt.client, WebhookErrors: errs, Logger: slog.New(logs)})
			c := engine.NewChat(s, "c", "", "", nil, nil)
			whRun(t, s, c, "")
			start := time.Now()
			out := whRun(t, s, c, "hello")
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("failure took %s", d)
			}
			if !reflect.DeepEqual(out, []string{"sorry", "?"}) {
				t.Errorf("output %q, want sorry and the question again", out)
			}
			if want := map[string]any{"plan": "free", "q": "hello"}; !reflect.DeepEqual(c.Attributes, want) {
				t.Errorf("attributes %v, want %v", c.Attributes, want)
			}
			if got := errs.Get("s", "crm"); got != tt.reason {
				t.Errorf("recorded %q, want %q", got, tt.reason)
			}
			if got := logs.messages(); len(got) != 1 || !strings.Contains(got[0], tt.reason) {
				t.Errorf("logs %q, want one record with the reason", got)
			}
			if target.calls() != 0 {
				t.Errorf("refused target was called %d times", target.calls())
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// records is a slog handler keeping each record as text.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}

func (r *records) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func TestWebhookErrorClearedBySuccess(t *testing.T) {
	h := newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{}`)
	})
	errs := newRecorded()
	s := whLoad(t, fmt.Sprintf("id: s\nstart: call\nwebhooks: {crm: {url: %q}}\nnodes:\n  call: {type: webhook, webhook: crm, failure: call_again}\n  call_again: {type: webhook, webhook: crm}\n", h.URL),
		nodes.Options{WebhookErrors: errs})
	c := engine.NewChat(s, "c", "", "", nil, nil)
	errs.Record(context.Background(), &webhook.Connection{StoryID: "s", ID: "crm"}, "old")
	whRun(t, s, c, "")
	if h.calls() != 2 || c.Status != engine.StatusCompleted {
		t.Fatalf("%d calls, status %s", h.calls(), c.Status)
	}
	if got := errs.Get("s", "crm"); got != "" {
		t.Errorf("after a success the error is %q", got)
	}
}

// TestWebhookFailureWithoutBranch: no failure branch means onError, or an
// apology after which the chat waits where it was; a later input works.
func TestWebhookFailureWithoutBranch(t *testing.T) {
	var healthy bool
	var mu sync.Mutex
	h := newHook(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		ok := healthy
		mu.Unlock()
		if !ok {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, `{"responses":[{"type":"text","message":"found you"}]}`)
	})
	setHealthy := func(v bool) { mu.Lock(); healthy = v; mu.Unlock() }
	body := fmt.Sprintf(`
webhooks: {crm: {url: %q}}
nodes:
  ask: {type: question, responses: [{type: text, message: "Email?"}], save: email, next: call}
  call: {type: webhook, webhook: crm, next: done}
  done: {type: end, responses: [{type: text, message: bye}]}
  oops: {type: message, responses: [{type: text, message: "Our system is down."}], next: ask}
`, h.URL)

	t.Run("apology, waits at the question", func(t *testing.T) {
		setHealthy(false)
		s := whLoad(t, "id: s\nstart: ask\n"+body, nodes.Options{})
		c := engine.NewChat(s, "c", "", "", nil, nil)
		whRun(t, s, c, "")
		out := whRun(t, s, c, "a@example.com")
		if !reflect.DeepEqual(out, []string{engine.DefaultApology}) || c.Node != "ask" || !c.Waiting || c.Status != engine.StatusActive {
			t.Fatalf("output %q, node %s waiting %v status %s", out, c.Node, c.Waiting, c.Status)
		}
		if !strings.Contains(c.Error, "Request failed with status code 503") {
			t.Errorf("chat error %q", c.Error)
		}
		setHealthy(true)
		if out := whRun(t, s, c, "b@example.com"); !reflect.DeepEqual(out, []string{"found you", "bye"}) || c.Status != engine.StatusCompleted {
			t.Errorf("after recovery: %q, status %s", out, c.Status)
		}
	})
	t.Run("apology at start, the next input calls again", func(t *testing.T) {
		setHealthy(false)
		s := whLoad(t, "id: s\nstart: call\n"+body, nodes.Options{})
		c := engine.NewChat(s, "c", "", "", nil, nil)
		if out := whRun(t, s, c, ""); !reflect.DeepEqual(out, []string{engine.DefaultApology}) || !c.Waiting {
			t.Fatalf("output %q waiting %v", out, c.Waiting)
		}
		setHealthy(true)
		if out := whRun(t, s, c, "again"); !reflect.DeepEqual(out, []string{"found you", "bye"}) {
			t.Errorf("after recovery: %q", out)
		}
	})
	t.Run("onError node", func(t *testing.T) {
		setHealthy(false)
		s := whLoad(t, "id: s\nstart: ask\nonError: oops\n"+body, nodes.Options{})
		c := engine.NewChat(s, "c", "", "", nil, nil)
		whRun(t, s, c, "")
		if out := whRun(t, s, c, "a@example.com"); !reflect.DeepEqual(out, []string{"Our system is down.", "Email?"}) || c.Node != "ask" {
			t.Fatalf("output %q at %s", out, c.Node)
		}
		setHealthy(true)
		if out := whRun(t, s, c, "a@example.com"); !reflect.DeepEqual(out, []string{"found you", "bye"}) {
			t.Errorf("after recovery: %q", out)
		}
	})
}

func TestWebhookRetriesSameMessageID(t *testing.T) {
	h := newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, `{"attributes":{"ok":true}}`)
	})
	s := whLoad(t, fmt.Sprintf("id: s\nstart: call\nnodes:\n  call: {type: webhook, webhook: {url: %q, retries: 2}}\n", h.URL), nodes.Options{})
	c := engine.NewChat(s, "c", "", "", nil, nil)
	whRun(t, s, c, "")
	if h.calls() != 3 || c.Attributes["ok"] != true {
		t.Fatalf("%d calls, attributes %v", h.calls(), c.Attributes)
	}
	id := h.body(t, 0)["messageId"]
	for i := 1; i < 3; i++ {
		if got := h.body(t, i)["messageId"]; got != id {
			t.Errorf("attempt %d messageId %v, first %v", i+1, got, id)
		}
	}
}

// conns is an API connection store for tests.
type conns struct {
	mu  sync.Mutex
	m   map[string]webhook.Connection // storyID/name
	err error
}

func (cs *conns) Lookup(_ context.Context, storyID, name string) (webhook.Connection, bool, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.err != nil {
		return webhook.Connection{}, false, cs.err
	}
	c, ok := cs.m[storyID+"/"+name]
	return c, ok, nil
}

func (cs *conns) set(key string, c *webhook.Connection) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c == nil {
		delete(cs.m, key)
		return
	}
	cs.m[key] = *c
}

func TestWebhookAPIConnections(t *testing.T) {
	first := newHook(t, answers(200, `{"attributes":{"via":"first"}}`))
	second := newHook(t, answers(404, ``))
	store := &conns{m: map[string]webhook.Connection{
		"s/tracking": {StoryID: "s", ID: "611f9ad1fe24s3d0007d14ad4", Name: "tracking", URL: first.URL, Token: "t"},
	}}
	errs := newRecorded()
	src := `
id: s
start: ask
webhooks: {crm: {url: "https://crm.example.com/hook"}}
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], next: call}
  call: {type: webhook, webhook: tracking, next: ask, failure: sorry}
  sorry: {type: message, responses: [{type: text, message: sorry}], next: ask}
`
	s := whLoad(t, src, nodes.Options{Connections: store, WebhookErrors: errs})
	c := engine.NewChat(s, "c", "", "", nil, nil)
	whRun(t, s, c, "")
	whRun(t, s, c, "x")
	if c.Attributes["via"] != "first" {
		t.Fatalf("attributes %v", c.Attributes)
	}
	if n := first.body(t, 0)["node"].(map[string]any); n["webhookId"] != "611f9ad1fe24s3d0007d14ad4" || n["webhookName"] != "tracking" {
		t.Errorf("node %v", n)
	}
	// The connection is looked up per call: a changed URL is used at once.
	store.set("s/tracking", &webhook.Connection{StoryID: "s", ID: "611f9ad1fe24s3d0007d14ad4", Name: "tracking", URL: second.URL})
	if out := whRun(t, s, c, "y"); !reflect.DeepEqual(out, []string{"sorry", "?"}) || second.calls() != 1 {
		t.Fatalf("output %q, %d calls", out, second.calls())
	}
	if got := errs.Get("s", "611f9ad1fe24s3d0007d14ad4"); got != "Request failed with status code 404" {
		t.Errorf("recorded %q", got)
	}
	// Deleted after the story loaded: a failure like any other.
	store.set("s/tracking", nil)
	if out := whRun(t, s, c, "z"); !reflect.DeepEqual(out, []string{"sorry", "?"}) {
		t.Errorf("deleted connection: %q", out)
	}
	// A store error at call time fails the call, not the process.
	store.err = errors.New("db down")
	if out := whRun(t, s, c, "z"); !reflect.DeepEqual(out, []string{"sorry", "?"}) {
		t.Errorf("lookup error: %q", out)
	}
}

func TestWebhookLoadErrors(t *testing.T) {
	store := &conns{m: map[string]webhook.Connection{"s/api": {StoryID: "s", ID: "a1", Name: "api", URL: "https://x/"}}}
	tests := []struct {
		name  string
		conns webhook.Connections
		src   string
		want  []string
	}{
		{"unknown connection", nil, `
nodes:
  call: {type: webhook, webhook: nope}`,
			[]string{`story.yaml:4:34: node "call" (webhook): webhook connection "nope" not found in the story's webhooks section`}},
		{"unknown connection with an API store", store, `
nodes:
  call: {type: webhook, webhook: nope}`,
			[]string{`story.yaml:4:34: node "call" (webhook): webhook connection "nope" not found in the story's webhooks section or the API's connections`}},
		{"API connection", store, `
nodes:
  call: {type: webhook, webhook: api}`, nil},
		{"API store fails", &conns{err: errors.New("db down")}, `
nodes:
  call: {type: webhook, webhook: api}`,
			[]string{`story.yaml:4:34: node "call" (webhook): look up webhook connection "api": db down`}},
		{"connection fields", nil, `
webhooks:
  crm:
    url: ftp://crm.example.com
    token: ""
    tokn: x
    headers: {"X Y": v}
    auth: {username: bot}
    timeout: 5m
    retries: 9
    max_in_flight: 5000
nodes:
  call: {type: webhook, webhook: crm}`,
			[]string{
				`story.yaml:5:10: node "call" (webhook): connection crm: url must start with http:// or https://`,
				`story.yaml:6:12: node "call" (webhook): connection crm: token must be 1 to 1024 characters`,
				`story.yaml:7:5: node "call" (webhook): field tokn not recognised (did you mean token?)`,
				`story.yaml:8:14: node "call" (webhook): connection crm: header X Y: "X Y" is not a valid header name`,
				`story.yaml:9:11: node "call" (webhook): field password is required`,
				`story.yaml:10:14: node "call" (webhook): connection crm: timeout must be more than 0 and at most 2m0s, got 5m0s`,
				`story.yaml:11:14: node "call" (webhook): connection crm: retries must be 0 to 5, got 9`,
				`story.yaml:12:20: node "call" (webhook): connection crm: max_in_flight must be 1 to 1000, got 5000`,
			}},
		{"max_in_flight 0", nil, `
nodes:
  call: {type: webhook, webhook: {url: "https://x/", max_in_flight: 0}}`,
			[]string{`story.yaml:4:69: node "call" (webhook): connection call: max_in_flight must be 1 to 1000, got 0`}},
		{"empty password", nil, `
webhooks:
  crm: {url: "https://x/", auth: {username: bot, password: ""}}
nodes:
  call: {type: webhook, webhook: crm}`,
			[]string{`story.yaml:4:60: node "call" (webhook): connection crm: auth.password must be 1 to 1024 characters`}},
		{"inline connection", nil, `
nodes:
  call:
    type: webhook
    webhook: {url: "https://x/", colour: red}`,
			[]string{`story.yaml:6:34: node "call" (webhook): field colour not recognised`}},
		{"connection not an object", nil, `
webhooks: {crm: https://x/}
nodes:
  call: {type: webhook, webhook: crm}`,
			[]string{`story.yaml:3:17: node "call" (webhook): webhook connection "crm" must be an object with a url`}},
		{"format settings", nil, `
nodes:
  a: {type: webhook, webhook: {url: "https://x/"}, format: openai, next: b}
  b: {type: webhook, webhook: {url: "https://x/"}, format: chatbot, model: m, history: 3, next: c}
  c: {type: webhook, webhook: {url: "https://x/"}, format: messages, history: 0, next: d}
  d: {type: webhook, webhook: {url: "https://x/"}, format: soap, failure: nowhere}`,
			[]string{
				`story.yaml:4:6: node "a" (webhook): field model is required with format openai`,
				`story.yaml:5:76: node "b" (webhook): field model only applies to format openai and anthropic`,
				`story.yaml:5:88: node "b" (webhook): field history only applies to format messages, openai and anthropic`,
				`story.yaml:6:79: node "c" (webhook): history must be 1 to 100, got 0`,
				`story.yaml:7:60: node "d" (webhook): format "soap" unknown (want one of chatbot, messages, widget, openai, anthropic)`,
				`story.yaml:7:75: node "d" (webhook): failure: node "nowhere" not found`,
			}},
		{"AI settings", nil, `
nodes:
  a: {type: webhook, webhook: {url: "https://x/"}, format: anthropic, model: m, next: b}
  b: {type: webhook, webhook: {url: "https://x/"}, format: anthropic, model: m, max_tokens: 0, temperature: 1.5, next: c}
  c: {type: webhook, webhook: {url: "https://x/"}, format: openai, model: m, top_p: 2, stop: [a, b, c, d, e], next: d}
  d: {type: webhook, webhook: {url: "https://x/"}, format: openai, model: m, max_tokens: 5, max_completion_tokens: 5, next: e}
  e: {type: webhook, webhook: {url: "https://x/"}, format: widget, system: s, image: i, temperature: 1}`,
			[]string{
				`story.yaml:4:6: node "a" (webhook): field max_tokens is required with format anthropic: the Messages API refuses a request without it`,
				`story.yaml:5:93: node "b" (webhook): max_tokens must be at least 1, got 0`,
				`story.yaml:5:109: node "b" (webhook): temperature must be 0 to 1, got 1.5`,
				`story.yaml:6:85: node "c" (webhook): top_p must be 0 to 1, got 2`,
				`story.yaml:6:94: node "c" (webhook): stop must hold at most 4 sequences with format openai, got 5`,
				`story.yaml:7:116: node "d" (webhook): set max_tokens or max_completion_tokens, not both`,
				`story.yaml:8:76: node "e" (webhook): field system only applies to format messages, openai and anthropic`,
				`story.yaml:8:86: node "e" (webhook): field image only applies to format messages, openai and anthropic`,
				`story.yaml:8:102: node "e" (webhook): field temperature only applies to format openai and anthropic`,
			}},
		{"webhook missing", nil, `
nodes:
  call: {type: webhook}`,
			[]string{`story.yaml:4:9: node "call" (webhook): field webhook is required`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := nodes.NewRegistry(nodes.Options{Connections: tt.conns})
			_, _, err := stories.Load("story.yaml", []byte("id: s\nstart: "+firstNode(tt.src)+tt.src+"\n"), stories.Options{Registry: reg})
			var got []string
			var le *engine.LintError
			if errors.As(err, &le) {
				for _, l := range le.Lints {
					if !l.Warning {
						got = append(got, l.String())
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func firstNode(src string) string {
	_, rest, _ := strings.Cut(src, "nodes:\n  ")
	name, _, _ := strings.Cut(rest, ":")
	return name
}

func TestWebhookFormats(t *testing.T) {
	t.Run("messages: transcript window, channel context, metadata in the transcript", func(t *testing.T) {
		h := newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
			fmt.Fprintf(w, `{"content":"answer %d","metadata":{"turn":%d}}`, n, n)
		})
		s := whLoad(t, fmt.Sprintf(`
id: s
name: Support bot
start: ask
nodes:
  ask: {type: question, responses: [{type: text, message: "Ask me"}], next: ai}
  ai: {type: webhook, webhook: {url: %q}, format: messages, history: 3, next: ask}
`, h.URL), nodes.Options{})
		c := engine.NewChat(s, "c1", "u1", "", map[string]any{"default_name": "Ann"}, nil)
		whRun(t, s, c, "")
		if out := whRun(t, s, c, "first"); !reflect.DeepEqual(out, []string{"answer 1", "Ask me"}) {
			t.Fatalf("output %q", out)
		}
		whRun(t, s, c, "second")
		want := map[string]any{
			"messages": []any{
				map[string]any{"role": "user", "content": "first"},
				map[string]any{"role": "assistant", "content": "answer 1\nAsk me"},
				map[string]any{"role": "user", "content": "second"},
			},
			"conversation_id": "c1",
			"user":            map[string]any{"id": "u1", "platform": "storyflow", "name": "Ann"},
			"bot":             map[string]any{"id": "s", "name": "Support bot"},
			"metadata": map[string]any{"channel": "storyflow", "chat_id": "c1",
				"message_id": h.reqs[1].Header.Get("X-Storyflow-Message-Id")},
		}
		if got := h.body(t, 1); !reflect.DeepEqual(got, want) {
			t.Errorf("request %v\nwant    %v", got, want)
		}
		if md, ok := c.Attributes["metadata"]; ok {
			t.Errorf("answer metadata in attributes: %v", md)
		}
		var calls []map[string]any
		for _, e := range c.Transcript {
			if e.Call != nil {
				calls = append(calls, e.Call.Metadata)
			}
		}
		if want := []map[string]any{{"turn": 1.0}, {"turn": 2.0}}; !reflect.DeepEqual(calls, want) {
			t.Errorf("metadata in the transcript %v, want %v", calls, want)
		}
	})
	t.Run("widget: prompt is the input", func(t *testing.T) {
		h := newHook(t, answers(200, `{"output":"Hello!"}`))
		s := whLoad(t, fmt.Sprintf("id: s\nstart: ask\nnodes:\n  ask: {type: question, responses: [{type: text, message: \"?\"}], next: w}\n  w: {type: webhook, webhook: {url: %q}, format: widget}\n", h.URL), nodes.Options{})
		c := engine.NewChat(s, "c1", "", "", nil, nil)
		whRun(t, s, c, "")
		if out := whRun(t, s, c, "Hi there"); !reflect.DeepEqual(out, []string{"Hello!"}) {
			t.Errorf("output %q", out)
		}
		if got := h.body(t, 0); !reflect.DeepEqual(got, map[string]any{"prompt": "Hi there", "session_id": "c1"}) {
			t.Errorf("request %v", got)
		}
	})
	t.Run("openai: model, system template, history, bearer token", func(t *testing.T) {
		h := newHook(t, answers(200, `{"choices":[{"message":{"role":"assistant","content":"Sure."}}]}`))
		s := whLoad(t, fmt.Sprintf(`
id: s
start: ask
attributes: {plan: pro}
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], next: ai}
  ai:
    type: webhook
    webhook: {url: %q, token: sk-test}
    format: openai
    model: gpt-4o-mini
    system: "You help {{ attributes.plan }} customers."
    history: 2
    next: ask
`, h.URL+"/v1"), nodes.Options{})
		c := engine.NewChat(s, "c1", "", "", nil, nil)
		whRun(t, s, c, "")
		if out := whRun(t, s, c, "help"); !reflect.DeepEqual(out, []string{"Sure.", "?"}) {
			t.Errorf("output %q", out)
		}
		want := map[string]any{"model": "gpt-4o-mini", "messages": []any{ // starts with the user
			map[string]any{"role": "system", "content": "You help pro customers."},
			map[string]any{"role": "user", "content": "help"},
		}}
		if got := h.body(t, 0); !reflect.DeepEqual(got, want) {
			t.Errorf("request %v", got)
		}
		if r := h.reqs[0]; r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test" {
			t.Errorf("request %s auth %q", r.URL.Path, r.Header.Get("Authorization"))
		}
	})
}

func TestWebhookSpec(t *testing.T) {
	spec, _, ok := nodes.NewRegistry(nodes.Options{}).Lookup("webhook")
	if !ok {
		t.Fatal("webhook not registered")
	}
	var names []string
	for _, f := range spec.Fields {
		names = append(names, f.Name)
	}
	if want := []string{"webhook", "format", "routes", "next", "failure", "sets", "model", "system", "history",
		"image", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop"}; !reflect.DeepEqual(names, want) {
		t.Errorf("fields %v", names)
	}
	f, _ := spec.Field("webhook")
	if !f.Required || f.Schema == nil {
		t.Errorf("webhook field %+v", f)
	}
	if _, _, ok := nodes.NewRegistry(nodes.Options{}).Lookup("webhook"); !ok {
		t.Error("webhook not in nodes.NewRegistry")
	}
}

// TestWebhookLogsOnce: a failure is logged once, by the node when it takes
// the failure branch, else by the runner.
func TestWebhookLogsOnce(t *testing.T) {
	h := newHook(t, answers(404, ""))
	for _, failure := range []string{"", ", failure: sorry"} {
		t.Run("failure"+failure, func(t *testing.T) {
			nodeLogs, runLogs := &records{}, &records{}
			s := whLoad(t, fmt.Sprintf("id: s\nstart: call\nnodes:\n  call: {type: webhook, webhook: {url: %q}%s}\n  sorry: {type: end, responses: [{type: text, message: sorry}]}\n", h.URL, failure),
				nodes.Options{Logger: slog.New(nodeLogs)})
			c := engine.NewChat(s, "c", "", "", nil, nil)
			r := engine.Runner{Logger: slog.New(runLogs)}
			if _, err := r.Start(context.Background(), s, c); err != nil {
				t.Fatal(err)
			}
			all := append(nodeLogs.messages(), runLogs.messages()...)
			if len(all) != 1 || !strings.Contains(all[0], "Request failed with status code 404") {
				t.Errorf("logs %q, want one record with the reason", all)
			}
		})
	}
}

// TestWebhookConcurrentChats: one story, one client, many chats at once.
func TestWebhookConcurrentChats(t *testing.T) {
	var h *hook
	h = newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		h.mu.Lock()
		body := h.bodies[n-1]
		h.mu.Unlock()
		var req struct{ ChatID string }
		json.Unmarshal(body, &req)
		fmt.Fprintf(w, `{"attributes":{"echo":%q}}`, req.ChatID)
	})
	s := whLoad(t, fmt.Sprintf("id: s\nstart: call\nnodes:\n  call: {type: webhook, webhook: {url: %q}}\n", h.URL), nodes.Options{})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			c := engine.NewChat(s, fmt.Sprintf("c%d", i), "", "", nil, nil)
			var r engine.Runner
			if _, err := r.Start(context.Background(), s, c); err != nil || c.Attributes["echo"] != c.ID {
				t.Errorf("chat %s: %v, attributes %v, error %q", c.ID, err, c.Attributes, c.Error)
			}
		})
	}
	wg.Wait()
}

// A stored story built again after its API connection was deleted still
// loads (with a warning); calls take the failure branch.
func TestWebhookRecompileWithoutConnection(t *testing.T) {
	src := `
id: s
start: ask
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], next: call}
  call: {type: webhook, webhook: gone, next: ask, failure: sorry}
  sorry: {type: message, responses: [{type: text, message: sorry}], next: ask}
`
	reg := nodes.NewRegistry(nodes.Options{Connections: &conns{m: map[string]webhook.Connection{}}, Webhooks: fast, Logger: slog.New(slog.DiscardHandler)})
	if _, _, err := stories.Load("s.yaml", []byte(src), stories.Options{Registry: reg}); err == nil || !strings.Contains(err.Error(), `webhook connection "gone" not found`) {
		t.Fatalf("first load: %v", err)
	}
	s, warns, err := stories.Load("s.yaml", []byte(src), stories.Options{Registry: reg, Recompile: true})
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].Message, "no longer exists") {
		t.Fatalf("recompile: %v %v", err, warns)
	}
	c := engine.NewChat(s, "c", "", "", nil, nil)
	whRun(t, s, c, "")
	if out := whRun(t, s, c, "x"); !reflect.DeepEqual(out, []string{"sorry", "?"}) {
		t.Errorf("output %q", out)
	}
}

// TestWebhookAIUsage: the model, stop reason and tokens of an openai or
// anthropic call are kept on the transcript entry of its first response,
// and written with the transcript.
func TestWebhookAIUsage(t *testing.T) {
	tests := []struct {
		format, extra, answer, path string
		want                        engine.Call
		request                     map[string]any
	}{
		{format: "openai", extra: "temperature: 0.3\n    max_tokens: 64\n    stop: [END]",
			answer: `{"model":"gpt-x-1","choices":[{"message":{"role":"assistant","content":"Sure."},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":2}}`,
			path:   "/v1/chat/completions",
			want:   engine.Call{Format: "openai", Model: "gpt-x-1", StopReason: "stop", InputTokens: 30, OutputTokens: 2},
			request: map[string]any{"model": "m1", "temperature": 0.3, "max_tokens": 64.0, "stop": []any{"END"}, "messages": []any{
				map[string]any{"role": "system", "content": "Help pro customers."},
				map[string]any{"role": "user", "content": []any{
					map[string]any{"type": "text", "text": "what is this?"},
					map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://cdn.example/p.jpg"}}}}}}},
		{format: "anthropic", extra: "max_tokens: 200\n    top_p: 0.5",
			answer: `{"type":"message","model":"claude-x","content":[{"type":"text","text":"Sure."}],"stop_reason":"end_turn","usage":{"input_tokens":40,"output_tokens":2,"cache_read_input_tokens":5}}`,
			path:   "/v1/messages",
			want:   engine.Call{Format: "anthropic", Model: "claude-x", StopReason: "end_turn", InputTokens: 45, OutputTokens: 2},
			request: map[string]any{"model": "m1", "max_tokens": 200.0, "top_p": 0.5, "system": "Help pro customers.", "messages": []any{
				map[string]any{"role": "user", "content": []any{
					map[string]any{"type": "image", "source": map[string]any{"type": "url", "url": "https://cdn.example/p.jpg"}},
					map[string]any{"type": "text", "text": "what is this?"}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			h := newHook(t, answers(200, tt.answer))
			s := whLoad(t, fmt.Sprintf(`
id: s
start: ask
attributes: {plan: pro, photo: "https://cdn.example/p.jpg"}
nodes:
  ask: {type: question, responses: [{type: text, message: "Ask me"}], next: ai}
  ai:
    type: webhook
    webhook: {url: %q, token: k}
    format: %s
    model: m1
    system: "Help {{ attributes.plan }} customers."
    image: "{{ attributes.photo }}"
    %s
    next: ask
`, h.URL, tt.format, tt.extra), nodes.Options{})
			c := engine.NewChat(s, "c1", "", "", nil, nil)
			whRun(t, s, c, "")
			if out := whRun(t, s, c, "what is this?"); !reflect.DeepEqual(out, []string{"Sure.", "Ask me"}) {
				t.Fatalf("output %q", out)
			}
			if got := h.body(t, 0); !reflect.DeepEqual(got, tt.request) {
				t.Errorf("request %v\nwant    %v", got, tt.request)
			}
			if p := h.reqs[0].URL.Path; p != tt.path {
				t.Errorf("path %s", p)
			}
			var calls []engine.Call
			for _, e := range c.Transcript {
				if e.Call != nil {
					calls = append(calls, *e.Call)
					if e.Response == nil || e.Response.Message != "Sure." {
						t.Errorf("call on entry %+v", e)
					}
				}
			}
			if !reflect.DeepEqual(calls, []engine.Call{tt.want}) {
				t.Fatalf("calls %+v, want %+v", calls, tt.want)
			}
			b, _ := json.Marshal(c.Transcript)
			var back []engine.Entry
			if err := json.Unmarshal(b, &back); err != nil || !slices.ContainsFunc(back, func(e engine.Entry) bool { return e.Call != nil && reflect.DeepEqual(*e.Call, tt.want) }) {
				t.Errorf("transcript JSON %s", b)
			}
		})
	}
}

// TestWebhookBeforeInput: an AI-format node that can run before any user
// input is a load warning; at run time it sends nothing, takes the failure
// branch and leaves the connection's error alone.
func TestWebhookBeforeInput(t *testing.T) {
	tests := []struct {
		name, nodes string
		warning     string
	}{
		{"openai without system", "  ai: {type: webhook, webhook: crm, format: openai, model: m, next: done}\n",
			`story.yaml:6:3: warning: node "ai" (webhook): format openai sends no messages before the chat has user input and without a system message, which the API refuses: set system or put a question before this node`},
		{"openai with system", "  ai: {type: webhook, webhook: crm, format: openai, model: m, system: Greet the user., next: done}\n", ""},
		{"anthropic", "  ai: {type: webhook, webhook: crm, format: anthropic, model: m, max_tokens: 10, system: Greet., next: done}\n",
			`story.yaml:6:3: warning: node "ai" (webhook): format anthropic sends no messages before the chat has user input, which the Messages API refuses: put a question before this node`},
		{"messages", "  ai: {type: webhook, webhook: crm, format: messages, next: done}\n",
			`story.yaml:6:3: warning: node "ai" (webhook): format messages sends no messages before the chat has user input: put a question before this node`},
		{"widget", "  ai: {type: webhook, webhook: crm, format: widget, next: done}\n",
			`story.yaml:6:3: warning: node "ai" (webhook): format widget sends an empty prompt before the chat has user input, which the widget backend refuses: put a question before this node`},
		{"chatbot", "  ai: {type: webhook, webhook: crm, next: done}\n", ""},
		{"after a question", "  ai: {type: question, responses: [{type: text, message: \"?\"}], next: ai2}\n  ai2: {type: webhook, webhook: crm, format: anthropic, model: m, max_tokens: 10, next: done}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t, answers(200, `{}`))
			errs := newRecorded()
			src := fmt.Sprintf("id: s\nstart: hi\nwebhooks: {crm: {url: %q}}\nnodes:\n  hi: {type: message, responses: [{type: text, message: Hi}], next: ai}\n  done: {type: end, responses: [{type: text, message: done}]}\n  sorry: {type: end, responses: [{type: text, message: sorry}]}\n", h.URL)
			src = strings.Replace(src, "  done:", "\n"+tt.nodes+"  done:", 1)
			src = strings.Replace(src, "next: done}\n", "next: done, failure: sorry}\n", 1)
			src = strings.ReplaceAll(src, "\n\n", "\n")
			s, lints, err := stories.Load("story.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(nodes.Options{Webhooks: fast, WebhookErrors: errs, Logger: slog.New(slog.DiscardHandler)})})
			if err != nil {
				t.Fatalf("load: %v\n%s", err, src)
			}
			var warnings []string
			for _, l := range lints {
				if l.Warning {
					warnings = append(warnings, l.String())
				}
			}
			want := []string{}
			if tt.warning != "" {
				want = []string{tt.warning}
			}
			if !reflect.DeepEqual(append([]string{}, warnings...), want) {
				t.Fatalf("warnings %q\nwant     %q\n%s", warnings, want, src)
			}
			if tt.warning == "" {
				return
			}
			c := engine.NewChat(s, "c1", "", "", nil, nil)
			out := whRun(t, s, c, "")
			if !reflect.DeepEqual(out, []string{"Hi", "sorry"}) || h.calls() != 0 {
				t.Errorf("output %q, %d calls", out, h.calls())
			}
			if e := errs.Get("s", "crm"); e != "" {
				t.Errorf("connection error %q", e)
			}
		})
	}
}

// TestWebhookWidgetForm: a widget form with a submitUrl is filled in the
// chat, field by field with the field types checked, then posted to the
// submitUrl; its message is sent and the node goes on.
func TestWebhookWidgetForm(t *testing.T) {
	var h *hook
	h = newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/contact-form" {
			io.WriteString(w, `{"success":true,"message":"Thank you! We received your message."}`)
			return
		}
		fmt.Fprintf(w, `{"content":"I'd be happy to help you get in touch:","content_type":"form","content_attributes":{"form":{
			"title":"Contact Us","submitUrl":%q,"fields":[
			{"id":"email","type":"email","label":"Email Address","required":true},
			{"id":"topic","type":"select","label":"Topic","options":["Sales",{"label":"Support","value":"support"}],"required":true},
			{"id":"age","type":"number","label":"Age"}]}}}`, h.URL+"/contact-form")
	})
	s := whLoad(t, fmt.Sprintf(`
id: s
start: ask
nodes:
  ask: {type: question, responses: [{type: text, message: "How can I help?"}], next: w}
  w: {type: webhook, webhook: {url: %q, token: secret}, format: widget, next: done}
  done: {type: end, responses: [{type: text, message: "Bye"}]}
`, h.URL), nodes.Options{})
	c := engine.NewChat(s, "c1", "", "", nil, nil)
	whRun(t, s, c, "")
	steps := []struct {
		in   string
		want []string
	}{
		{"contact", []string{"I'd be happy to help you get in touch:", "Contact Us", "Email Address (an email address)"}},
		{"not an email", []string{"Please enter an email address.", "Email Address (an email address)"}},
		{"ann@example.com", []string{"Topic"}},
		{"support", []string{"Age (a number)"}},
		{"skip", []string{"Thank you! We received your message.", "Bye"}},
	}
	for i, st := range steps {
		if out := whRun(t, s, c, st.in); !reflect.DeepEqual(out, st.want) {
			t.Fatalf("step %d %q: output %q, want %q", i, st.in, out, st.want)
		}
		if i < len(steps)-1 && (c.Node != "w" || !c.Waiting) {
			t.Fatalf("step %d: chat at %s, waiting %v", i, c.Node, c.Waiting)
		}
	}
	if h.calls() != 2 {
		t.Fatalf("%d calls", h.calls())
	}
	if got := h.body(t, 1); !reflect.DeepEqual(got, map[string]any{"email": "ann@example.com", "topic": "support"}) {
		t.Errorf("submitted %v", got)
	}
	if r := h.reqs[1]; !strings.HasPrefix(r.Header.Get("X-Storyflow-Signature"), "sha256=") {
		t.Error("submission not signed")
	}
	if _, ok := c.Attributes[nodes.FormAttribute]; ok || c.Status != engine.StatusCompleted {
		t.Errorf("attributes %v, status %s", c.Attributes, c.Status)
	}
}

// TestWebhookWidgetFormRefused: a refused submission takes the failure
// branch with the answer's error as the reason.
func TestWebhookWidgetFormRefused(t *testing.T) {
	var h *hook
	h = newHook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/submit" {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"Invalid email format"}`)
			return
		}
		fmt.Fprintf(w, `{"content_type":"form","content_attributes":{"form":{"submitUrl":%q,"fields":[{"id":"name","type":"text","label":"Name","required":true}]}}}`, h.URL+"/submit")
	})
	errs := newRecorded()
	s := whLoad(t, fmt.Sprintf(`
id: s
start: ask
webhooks: {site: {url: %q}}
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], next: w}
  w: {type: webhook, webhook: site, format: widget, next: done, failure: sorry}
  done: {type: end, responses: [{type: text, message: "Bye"}]}
  sorry: {type: end, responses: [{type: text, message: "Sorry"}]}
`, h.URL), nodes.Options{WebhookErrors: errs})
	c := engine.NewChat(s, "c1", "", "", nil, nil)
	whRun(t, s, c, "")
	if out := whRun(t, s, c, "contact"); !reflect.DeepEqual(out, []string{"Name"}) {
		t.Fatalf("output %q", out)
	}
	if out := whRun(t, s, c, "Ann"); !reflect.DeepEqual(out, []string{"Sorry"}) {
		t.Fatalf("output %q", out)
	}
	if e := errs.Get("s", "site"); e != "Form submission failed with status code 400: Invalid email format" {
		t.Errorf("connection error %q", e)
	}
}

// TestWebhookCircuitOpen: once the connection's circuit is open, a turn
// takes the failure branch without calling, and the connection's error
// says why.
func TestWebhookCircuitOpen(t *testing.T) {
	h := newHook(t, answers(503, `{"error":"overloaded"}`))
	client := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: 2, BreakerOpen: time.Hour})
	errs := newRecorded()
	logs := &records{}
	src := fmt.Sprintf(`
id: s
start: ask
webhooks: {crm: {url: %q}}
nodes:
  ask: {type: question, responses: [{type: text, message: "?"}], next: call}
  call: {type: webhook, webhook: crm, next: ask, failure: sorry}
  sorry: {type: message, responses: [{type: text, message: sorry}], next: ask}
`, h.URL)
	s := whLoad(t, src, nodes.Options{Webhooks: client, WebhookErrors: errs, Logger: slog.New(logs)})
	c := engine.NewChat(s, "c", "", "", nil, nil)
	whRun(t, s, c, "")
	for i := range 3 {
		if out := whRun(t, s, c, "x"); !reflect.DeepEqual(out, []string{"sorry", "?"}) {
			t.Fatalf("turn %d: %q", i+1, out)
		}
	}
	if h.calls() != 2 {
		t.Errorf("the service saw %d calls, want 2", h.calls())
	}
	want := "Circuit open: 2 failures in a row (last: Request failed with status code 503: overloaded), next probe at "
	if got := errs.Get("s", "crm"); !strings.HasPrefix(got, want) {
		t.Errorf("connection error %q, want %q…", got, want)
	}
	if got := logs.messages(); len(got) != 3 || !strings.Contains(got[2], "reason=Circuit open") {
		t.Errorf("logs %q, want one per failed call", got)
	}
}

// TestWebhookMaxInFlight: a story's max_in_flight bounds the calls of its
// connection; a turn over it takes the failure branch.
func TestWebhookMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	h := newHook(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"attributes":{"ok":true}}`)
	})
	defer close(release)
	client := webhook.NewClient(webhook.Options{AllowPrivate: true, QueueWait: 10 * time.Millisecond})
	errs := newRecorded()
	logs := &records{}
	src := fmt.Sprintf(`
id: s
start: call
webhooks: {crm: {url: %q, max_in_flight: 1}}
nodes:
  call: {type: webhook, webhook: crm, failure: sorry}
  sorry: {type: end, responses: [{type: text, message: sorry}]}
`, h.URL)
	s := whLoad(t, src, nodes.Options{Webhooks: client, WebhookErrors: errs, Logger: slog.New(logs)})
	first := make(chan *engine.Chat, 1)
	go func() {
		c := engine.NewChat(s, "c1", "", "", nil, nil)
		var r engine.Runner
		r.Start(context.Background(), s, c)
		first <- c
	}()
	<-arrived
	c := engine.NewChat(s, "c2", "", "", nil, nil)
	if out := whRun(t, s, c, ""); !reflect.DeepEqual(out, []string{"sorry"}) {
		t.Errorf("second chat: %q", out)
	}
	if got := logs.messages(); len(got) != 1 || !strings.Contains(got[0], "reason=Too many calls in flight to this connection (1)") {
		t.Errorf("logs %q", got)
	}
	if got := errs.Get("s", "crm"); got != "" {
		t.Errorf("a refusal for the bound was kept as the connection's error: %q", got)
	}
	release <- struct{}{}
	if c := <-first; c.Attributes["ok"] != true {
		t.Errorf("first chat: attributes %v, error %q", c.Attributes, c.Error)
	}
}

// recorded is a webhook.Recorder that keeps each connection's last failure.
type recorded struct {
	mu sync.Mutex
	m  map[string]string
}

func newRecorded() *recorded { return &recorded{m: map[string]string{}} }

func (r *recorded) Record(_ context.Context, c *webhook.Connection, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason == "" {
		delete(r.m, c.StoryID+"/"+c.ID)
	} else {
		r.m[c.StoryID+"/"+c.ID] = reason
	}
}

// Get returns the last failure of connection id of story storyID.
func (r *recorded) Get(storyID, id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[storyID+"/"+id]
}
