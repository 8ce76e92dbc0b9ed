package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/bolt"
	"github.com/storyflow/storyflow/store/storetest"
)

// TestSuite runs the suite on the group commit (the product) and on plain
// db.Update commits. (db.Batch mode, for the benchmark only, adds a 10ms
// timer to each lone write and would triple the run time.)
func TestSuite(t *testing.T) {
	modes := []struct {
		name string
		open func(string) (*bolt.Store, error)
	}{
		{"group", bolt.Open},
		{"serial", bolt.OpenSerial},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Opener {
				dir := t.TempDir()
				return func() (store.Store, error) { return m.open(dir) }
			})
		})
	}
}

// TestLocal: a directory in use cannot be opened twice; Close is safe to
// repeat and later writes fail.
func TestLocal(t *testing.T) {
	storetest.Local(t, func(dir string) (store.Store, error) { return bolt.Open(dir) })
}

// TestCrashKill9: nothing acknowledged is lost when the process is killed.
func TestCrashKill9(t *testing.T) {
	storetest.Crash(t, func(dir string) (store.Store, error) { return bolt.Open(dir) })
}

// BenchmarkUpdateChatParallel updates distinct chats from parallel
// goroutines (each a durable, fsynced commit) with each commit mode.
func BenchmarkUpdateChatParallel(b *testing.B) {
	modes := []struct {
		name string
		open func(string) (*bolt.Store, error)
	}{
		{"group", bolt.Open},
		{"batch", bolt.OpenBatch},
		{"serial", bolt.OpenSerial},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s, err := m.open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			var mu sync.Mutex
			next := 0
			b.SetParallelism(8) // 8 goroutines per CPU: many chats at once
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				id := fmt.Sprintf("chat%d", next)
				next++
				mu.Unlock()
				c := &engine.Chat{ID: id, StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(0)}}
				if err := s.CreateChat(ctx, c); err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					c.Attributes["n"] = float64(c.Rev)
					err := s.UpdateChat(ctx, c, &store.Reply{MessageID: strconv.FormatInt(c.Rev, 10), Body: []byte(`{"status":"active"}`)})
					if err != nil && !errors.Is(err, store.ErrConflict) {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkUpdateChat is one writer: the latency of a durable update.
func BenchmarkUpdateChat(b *testing.B) {
	s, err := bolt.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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

// TestLegacyRecord: a chat written as one JSON record with its transcript
// inline (before transcripts were kept apart) reads with its entries
// numbered, and its first update moves them to the transcript.
func TestLegacyRecord(t *testing.T) {
	s, err := bolt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	legacy := `{"id":"old","storyId":"shop","storyVersion":1,"node":"ask","status":"active","userId":"u",` +
		`"attributes":{"n":1},"userAttributes":{},"transcript":[` +
		`{"from":"bot","node":"ask","response":{"type":"text","message":"Hi"},"time":"2025-01-01T00:00:00Z"},` +
		`{"from":"user","node":"ask","input":{"text":"yo"},"time":"2025-01-01T00:00:01Z"},` +
		`{"from":"bot","node":"ask","response":{"type":"text","message":"Again"},"time":"2025-01-01T00:00:02Z"}],` +
		`"waiting":true,"createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:02Z","rev":4}`
	if err := bolt.PutRawChat(s, "old", "shop", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	texts := func(es []engine.Entry) string {
		var b strings.Builder
		for _, e := range es {
			v := ""
			if e.Input != nil {
				v = e.Input.Text
			} else if e.Response != nil {
				v = e.Response.Message
			}
			fmt.Fprintf(&b, "%d:%s ", e.Seq, v)
		}
		return strings.TrimSpace(b.String())
	}
	c, err := s.GetChat(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(c.Transcript); c.Rev != 4 || c.Seq != 3 || got != "1:Hi 2:yo 3:Again" {
		t.Fatalf("legacy chat read as rev %d seq %d transcript %q", c.Rev, c.Seq, got)
	}
	tr, err := s.GetTranscript(ctx, "old", 1, 0)
	if err != nil || texts(tr) != "2:yo 3:Again" {
		t.Fatalf("legacy transcript after 1: %q %v", texts(tr), err)
	}
	list, err := s.ListChats(ctx, store.ChatFilter{})
	if err != nil || len(list) != 1 || list[0].Seq != 3 || list[0].Rev != 4 {
		t.Fatalf("list: %+v %v", list, err)
	}

	c.Transcript = append(c.Transcript[1:], engine.Entry{Seq: 4, From: "user", Input: &engine.Input{Text: "new"}})
	c.Seq = 4
	if err := s.UpdateChat(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	tr, err = s.GetTranscript(ctx, "old", 0, 0)
	if err != nil || texts(tr) != "1:Hi 2:yo 3:Again 4:new" {
		t.Fatalf("transcript after the first update: %q %v", texts(tr), err)
	}
	c, err = s.GetChat(ctx, "old")
	if err != nil || c.Rev != 5 || texts(c.Transcript) != "1:Hi 2:yo 3:Again 4:new" || c.Attributes["n"] != float64(1) {
		t.Fatalf("chat after the first update: %+v %v", c, err)
	}
}

// TestWindowShared: a chat read from the window cache can be appended to
// without changing what the next read returns, and so can the chat an
// update wrote.
func TestWindowShared(t *testing.T) {
	s, err := bolt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	entry := func(seq int64, msg string) engine.Entry {
		return engine.Entry{Seq: seq, From: "bot", Response: &engine.Response{Type: "text", Message: msg}}
	}
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Seq: 1, Transcript: make([]engine.Entry, 0, 8)}
	c.Transcript = append(c.Transcript, entry(1, "Hi"))
	if err := s.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	// The writer appends in place after the write.
	c.Transcript = append(c.Transcript, entry(2, "not written"))
	// Two readers append to what they read (one of them may get the
	// cache's room to append in place; never both).
	var got [2]*engine.Chat
	for i := range got {
		if got[i], err = s.GetChat(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		if len(got[i].Transcript) != 1 || got[i].Transcript[0].Response.Message != "Hi" {
			t.Fatalf("window %+v", got[i].Transcript)
		}
	}
	a := append(got[0].Transcript, entry(2, "a"))
	b := append(got[1].Transcript, entry(2, "b"))
	if a[1].Response.Message != "a" || b[1].Response.Message != "b" {
		t.Fatalf("two readers' appends share storage: %q %q", a[1].Response.Message, b[1].Response.Message)
	}
	again, err := s.GetChat(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Transcript) != 1 || again.Transcript[0].Response.Message != "Hi" {
		t.Fatalf("window after the appends %+v", again.Transcript)
	}
}

// BenchmarkTurn: the store's part of a chat turn (storetest.BenchTurn),
// with the group commit's work per commit.
func BenchmarkTurn(b *testing.B) {
	s, err := bolt.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st0 := s.CommitStats()
	storetest.BenchTurn(b, s)
	reportCommits(b, st0, s.CommitStats())
}

// reportCommits reports the group commit's work between two counts.
func reportCommits(b *testing.B, a, z bolt.CommitStats) {
	n := float64(z.Commits - a.Commits)
	if n == 0 {
		return
	}
	b.ReportMetric(float64(z.Writes-a.Writes)/n, "writes/commit")
	b.ReportMetric(float64(z.Pages-a.Pages)/n, "pages/commit")
	b.ReportMetric(float64(z.Busy-a.Busy)/n/1e3, "µs/commit")
	b.ReportMetric(float64(z.WriteTime-a.WriteTime)/n/1e3, "write+sync-µs/commit")
	b.ReportMetric(float64(z.SpillTime-a.SpillTime)/n/1e3, "spill-µs/commit")
}
