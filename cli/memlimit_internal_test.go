package cli

import (
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// TestFollowStoryCache: the soft memory limit is the base plus what the
// story cache holds, followed as it changes, and left alone once stopped.
func TestFollowStoryCache(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	const base = 192 << 20
	var stories atomic.Int64
	stop := followStoryCache(base, stories.Load, 5*time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != base {
		t.Fatalf("limit %d at start, want %d", got, base)
	}
	stories.Store(100 << 20)
	deadline := time.Now().Add(5 * time.Second)
	for debug.SetMemoryLimit(-1) != base+100<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d, want %d once the story cache holds 100 MiB", debug.SetMemoryLimit(-1), base+100<<20)
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stories.Store(0)
	time.Sleep(30 * time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != base+100<<20 {
		t.Fatalf("limit changed to %d after stop", got)
	}
}
