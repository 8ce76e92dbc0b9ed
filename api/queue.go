package api

import (
	"sync"
	"sync/atomic"
)

// queue lets one request per key run at a time, in arrival order (a
// sync.Mutex is not FIFO). A key's entry is removed when no one holds or
// waits for it.
type queue struct {
	mu    sync.Mutex
	lines map[string]*line
	// held counts the keys held (len(lines)), read without the lock.
	held atomic.Int64
}

type line struct {
	waiting []chan struct{}
}

func newQueue() *queue { return &queue{lines: map[string]*line{}} }

// acquire waits for key's turn; call release(key) when done.
func (q *queue) acquire(key string) {
	q.mu.Lock()
	l, busy := q.lines[key]
	if !busy {
		q.lines[key] = &line{}
		q.held.Add(1)
		q.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	l.waiting = append(l.waiting, ch)
	q.mu.Unlock()
	<-ch
}

// release hands key to its next waiter, or forgets it.
func (q *queue) release(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.lines[key]
	if l == nil {
		return
	}
	if len(l.waiting) == 0 {
		delete(q.lines, key)
		q.held.Add(-1)
		return
	}
	next := l.waiting[0]
	l.waiting[0] = nil
	l.waiting = l.waiting[1:]
	close(next)
}

// active returns how many keys are held.
func (q *queue) active() int64 { return q.held.Load() }

// len returns how many keys are held (for tests).
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.lines)
}
