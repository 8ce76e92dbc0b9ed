package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// TestDiskWatermark: below the watermark every write is store.ErrFull and
// reads go on; with space back writes resume by themselves; the ballast
// file is made when there is room for it above the watermark and deleted
// when pebble meets ENOSPC.
func TestDiskWatermark(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MinFreeDisk: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, BallastName)); err != nil {
		t.Fatalf("no ballast file on a roomy disk: %v", err)
	}
	var free atomic.Int64
	free.Store(100 << 20)
	s.disk.statfs = func(string) (int64, error) { return free.Load(), nil }
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{}, UserAttributes: map[string]any{}}
	if err := s.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutStory(ctx, "s", []byte("a")); err != nil {
		t.Fatal(err)
	}

	free.Store(7 << 20)
	s.disk.check()
	if err := s.Writable(); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Writable below the watermark: %v, want ErrFull", err)
	}
	writes := map[string]func() error{
		"UpdateChat": func() error { return s.UpdateChat(ctx, c, nil) },
		"CreateChat": func() error {
			return s.CreateChat(ctx, &engine.Chat{ID: "d", StoryID: "s", Attributes: map[string]any{}, UserAttributes: map[string]any{}})
		},
		"PutStory":         func() error { _, _, err := s.PutStory(ctx, "s", []byte("b")); return err },
		"DeleteStory":      func() error { return s.DeleteStory(ctx, "s") },
		"CreateConnection": func() error { return s.CreateConnection(ctx, &store.Connection{StoryID: "s", URL: "http://x"}) },
		"AppendEvents": func() error {
			return s.AppendEvents(ctx, []store.Event{store.NewEvent("x", "c", nil)})
		},
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, store.ErrFull) {
			t.Errorf("%s below the watermark: %v, want ErrFull", name, err)
		}
	}
	if got, err := s.GetChat(ctx, "c"); err != nil || got.Rev != 1 {
		t.Fatalf("GetChat below the watermark: %v, %v", got, err)
	}
	if _, err := s.GetStory(ctx, "s", 0); err != nil {
		t.Fatalf("GetStory below the watermark: %v", err)
	}

	// ENOSPC in pebble: the ballast goes, writes stay refused.
	s.disk.onDiskFull()
	if _, err := os.Stat(filepath.Join(dir, BallastName)); !os.IsNotExist(err) {
		t.Fatalf("ballast after ENOSPC: %v, want gone", err)
	}

	free.Store(100 << 20)
	s.disk.check()
	if err := s.UpdateChat(ctx, c, nil); err != nil {
		t.Fatalf("UpdateChat with space back: %v", err)
	}
	if c.Rev != 2 {
		t.Fatalf("rev %d, want 2", c.Rev)
	}
	s.disk.check() // the ballast comes back once writes flow
	if _, err := os.Stat(filepath.Join(dir, BallastName)); err != nil {
		t.Fatalf("no ballast file with space back: %v", err)
	}

	// Writes between two checks use up the headroom: the next write checks.
	free.Store(8<<20 + 1000)
	s.disk.check()
	free.Store(1 << 20)
	for i := 0; i < 100 && err == nil; i++ {
		err = s.UpdateChat(ctx, c, nil)
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("writes past the headroom: %v, want ErrFull", err)
	}
}
