package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

// fullStore is the embedded store with a disk that can be made full: it
// then refuses writes as the embedded store does below its watermark (the
// real watermark is tested on a full tmpfs in cmd/storyflow).
type fullStore struct {
	*embedded.Store
	full atomic.Bool
}

func (f *fullStore) refuse() error {
	if f.full.Load() {
		return fmt.Errorf("%w: test disk full", store.ErrFull)
	}
	return nil
}

func (f *fullStore) Writable() error { return f.refuse() }

func (f *fullStore) PutStory(ctx context.Context, id string, src []byte) (int, bool, error) {
	if err := f.refuse(); err != nil {
		return 0, false, err
	}
	return f.Store.PutStory(ctx, id, src)
}

func (f *fullStore) CreateChatEvents(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	if err := f.refuse(); err != nil {
		return err
	}
	return f.Store.CreateChatEvents(ctx, c, evs)
}

func (f *fullStore) UpdateChatEvents(ctx context.Context, c *engine.Chat, r *store.Reply, evs []store.Event) error {
	if err := f.refuse(); err != nil {
		return err
	}
	return f.Store.UpdateChatEvents(ctx, c, r, evs)
}

// TestStorageFull: with the disk full, a turn answers 503 storage_full
// with Retry-After before its webhook runs, reads go on, /readyz names the
// disk check, /metrics counts it; with space back all of it recovers.
func TestStorageFull(t *testing.T) {
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"attributes":{"seen":"yes"}}`)
	}))
	defer backend.Close()
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fullStore{Store: st}
	e := newEnv(t, func(c *api.Config) { c.Store = fs })
	d := loadOpenAPI(t, e)
	e.putStory("hook", fmt.Sprintf(`id: hook
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
	chat := e.startChat("hook")["chatId"].(string)
	r := e.doAuth("GET", "/readyz", nil, "")
	want(t, r, 200, "")
	d.checkAnswer("/readyz", "GET", r)

	fs.full.Store(true)
	r = e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "a", "messageId": "m1"})
	want(t, r, 503, "storage_full")
	d.checkAnswer("/v1/chats/{chatId}/messages", "POST", r)
	if ra := r.header.Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After %q, want 30", ra)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the webhook ran %d times for a turn the store could not record", n)
	}
	want(t, e.do("POST", "/v1/chats", map[string]any{"storyId": "hook"}), 503, "storage_full")
	want(t, e.do("PUT", "/v1/stories/other", "id: other\nstart: a\nnodes:\n  a: {type: message, responses: [{type: text, message: hi}]}\n"), 503, "storage_full")
	want(t, e.post("/v1/widget/hook", map[string]any{"prompt": "hi", "session_id": "s"}, nil), 503, "storage_full")
	want(t, e.do("GET", "/v1/chats/"+chat, nil), 200, "")
	want(t, e.do("GET", "/v1/stories", nil), 200, "")
	r = e.doAuth("GET", "/readyz", nil, "")
	want(t, r, 503, "not_ready")
	d.checkAnswer("/readyz", "GET", r)
	m := r.json(t)
	checks := m["checks"].(map[string]any)
	if checks["store"] != "ok" || checks["stories"] != "ok" || !strings.Contains(checks["disk"].(string), "storage full") {
		t.Errorf("readyz checks while full: %v", checks)
	}
	if msg := m["error"].(string); !strings.Contains(msg, "disk:") {
		t.Errorf("readyz error %q does not name the disk check", msg)
	}
	metrics := string(e.doAuth("GET", "/metrics", nil, "").body)
	for _, line := range []string{`storyflow_ready{check="disk"} 0`, `storyflow_ready{check="store"} 1`, `storyflow_unavailable_total{code="storage_full"} 4`} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")

	fs.full.Store(false)
	r = e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "a", "messageId": "m1"})
	want(t, r, 200, "")
	if n := calls.Load(); n != 1 {
		t.Errorf("webhook calls %d, want 1", n)
	}
	if a := r.json(t)["attributes"].(map[string]any); a["seen"] != "yes" {
		t.Errorf("attributes %v", a)
	}
	want(t, e.doAuth("GET", "/readyz", nil, ""), 200, "")
}

// TestStoriesWaitForTheStore: a story file the store refuses fails the
// stories check of /readyz and is stored once the store takes writes
// again, without a change to the file.
func TestStoriesWaitForTheStore(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fullStore{Store: st}
	fs.full.Store(true)
	e := newEnv(t, func(c *api.Config) { c.Store = fs })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "counter.yaml"), []byte(counterStory), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, failed, err := e.srv.WatchStories(dir, 20*time.Millisecond)
	if err != nil || loaded != 0 || failed != 1 {
		t.Fatalf("first scan with the store full: loaded %d, failed %d, %v", loaded, failed, err)
	}
	r := e.doAuth("GET", "/readyz", nil, "")
	want(t, r, 503, "not_ready")
	if checks := r.json(t)["checks"].(map[string]any); !strings.Contains(checks["stories"].(string), "1 story files wait") {
		t.Errorf("readyz checks: %v", checks)
	}
	want(t, e.do("GET", "/v1/stories/counter", nil), 404, "story_not_found")

	fs.full.Store(false)
	for i := 0; i < 100 && e.do("GET", "/v1/stories/counter", nil).status != 200; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	want(t, e.do("GET", "/v1/stories/counter", nil), 200, "")
	// The check counts at the end of a scan.
	for i := 0; i < 100 && e.doAuth("GET", "/readyz", nil, "").status != 200; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	want(t, e.doAuth("GET", "/readyz", nil, ""), 200, "")
}
