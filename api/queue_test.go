package api

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

// TestQueueFIFO: waiters get the key in the order they asked for it.
func TestQueueFIFO(t *testing.T) {
	q := newQueue()
	q.acquire("chat")
	const n = 50
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.acquire("chat")
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			q.release("chat")
		}()
		// Wait until goroutine i is queued before starting the next.
		for deadline := time.Now().Add(5 * time.Second); q.waiting("chat") != i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", i)
			}
			time.Sleep(time.Millisecond / 4)
		}
	}
	// Another key is not held up.
	q.acquire("other")
	q.release("other")
	q.release("chat")
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("order %v", order)
		}
	}
	if q.len() != 0 {
		t.Fatalf("%d keys left after all released", q.len())
	}
}

func (q *queue) waiting(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.lines[key]; l != nil {
		return len(l.waiting)
	}
	return 0
}

// gaugeStore is a store told how many chats have a turn in flight.
type gaugeStore struct {
	store.Store
	active func() int64
}

func (g *gaugeStore) SetActiveChats(f func() int64) { g.active = f }

// TestActiveChats: the server tells a store that asks how many chats have
// a turn in flight (the embedded store's group commit waits only for two
// or more).
func TestActiveChats(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{SyncEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gaugeStore{Store: st}
	s, err := New(Config{Store: g, Token: "t", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if g.active == nil {
		t.Fatal("the server did not tell the store")
	}
	s.chats.acquire("a")
	s.chats.acquire("b")
	if n := g.active(); n != 2 {
		t.Fatalf("%d chats in flight, want 2", n)
	}
	done := make(chan struct{})
	go func() { s.chats.acquire("a"); close(done) }() // waits: still 2
	time.Sleep(10 * time.Millisecond)
	if n := g.active(); n != 2 {
		t.Fatalf("%d chats in flight with a waiter, want 2", n)
	}
	s.chats.release("a")
	<-done
	s.chats.release("a")
	s.chats.release("b")
	if n := g.active(); n != 0 {
		t.Fatalf("%d chats in flight after all, want 0", n)
	}
}
