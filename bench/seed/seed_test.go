package main

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

// A small seed (the benchmark stores a million): every chat is stored,
// waiting at its question with its transcript; a second run resumes.
func TestSeed(t *testing.T) {
	const n, entries = 2000, 20
	dir := t.TempDir()
	ctx := context.Background()
	if err := seed(ctx, dir, n/2, entries, 4, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := seed(ctx, dir, n, entries, 4, io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dir + ".seeded"); err != nil || string(b) != "chats 2000, entries 20\n" {
		t.Errorf("marker: %q, %v", b, err)
	}
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec, err := s.GetStory(ctx, "bench_plain", 0)
	if err != nil || rec.Version != 1 || string(rec.Source) != Story {
		t.Fatalf("story: version %d, %v", rec.Version, err)
	}
	for _, i := range []int{0, n/2 - 1, n / 2, n - 1} {
		c, err := s.GetChat(ctx, SeedID(i))
		if err != nil {
			t.Fatalf("chat %d: %v", i, err)
		}
		if c.StoryID != "bench_plain" || c.StoryVersion != 1 || c.Node != "ask" || c.Status != engine.StatusActive || !c.Waiting || c.Seq != entries {
			t.Errorf("chat %d: %+v", i, c)
		}
		tr, err := s.GetTranscript(ctx, c.ID, 0, 100)
		if err != nil || len(tr) != entries || tr[entries-1].Seq != entries {
			t.Errorf("chat %d: %d transcript entries, %v", i, len(tr), err)
		}
	}
	if _, err := s.GetChat(ctx, SeedID(n)); err == nil {
		t.Errorf("chat %d stored; want %d chats", n, n)
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("chat %d: %v", n, err)
	}
	chats, err := s.ListChats(ctx, store.ChatFilter{Limit: 10})
	if err != nil || len(chats) != 10 {
		t.Errorf("list: %d chats, %v", len(chats), err)
	}
}
