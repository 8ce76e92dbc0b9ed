// Package window caches the recent transcript window of chats for the
// embedded stores.
package window

import (
	"sync"

	"github.com/storyflow/storyflow/engine"
)

// Size is how many chats' windows are cached.
const Size = 1024

// Cache caches the window of recent transcript entries that GetChat
// returns, per chat, so that a turn does not decode it again. A window is
// valid for its seq for good (entries never change once written), so the
// cache needs no invalidation: GetChat uses it only when the stored chat's
// seq is the cached one. It also remembers the rev that had that seq.
//
// Windows are shared, not copied: the cache keeps the slice an update
// wrote and GetChat returns it with no room to append in place (appending
// copies it). Entries are never changed once in a transcript, by the
// engine or by a store, so sharing them is safe.
type Cache struct {
	mu sync.Mutex
	m  map[string]window
}

type window struct {
	rev, seq int64
	entries  []engine.Entry
}

// New returns an empty cache.
func New() *Cache { return &Cache{m: make(map[string]window)} }

// Get returns chat id's window at seq.
func (ws *Cache) Get(id string, seq int64) ([]engine.Entry, bool) {
	ws.mu.Lock()
	w, ok := ws.m[id]
	ws.mu.Unlock()
	if !ok || w.seq != seq {
		return nil, false
	}
	return w.entries, true
}

// SeqAt returns the seq of chat id at rev, if known.
func (ws *Cache) SeqAt(id string, rev int64) (int64, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w, ok := ws.m[id]; ok && w.rev == rev {
		return w.seq, true
	}
	return 0, false
}

// Put caches the window of chat id at rev and seq from transcript: its
// last engine.MaxTranscript entries, which must run up to seq. A window
// older than the cached one is not taken.
func (ws *Cache) Put(id string, rev, seq int64, transcript []engine.Entry) {
	n := min(int64(engine.MaxTranscript), seq)
	if int64(len(transcript)) < n {
		return
	}
	end := len(transcript)
	entries := transcript[int64(end)-n : end : end]
	for i := range entries {
		if entries[i].Seq != seq-n+1+int64(i) {
			return
		}
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	old, ok := ws.m[id]
	if ok && old.rev >= rev {
		return
	}
	if !ok && len(ws.m) >= Size {
		for k := range ws.m { // drop one at random
			delete(ws.m, k)
			break
		}
	}
	ws.m[id] = window{rev: rev, seq: seq, entries: entries}
}
