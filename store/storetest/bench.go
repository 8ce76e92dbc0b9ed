package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// BenchTurn measures the store's part of a chat turn as the API does it, on
// 32 chats at once: read the chat, add an input and a response to its
// transcript, write it back (durably). The chats have long transcripts.
func BenchTurn(b *testing.B, s store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	next := 0
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // 32 goroutines
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		id := fmt.Sprintf("chat%d", next)
		next++
		mu.Unlock()
		c := &engine.Chat{ID: id, StoryID: "bench", StoryVersion: 1, Node: "ask", Status: engine.StatusActive, UserID: id,
			Attributes: map[string]any{"said": "hello", "customer": "yes", "plan": "pro"}, UserAttributes: map[string]any{},
			Waiting: true, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
		if err := s.CreateChat(ctx, c); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			c, err := s.GetChat(ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			now := time.Now().UTC()
			add := func(e engine.Entry) {
				c.Seq++
				e.Seq, e.Time = c.Seq, now
				c.Transcript = append(c.Transcript, e)
			}
			add(engine.Entry{From: "user", Node: "ask", Input: &engine.Input{Text: "hello"}})
			add(engine.Entry{From: "bot", Node: "ask", Response: &engine.Response{Type: "text", Message: "Say something", Delay: 500}})
			c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
			c.UpdatedAt = now
			if err := s.UpdateChat(ctx, c, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// cpuTime is the process's user and system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
