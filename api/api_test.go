package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

const token = "test-token"

// counterStory counts inputs: every message is counted exactly once.
const counterStory = `id: counter
name: Counter
start: ask
nodes:
  ask:
    type: question
    responses:
      - type: text
        message: Say something
    next: count
  count:
    type: set
    attributes:
      count: "{{ (attributes.count ?? 0) + 1 }}"
      last: "{{ input }}"
    next: ask
`

// shortStory completes on its first turn.
const shortStory = `id: short
name: Short
start: hello
nodes:
  hello:
    type: message
    responses:
      - type: text
        message: Hello & bye <3
`

// env is a server on loopback with an embedded store in a temp dir.
type env struct {
	t   testing.TB
	srv *api.Server
	st  store.Store
	url string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, mods ...func(*api.Config)) *env {
	t.Helper()
	return newEnvStore(t, embedded.Options{}, mods...)
}

// newEnvStore is newEnv with the embedded store opened with o.
func newEnvStore(t testing.TB, o embedded.Options, mods ...func(*api.Config)) *env {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Store: st, Token: token, AllowPrivateWebhooks: true, Logger: quiet()}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	e := &env{t: t, srv: srv, st: st, url: "http://" + ln.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		st.Close()
	})
	return e
}

// resp is an answer of the server.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map (or fails the test).
func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (r resp) list(t testing.TB) []map[string]any {
	t.Helper()
	var l []map[string]any
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("answer is not a JSON array: %v: %s", err, r.body)
	}
	return l
}

// do sends a request with the token. body is a string or []byte (sent as
// is) or anything else (sent as JSON).
func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	return e.doAuth(method, path, body, "Bearer "+token)
}

func (e *env) doAuth(method, path string, body any, auth string) resp {
	e.t.Helper()
	r, err := e.try(method, path, body, auth)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) try(method, path string, body any, auth string) (resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return resp{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}, nil
}

// want checks an answer's status and, for errors, its code.
func want(t testing.TB, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if code == "" {
		return
	}
	m := r.json(t)
	if m["code"] != code {
		t.Fatalf("code %v, want %s: %s", m["code"], code, r.body)
	}
	if msg, _ := m["error"].(string); msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("error message %q is not one non-empty line", msg)
	}
}

// putStory stores a story and checks the answer.
func (e *env) putStory(id, src string) map[string]any {
	e.t.Helper()
	r := e.do("PUT", "/v1/stories/"+id, src)
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("put story %s: %d %s", id, r.status, r.body)
	}
	return r.json(e.t)
}

// startChat creates a chat on story and returns its answer.
func (e *env) startChat(storyID string) map[string]any {
	e.t.Helper()
	r := e.do("POST", "/v1/chats", map[string]any{"storyId": storyID})
	want(e.t, r, 201, "")
	return r.json(e.t)
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	r := e.doAuth("GET", "/healthz", nil, "")
	want(t, r, 200, "")
	if m := r.json(t); m["status"] != "ok" {
		t.Fatalf("healthz: %s", r.body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, auth string
	}{
		{"missing", ""},
		{"wrong token", "Bearer nope"},
		{"basic scheme", "Basic " + token},
		{"no token", "Bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/stories", "/v1/chats", "/v2/integrations/webhook"} {
				r := e.doAuth("GET", path, nil, tc.auth)
				want(t, r, 401, "unauthorized")
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	want(t, e.doAuth("GET", "/v1/stories", nil, "bearer "+token), 200, "")
}

func TestUnknownRoute(t *testing.T) {
	e := newEnv(t)
	want(t, e.do("GET", "/v1/nope", nil), 404, "not_found")
	want(t, e.doAuth("GET", "/nope", nil, ""), 404, "not_found")
}

func TestNewConfig(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := api.New(api.Config{Token: "x"}); err == nil {
		t.Fatal("no store: no error")
	}
	if _, err := api.New(api.Config{Store: st}); err == nil {
		t.Fatal("no token: no error")
	}
	if a, b := api.NewToken(), api.NewToken(); a == b || len(a) < 32 {
		t.Fatalf("tokens %q %q", a, b)
	}
}

// TestBadInputNeverFails sends junk to every route that reads a body: each
// answer is a 4xx with an error and a code, never a 5xx.
func TestBadInputNeverFails(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	chat := e.startChat("counter")["chatId"].(string)
	r := e.do("POST", "/v2/integrations/webhook", nil)
	want(t, r, 400, "invalid_request")
	routes := []struct{ method, path string }{
		{"PUT", "/v1/stories/counter"},
		{"POST", "/v1/stories/validate"},
		{"POST", "/v1/chats"},
		{"POST", "/v1/chats/" + chat + "/messages"},
		{"POST", "/v2/integrations/webhook"},
		{"PUT", "/v2/integrations/webhook/0123456789abcdef01234567"},
	}
	bodies := []string{
		"", " ", "null", "[]", "{}", `""`, "0", "true", "{", "}", `{"a":`, "\x00\xff\xfe", "\ufeff{}",
		`{"storyId": {"$gt": ""}}`, `{"text": null}`, `{"text": ["a"]}`, `{"goto": 1e999}`,
		`{"storyId":"counter","attributes":{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`,
		"id: counter\nnodes: &a [*a]\n", "id: counter\nstart: x\nnodes:\n  x: {type: message, next: x}\n",
		"%YAML 9.9\n---\n", "- - - -", strings.Repeat("a: {", 2000),
	}
	for _, rt := range routes {
		for _, b := range bodies {
			r, err := e.try(rt.method, rt.path, b, "Bearer "+token)
			if err != nil {
				t.Fatalf("%s %s %q: %v", rt.method, rt.path, b, err)
			}
			if r.status >= 500 {
				t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, b, r.status, r.body)
			}
			if r.status >= 400 {
				m := r.json(t)
				if m["error"] == "" || m["code"] == "" {
					t.Fatalf("%s %s %q: %s", rt.method, rt.path, b, r.body)
				}
			}
		}
	}
	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
}
