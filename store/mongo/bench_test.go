package mongo_test

import (
	"context"
	"fmt"
	"runtime"
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

// BenchmarkTurn: a turn as the API runs it (GetChatForTurn, two entries,
// UpdateChat) on 8 chats at once. On FerretDB (the test server, SQLite,
// every query a table scan) this is not MongoDB's speed; cmds/turn is.
func BenchmarkTurn(b *testing.B) {
	n := &counter{}
	s, err := mongo.OpenWith(context.Background(), freshDatabase(b, testURI(b)), mongo.Options{Monitor: n.monitor()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	c0, _ := n.read()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("chat%d", next.Add(1))
		if err := s.CreateChat(ctx, costChat(id)); err != nil {
			b.Error(err)
			return
		}
		for i := 0; pb.Next(); i++ {
			if err := turn(ctx, s, id, i, false); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	c1, _ := n.read()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
	b.ReportMetric(float64(c1-c0)/float64(b.N), "cmds/turn")
}
