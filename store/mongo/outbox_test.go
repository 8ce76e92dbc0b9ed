package mongo_test

import (
	"context"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
	"github.com/storyflow/storyflow/store/storetest"
)

func TestOutbox(t *testing.T) {
	uri := testURI(t)
	storetest.RunOutbox(t, func(t *testing.T) storetest.Opener {
		dbURI := freshDatabase(t, uri)
		return func() (store.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return mongo.Open(ctx, dbURI)
		}
	})
}

// TestEraseOtherProcess: a process that cached a chat before another
// erased it reads the erased transcript.
func TestEraseOtherProcess(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	a, b := openStore(t, uri), openStore(t, uri)
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, UserID: "u1",
		Seq: 1, Transcript: []engine.Entry{{Seq: 1, From: "user", Input: &engine.Input{Text: "my address"}}}}
	if err := a.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetChat(ctx, "c"); err != nil || got.Transcript[0].Input.Text != "my address" {
		t.Fatalf("b before: %v %+v", err, got)
	}
	c, err := a.GetChat(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	c.UserID = c.ID
	for i := range c.Transcript {
		store.EraseEntry(&c.Transcript[i])
	}
	if err := a.EraseChat(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*mongo.Store{"a": a, "b": b} {
		got, err := s.GetChat(ctx, "c")
		if err != nil || len(got.Transcript) != 1 || got.Transcript[0].Input.Text != store.Erased {
			t.Errorf("%s after the erasure: %v %+v", name, err, got)
		}
	}
}
