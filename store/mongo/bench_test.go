package mongo_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
)

func openBench(b *testing.B) *mongo.Store {
	uri := testURI(b)
	s, err := mongo.Open(context.Background(), freshDatabase(b, uri))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkUpdateChat: one writer, a durable update with a reply.
func BenchmarkUpdateChat(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive}
	if err := s.CreateChat(ctx, c); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.UpdateChat(ctx, c, &store.Reply{MessageID: strconv.FormatInt(c.Rev, 10), Body: []byte("x")}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetChat reads a chat with a few hundred revisions behind it.
func BenchmarkGetChat(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive}
	if err := s.CreateChat(ctx, c); err != nil {
		b.Fatal(err)
	}
	for range 250 {
		if err := s.UpdateChat(ctx, c, &store.Reply{MessageID: strconv.FormatInt(c.Rev, 10), Body: []byte("x")}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("GetChat", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetChat(ctx, "c"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetReply", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := s.GetReply(ctx, "c", strconv.FormatInt(c.Rev-1, 10)); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkUpdateChatParallel updates distinct chats from parallel goroutines.
func BenchmarkUpdateChatParallel(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c := &engine.Chat{ID: fmt.Sprintf("chat%d", next.Add(1)), StoryID: "s", Status: engine.StatusActive}
		if err := s.CreateChat(ctx, c); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := s.UpdateChat(ctx, c, &store.Reply{MessageID: strconv.FormatInt(c.Rev, 10), Body: []byte("x")}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
