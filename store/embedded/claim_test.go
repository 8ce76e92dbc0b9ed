package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/storyflow/storyflow/store"
)

// A claim starts after the events delivered before, yet sees an event
// numbered earlier whose write was committed after a later one's.
func TestClaimSeesLateCommit(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	claimAll := func() []string {
		t.Helper()
		evs, err := s.ClaimEvents(ctx, "w", time.Now().Add(time.Minute), 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if err := s.DeleteEvents(ctx, ids); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for range 3 {
		if err := s.AppendEvents(ctx, []store.Event{store.NewEvent("a", "", nil)}); err != nil {
			t.Fatal(err)
		}
		if got := claimAll(); len(got) != 1 {
			t.Fatalf("claimed %v, want one event", got)
		}
	}
	// A write takes its numbers, then a later write commits and is
	// delivered before the first commits.
	late := store.NewEvent("late", "", nil)
	keys, vals, done, err := s.eventKeys([]store.Event{late})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, []store.Event{store.NewEvent("b", "", nil)}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(); len(got) != 1 {
		t.Fatalf("claimed %v, want one event", got)
	}
	b := s.db.NewBatch()
	if err := setAll(b, keys, vals); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	done()
	if got := claimAll(); len(got) != 1 || got[0] != late.ID {
		t.Fatalf("claimed %v, want %s", got, late.ID)
	}
	if got := claimAll(); len(got) != 0 {
		t.Fatalf("claimed %v after all were delivered", got)
	}
	if s.out.low <= 0 {
		t.Fatalf("low %d: claims still start at the first event", s.out.low)
	}
}
