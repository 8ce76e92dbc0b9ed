// Package window caches the recent transcript window of chats for the
// embedded stores.
package window

import (
	"sync"

	"github.com/storyflow/storyflow/engine"
)

// Size is how many chats' windows are cached.
const Size = 1024

// room is how many entries a cached window has room for after its end
// when the cache copies it.
const room = 32

// Cache caches the window of recent transcript entries that GetChat
// returns, per chat, so that a turn does not decode it again. A window is
// valid for its seq for good (entries never change once written), so the
// cache needs no invalidation: GetChat uses it only when the stored chat's
// seq is the cached one. It also remembers the rev that had that seq.
//
// Windows are shared, not copied. Each window lives in a buffer of the
// cache with room after its end. Get hands out the room once per version
// of a window (a claim): that caller (a turn) appends its entries in place,
// and when it puts them back the cache only moves the window's end. Every
// other caller gets the window with no room, so its appends copy. Nothing
// is written below a window's end once handed out, and nothing above it
// but by the one claimant, so readers never see a write. Entries are never
// changed once in a transcript, by the engine or by a store.
type Cache struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	rev, seq int64
	buf      []engine.Entry // the window is buf[start:]; room is buf[len:cap]
	start    int
	claimed  bool // the room was handed out (until put back in place); buf stays as it was
}

// New returns an empty cache.
func New() *Cache { return &Cache{m: make(map[string]*window)} }

// Get returns chat id's window at seq. The first caller for a version of
// the window gets it with room to append in place; later ones without.
func (ws *Cache) Get(id string, seq int64) ([]engine.Entry, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := ws.m[id]
	if !ok || w.seq != seq {
		return nil, false
	}
	end := len(w.buf)
	if w.claimed {
		return w.buf[w.start:end:end], true
	}
	w.claimed = true
	return w.buf[w.start:end:cap(w.buf)], true
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
// older than the cached one is not taken. The caller must not append to
// transcript in place afterwards (slices.Clip it): its room may be the
// cache's again.
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
	if ok && old.claimed && old.inPlace(entries, seq) {
		// The claimant appended in place: take its entries as they are,
		// and the room after them is free again.
		old.buf = old.buf[:len(old.buf)+int(seq-old.seq)]
		old.start = len(old.buf) - len(entries)
		old.rev, old.seq, old.claimed = rev, seq, false
		return
	}
	if !ok && len(ws.m) >= Size {
		for k := range ws.m { // drop one at random
			delete(ws.m, k)
			break
		}
	}
	if ok && !old.claimed && old.seq < seq && seq-old.seq <= int64(len(entries)) &&
		len(old.buf)+int(seq-old.seq) <= cap(old.buf) {
		// Copy only the new entries into the room.
		add := entries[len(entries)-int(seq-old.seq):]
		old.buf = append(old.buf, add...)
		old.start = len(old.buf) - len(entries)
		old.rev, old.seq = rev, seq
		return
	}
	// A new buffer: the old one's room may be a claimant's.
	buf := make([]engine.Entry, len(entries), len(entries)+room)
	copy(buf, entries)
	ws.m[id] = &window{rev: rev, seq: seq, buf: buf}
}

// inPlace tells whether entries (up to seq) end where the claimant of w
// would have appended them in w's buffer.
func (w *window) inPlace(entries []engine.Entry, seq int64) bool {
	k := seq - w.seq
	if k <= 0 || len(entries) == 0 {
		return false
	}
	last := len(w.buf) + int(k) - 1
	if last >= cap(w.buf) || int(k) > len(entries) {
		return false
	}
	full := w.buf[:cap(w.buf)]
	return &full[last] == &entries[len(entries)-1]
}
