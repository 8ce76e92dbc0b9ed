package api

import (
	"sync"
	"testing"
	"time"
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
