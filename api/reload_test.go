package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeStory writes a story file with a modification time in the future of
// the last one, so that a change is seen whatever the clock's resolution.
func writeStory(t *testing.T, path, src string, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

// waitVersion waits until story id's latest version is v.
func (e *env) waitVersion(id, v string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do("GET", "/v1/stories/"+id, nil)
		if r.status == 200 && r.header.Get("X-Story-Version") == v {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("story %s: version %q, want %s (%d %s)", id, r.header.Get("X-Story-Version"), v, r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchStories(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	now := time.Now()
	counter := filepath.Join(dir, "counter.yaml")
	broken := filepath.Join(dir, "broken.yml")
	writeStory(t, counter, counterStory, now)
	writeStory(t, broken, "id: broken\nstart: nowhere\nnodes: {}\n", now)
	writeStory(t, filepath.Join(dir, "notes.txt"), "not a story", now)

	loaded, failed, err := e.srv.WatchStories(dir, 20*time.Millisecond)
	if err != nil || loaded != 1 || failed != 1 {
		t.Fatalf("first scan: loaded %d, failed %d, err %v", loaded, failed, err)
	}
	e.waitVersion("counter", "1")
	want(t, e.do("GET", "/v1/stories/broken", nil), 404, "story_not_found")

	old := e.startChat("counter")["chatId"].(string)

	// A changed file is a new version; the running chat keeps its version.
	writeStory(t, counter, strings.Replace(counterStory, "Say something", "Say more", 1), now.Add(2*time.Second))
	e.waitVersion("counter", "2")
	r := e.do("POST", "/v1/chats/"+old+"/messages", map[string]any{"text": "x"})
	want(t, r, 200, "")
	if msg := r.json(t)["responses"].([]any)[0].(map[string]any)["message"]; msg != "Say something" {
		t.Fatalf("old chat got %q", msg)
	}
	if v := e.do("GET", "/v1/chats/"+old, nil).json(t)["storyVersion"]; v != 1.0 {
		t.Fatalf("old chat on version %v", v)
	}
	fresh := e.startChat("counter")
	if msg := fresh["responses"].([]any)[0].(map[string]any)["message"]; msg != "Say more" {
		t.Fatalf("new chat got %q", msg)
	}

	// A change that does not load keeps the last good version.
	writeStory(t, counter, "id: counter\nnodes: [\n", now.Add(4*time.Second))
	time.Sleep(100 * time.Millisecond)
	e.waitVersion("counter", "2")

	// A fixed file loads.
	writeStory(t, broken, strings.Replace(shortStory, "id: short", "id: broken", 1), now.Add(3*time.Second))
	e.waitVersion("broken", "1")

	// A new file loads.
	writeStory(t, filepath.Join(dir, "short.yaml"), shortStory, now)
	e.waitVersion("short", "1")

	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
}

// TestWatchStoriesRetriesAfterConnection: a file naming a connection that
// the API makes later loads once the connection exists.
func TestWatchStoriesRetriesAfterConnection(t *testing.T) {
	e := newEnv(t)
	b := newBackend(t, "tok")
	dir := t.TempDir()
	writeStory(t, filepath.Join(dir, "hooked.yaml"), hookedStory, time.Now())
	loaded, failed, err := e.srv.WatchStories(dir, 20*time.Millisecond)
	if err != nil || loaded != 0 || failed != 1 {
		t.Fatalf("first scan: loaded %d, failed %d, err %v", loaded, failed, err)
	}
	want(t, e.do("POST", "/v2/integrations/webhook", connBody("hooked", "backend", b.URL, "tok")), 201, "")
	e.waitVersion("hooked", "1")
}

func TestWatchStoriesMissingDir(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.srv.WatchStories(filepath.Join(t.TempDir(), "nope"), time.Second); err == nil {
		t.Fatal("no error for a missing directory")
	}
}
