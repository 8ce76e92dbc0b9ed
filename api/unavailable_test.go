package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store/mongo"
)

// proxy forwards loopback TCP connections to target until cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

// cut closes the listener and every connection: the database is gone.
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestStoreUnreachable: with MongoDB gone, requests that need it are 503
// store_unavailable, quickly, and the server stays up.
func TestStoreUnreachable(t *testing.T) {
	uri := os.Getenv("MONGODB_TEST_URI")
	if uri == "" {
		t.Skip("MONGODB_TEST_URI not set (make test starts FerretDB)")
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	u.Path = "/unavailable_" + time.Now().Format("150405000000")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := mongo.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Requests give up on the store after 2s (the driver would wait 30s
	// for a server).
	e := newEnv(t, func(c *api.Config) { c.Store = st; c.StoreTimeout = 2 * time.Second })
	e.putStory("counter", counterStory)
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer backend.Close()
	e.putStory("hook", fmt.Sprintf("id: hook\nstart: ask\nnodes:\n  ask:\n    type: question\n    responses: [{type: text, message: go}]\n    next: call\n  call:\n    type: webhook\n    webhook: {url: %q}\n    next: ask\n", backend.URL))
	hook := e.startChat("hook")["chatId"].(string)
	chat := e.startChat("counter")["chatId"].(string)
	want(t, e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "a"}), 200, "")
	p.cut()
	began := time.Now()
	r := e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "b"})
	want(t, r, 503, "store_unavailable")
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("503 after %v, want about the store timeout (2s)", d)
	}
	if ra := r.header.Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5", ra)
	}
	r = e.doAuth("GET", "/readyz", nil, "")
	want(t, r, 503, "not_ready")
	if checks := r.json(t)["checks"].(map[string]any); checks["store"] == "ok" || checks["disk"] != "ok" {
		t.Errorf("readyz checks with the store gone: %v", checks)
	}
	// The store failed: a turn reads its chat (not the cache) and fails
	// before its webhook runs.
	want(t, e.do("POST", "/v1/chats/"+hook+"/messages", map[string]any{"text": "x"}), 503, "store_unavailable")
	if n := calls.Load(); n != 0 {
		t.Errorf("the webhook ran %d times while the store was failing", n)
	}
	want(t, e.do("GET", "/v1/stories", nil), 503, "store_unavailable")
	want(t, e.post("/v1/widget/counter", map[string]any{"prompt": "hi", "session_id": "s"}, nil), 503, "store_unavailable")
	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
}
