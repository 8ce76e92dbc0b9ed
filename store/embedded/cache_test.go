package embedded

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// heapSlack is what the live heap may hold beyond the chat cache's bound
// in TestCacheBoundedInBytes once pebble's flushes and compactions are
// done (while they run they hold some 10-20 MB more): pebble's Go-side
// structures and the estimates' error (measured: 2 MiB). Pebble's
// memtables and block cache are allocated outside the Go heap (cgo).
const heapSlack = 8 << 20

// TestCacheBoundedInBytes fills the store with 300 chats of 900 KB
// userAttributes each (some 540 MB as records and decoded chats), reading
// each back as a turn does, and checks the live heap stays under the
// cache's bound plus heapSlack.
func TestCacheBoundedInBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 270 MB")
	}
	if !pebbleOffHeap {
		t.Skip("without cgo pebble's memtables are on the Go heap: the heap does not show the cache")
	}
	const bound = 32 << 20
	s, err := Open(t.TempDir(), Options{SyncEvery: 10 * time.Millisecond, CacheBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	live := func() uint64 {
		runtime.GC()
		runtime.GC() // and sync.Pools
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := live()
	ctx := context.Background()
	blob := strings.Repeat("x", 900<<10)
	for i := range 300 {
		id := fmt.Sprintf("chat%03d", i)
		// A string of its own per chat, as a decoded request gives.
		ua := map[string]any{"blob": blob[:len(blob)-1] + string(rune('a'+i%26)), "n": float64(i)}
		c := &engine.Chat{ID: id, StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{}, UserAttributes: ua}
		if err := s.CreateChat(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetChat(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got.Seq++
		got.Transcript = append(got.Transcript, engine.Entry{Seq: got.Seq, From: "user", Input: &engine.Input{Text: "hi"}})
		if err := s.UpdateChat(ctx, got, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.cache.c.CleanUp()
	// Pebble's flushes and compactions hold buffers on the Go heap while
	// they run: measure once they are done.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := s.db.Metrics(); m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			break
		}
	}
	after := live()
	grew := int64(after) - int64(before)
	t.Logf("live heap grew by %.1f MiB; cache bound %d MiB, weighed size %.1f MiB, %d entries",
		float64(grew)/(1<<20), bound>>20, float64(s.cache.c.WeightedSize())/(1<<20), s.cache.c.EstimatedSize())
	if grew > bound+heapSlack {
		t.Errorf("live heap grew by %d MiB, over the cache bound %d MiB plus %d MiB slack", grew>>20, bound>>20, heapSlack>>20)
	}
	if w := s.cache.c.WeightedSize(); w > bound || w < bound/4 {
		t.Errorf("cache weighs %d bytes: want it near the bound %d, not over it", w, bound)
	}
	// The cache still serves what it holds: the last chat reads right.
	last, err := s.GetChat(ctx, "chat299")
	if err != nil || last.UserAttributes["n"] != float64(299) || len(last.UserAttributes["blob"].(string)) != len(blob) {
		t.Fatalf("last chat: %v", err)
	}
}
