package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/store"
)

// downStore is an outbox whose claims fail while down is set.
type downStore struct {
	store.Outbox
	down  atomic.Bool
	fails atomic.Int32
}

func (d *downStore) ClaimEvents(ctx context.Context, owner string, until time.Time, n int) ([]store.Event, error) {
	if d.down.Load() {
		d.fails.Add(1)
		return nil, errors.New("store is down")
	}
	return d.Outbox.ClaimEvents(ctx, owner, until, n)
}

// syncBuffer is a log destination safe for the worker's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailuresLoggedOnce: a worker whose store keeps failing logs the first
// failure, not every poll, and logs when it delivers again.
func TestFailuresLoggedOnce(t *testing.T) {
	st := &downStore{Outbox: open(t)}
	st.down.Store(true)
	var logs syncBuffer
	w := worker(st, events.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var logged int
	waitFor(t, w, 10*time.Second, func() bool {
		if st.down.Load() && st.fails.Load() >= 20 {
			logged = strings.Count(logs.String(), "events: deliver")
			st.down.Store(false)
		}
		return strings.Contains(logs.String(), "events: delivering again")
	})
	if logged != 1 {
		t.Fatalf("20 failed polls logged %d times, want once:\n%s", logged, logs.String())
	}
}
