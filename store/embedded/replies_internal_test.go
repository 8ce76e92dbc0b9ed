package embedded

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// TestRepliesPruned: a chat with many updates keeps at most MaxReplies +
// pruneEvery reply records, also when only some updates carry a reply, and
// GetReply answers exactly the replies of its last MaxReplies updates.
func TestRepliesPruned(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{}, UserAttributes: map[string]any{}}
	if err := s.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	revOf := map[string]int64{}
	for i := range 1050 { // ends between two prunings
		var r *store.Reply
		if i%3 != 1 { // two updates in three remember a reply
			id := fmt.Sprintf("m%d", i)
			r = &store.Reply{MessageID: id, Body: []byte("answer " + id)}
			revOf[id] = c.Rev + 1
		}
		if err := s.UpdateChat(ctx, c, r); err != nil {
			t.Fatal(err)
		}
		if n := s.countReplies(t, "c"); n > store.MaxReplies+pruneEvery {
			t.Fatalf("after update %d: %d reply records, want at most %d", i, n, store.MaxReplies+pruneEvery)
		}
	}
	for id, rev := range revOf {
		body, ok, err := s.GetReply(ctx, "c", id)
		if err != nil {
			t.Fatal(err)
		}
		want := c.Rev-rev < store.MaxReplies
		if ok != want || (ok && string(body) != "answer "+id) {
			t.Errorf("reply %s of rev %d at rev %d: got %q %v, want remembered %v", id, rev, c.Rev, body, ok, want)
		}
	}
	if _, ok, err := s.GetReply(ctx, "c", "never"); ok || err != nil {
		t.Errorf("unknown message id: %v %v", ok, err)
	}
	if _, ok, err := s.GetReply(ctx, "nochat", "m999"); ok || err != nil {
		t.Errorf("unknown chat: %v %v", ok, err)
	}
}

func (s *Store) countReplies(t *testing.T, id string) int {
	t.Helper()
	p := replyPrefix(id)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}
