package lsm_test

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/lsm"
	"github.com/storyflow/storyflow/store/storetest"
)

// TestSuite runs the shared behaviour suite (its Reopen case closes and
// reopens the store).
func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func() (store.Store, error) { return lsm.Open(dir) }
	})
}

// TestLocal: a directory in use cannot be opened twice; Close is safe to
// repeat and later writes fail.
func TestLocal(t *testing.T) {
	storetest.Local(t, func(dir string) (store.Store, error) { return lsm.Open(dir) })
}

// TestGetChatCopies: a chat from GetChat (served from the decoded-chat
// cache) is the caller's to change; the next GetChat and a reopened store
// see what was written.
func TestGetChatCopies(t *testing.T) {
	dir := t.TempDir()
	s, err := lsm.Open(dir)
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
	if s, err = lsm.Open(dir); err != nil {
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

// TestCrashKill9: nothing acknowledged is lost when the process is killed.
func TestCrashKill9(t *testing.T) {
	storetest.Crash(t, func(dir string) (store.Store, error) { return lsm.Open(dir) })
}

// BenchmarkTurn is the store's part of a chat turn as the API does it, on
// 32 chats at once: read the chat, add an input and a response to its
// transcript, write it back (durably). The chats have long transcripts.
func BenchmarkTurn(b *testing.B) {
	s, err := lsm.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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
