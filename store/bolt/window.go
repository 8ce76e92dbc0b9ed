package bolt

import (
	"sync"

	"github.com/storyflow/storyflow/engine"
)

// windowCacheSize is how many chats' windows are cached.
const windowCacheSize = 1024

// windows caches the window of recent transcript entries that GetChat
// returns, per chat, so that a turn does not decode it again. A window is
// valid for its seq for good (entries never change once written), so the
// cache needs no invalidation: GetChat uses it only when the stored chat's
// seq is the cached one. It also remembers the rev that had that seq.
type windows struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	rev, seq int64
	entries  []engine.Entry
}

func newWindows() *windows { return &windows{m: make(map[string]*window)} }

// get returns a copy of chat id's window at seq.
func (ws *windows) get(id string, seq int64) ([]engine.Entry, bool) {
	ws.mu.Lock()
	w := ws.m[id]
	ws.mu.Unlock()
	if w == nil || w.seq != seq {
		return nil, false
	}
	// Room for a turn's entries, so that appending does not copy again.
	out := make([]engine.Entry, len(w.entries), len(w.entries)+8)
	copy(out, w.entries)
	return out, true
}

// seqAt returns the seq of chat id at rev, if known.
func (ws *windows) seqAt(id string, rev int64) (int64, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.m[id]; w != nil && w.rev == rev {
		return w.seq, true
	}
	return 0, false
}

// put caches the window of chat id at rev and seq from transcript: its
// last engine.MaxTranscript entries, which must run up to seq. A window
// older than the cached one is not taken.
func (ws *windows) put(id string, rev, seq int64, transcript []engine.Entry) {
	n := min(int64(engine.MaxTranscript), seq)
	if int64(len(transcript)) < n {
		return
	}
	transcript = transcript[int64(len(transcript))-n:]
	for i := range transcript {
		if transcript[i].Seq != seq-n+1+int64(i) {
			return
		}
	}
	ws.mu.Lock()
	old := ws.m[id]
	ws.mu.Unlock()
	if old != nil && old.rev >= rev {
		return
	}
	// Take entries already cached from the cache; copy the new ones' inputs
	// and responses so that the cache holds nothing of the turn that made
	// them.
	entries := make([]engine.Entry, len(transcript))
	copy(entries, transcript)
	for i := range entries {
		en := &entries[i]
		if old != nil {
			if k := len(old.entries) - 1 - int(old.seq-en.Seq); k >= 0 && k < len(old.entries) {
				*en = old.entries[k]
				continue
			}
		}
		if en.Input != nil {
			in := *en.Input
			en.Input = &in
		}
		if en.Response != nil {
			r := *en.Response
			en.Response = &r
		}
	}
	w := &window{rev: rev, seq: seq, entries: entries}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if cur := ws.m[id]; cur != nil && cur.rev >= rev {
		return
	}
	if _, ok := ws.m[id]; !ok && len(ws.m) >= windowCacheSize {
		for k := range ws.m { // drop one at random
			delete(ws.m, k)
			break
		}
	}
	ws.m[id] = w
}
