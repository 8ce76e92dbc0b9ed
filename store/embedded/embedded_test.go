package embedded_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/storyflow/storyflow/store/storetest"
)

// modes are the two durability modes: every write synced, and synced
// every 10 ms (the server's default).
var modes = []struct {
	name string
	opts embedded.Options
}{
	{"always", embedded.Options{}},
	{"10ms", embedded.Options{SyncEvery: 10 * time.Millisecond}},
}

// TestSuite runs the shared behaviour suite in both modes (its Reopen case
// closes and reopens the store).
func TestSuite(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Opener {
				dir := t.TempDir()
				return func() (store.Store, error) { return embedded.Open(dir, m.opts) }
			})
		})
	}
}

// TestLocal: a directory in use cannot be opened twice; Close is safe to
// repeat and later writes fail.
func TestLocal(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			storetest.Local(t, func(dir string) (store.Store, error) { return embedded.Open(dir, m.opts) })
		})
	}
}

// TestGetChatCopies: a chat from GetChat (served from the decoded-chat
// cache) is the caller's to change; the next GetChat and a reopened store
// see what was written.
func TestGetChatCopies(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive,
		Attributes: map[string]any{"n": 1, "m": map[string]any{"l": []any{"a"}}}, UserAttributes: map[string]any{}}
	if err := s.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Attributes["n"] = 2
	if err := s.UpdateChat(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	c.Attributes["n"] = 99 // after the write: not stored
	want := map[string]any{"n": 2.0, "m": map[string]any{"l": []any{"a"}}}
	for i := range 2 {
		got, err := s.GetChat(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Attributes, want) || got.Rev != 2 {
			t.Fatalf("get %d: rev %d, attributes %v, want rev 2, %v", i, got.Rev, got.Attributes, want)
		}
		got.Attributes["n"] = "changed"
		got.Attributes["m"].(map[string]any)["l"].([]any)[0] = "changed"
		got.UserAttributes["x"] = 1
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = embedded.Open(dir, embedded.Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetChat(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Attributes, want) || len(got.UserAttributes) != 0 {
		t.Fatalf("after reopen: %v %v", got.Attributes, got.UserAttributes)
	}
}

// TestCrashKill9: in both modes, nothing acknowledged is lost when the
// process is killed.
func TestCrashKill9(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			storetest.Crash(t, func(dir string) (store.Store, error) { return embedded.Open(dir, m.opts) })
		})
	}
}

// BenchmarkTurn: the store's part of a chat turn (storetest.BenchTurn), in
// both modes, and with a chat cache too small to hold anything (what the
// cache saves).
func BenchmarkTurn(b *testing.B) {
	for _, m := range append(modes[:len(modes):len(modes)], struct {
		name string
		opts embedded.Options
	}{"10ms-nocache", embedded.Options{SyncEvery: 10 * time.Millisecond, CacheBytes: 1}}) {
		b.Run(m.name, func(b *testing.B) {
			s, err := embedded.Open(b.TempDir(), m.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchTurn(b, s)
		})
	}
}
