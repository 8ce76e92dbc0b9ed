package embedded

import (
	"sync"
	"unsafe"

	"github.com/maypok86/otter/v2"

	"github.com/storyflow/storyflow/engine"
)

// DefaultCacheBytes is the chat cache's bound when Options.CacheBytes is 0.
const DefaultCacheBytes = 64 << 20

// chatCache keeps, per chat, its current record (and the chat decoded from
// it) and the window of recent transcript entries GetChat returns, so that
// a turn neither reads pebble nor decodes JSON. One otter cache holds both
// kinds of entry, weighed in bytes (an estimate of the memory each holds).
type chatCache struct {
	c *otter.Cache[cacheKey, cached]
	// mu serialises window changes: a window is changed in place and then
	// put again (so that otter weighs it anew).
	mu sync.Mutex
}

type cacheKey struct {
	id     string
	window bool // the chat's window, not its record
}

// cached is a *cachedRecord or a *window.
type cached interface{ bytes() int }

// entryOverhead estimates what an entry costs otter and the key beyond
// the value's own bytes.
const entryOverhead = 160

func newChatCache(maxBytes int64) *chatCache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	c := otter.Must(&otter.Options[cacheKey, cached]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k cacheKey, v cached) uint32 {
			return uint32(min(int64(entryOverhead+len(k.id)+v.bytes()), 1<<32-1))
		},
	})
	return &chatCache{c: c}
}

func (cc *chatCache) close() { cc.c.StopAllGoroutines() }

// cachedRecord is a chat's current record. An entry is put only by a write
// holding the chat's lock, after its batch committed, so it is never older
// than the stored record once the write is acknowledged; a miss reads
// pebble.
type cachedRecord struct {
	rev, seq  int64
	rec, meta []byte
	// chat is rec decoded (plainChat), or nil; never handed out, only
	// copies of it (cloneChat).
	chat *engine.Chat
	// chatBytes estimates the memory chat holds.
	chatBytes int
}

func (r *cachedRecord) bytes() int {
	return int(unsafe.Sizeof(*r)) + cap(r.rec) + cap(r.meta) + r.chatBytes
}

func (cc *chatCache) record(id string) (*cachedRecord, bool) {
	v, ok := cc.c.GetIfPresent(cacheKey{id: id})
	if !ok {
		return nil, false
	}
	return v.(*cachedRecord), true
}

// putRecord caches id's record; the caller holds id's chat lock.
func (cc *chatCache) putRecord(id string, r *cachedRecord) {
	cc.c.Set(cacheKey{id: id}, r)
}

// room is how many entries a cached window has room for after its end
// when the cache copies it.
const room = 32

// A window is the window of recent transcript entries that GetChat
// returns, so that a turn does not decode it again. A window is valid for
// its seq for good (entries never change once written), so it needs no
// invalidation: GetChat uses it only when the stored chat's seq is the
// cached one.
//
// Windows are shared, not copied. Each window lives in a buffer with room
// after its end. getWindow hands out the room once per version of a
// window (a claim): that caller (a turn) appends its entries in place, and
// when it puts them back the cache only moves the window's end. Every
// other caller gets the window with no room, so its appends copy. Nothing
// is written below a window's end once handed out, and nothing above it
// but by the one claimant, so readers never see a write. Entries are never
// changed once in a transcript, by the engine or by a store.
type window struct {
	rev, seq int64
	buf      []engine.Entry // the window is buf[start:]; room is buf[len:cap]
	start    int
	claimed  bool // the room was handed out (until put back in place); buf stays as it was
	// weights[i] estimates the bytes buf[i] points to (entryBytes), for
	// buf[:len]; payload is their sum. A new buffer takes the weights of
	// the entries it shares with the old one rather than weighing them again.
	weights []int32
	payload int
}

func (w *window) bytes() int {
	return int(unsafe.Sizeof(*w)) + cap(w.buf)*int(unsafe.Sizeof(engine.Entry{})) + 4*cap(w.weights) + w.payload
}

// weigh appends the weights of buf[len(weights):] to weights.
func (w *window) weigh() {
	for i := len(w.weights); i < len(w.buf); i++ {
		n := entryBytes(&w.buf[i])
		w.weights = append(w.weights, int32(min(n, 1<<31-1)))
		w.payload += n
	}
}

// weightOf returns the weight of w's entry seq, if w holds it.
func (w *window) weightOf(seq int64) (int32, bool) {
	i := len(w.buf) - 1 - int(w.seq-seq)
	if i < 0 || i >= len(w.weights) || w.buf[i].Seq != seq {
		return 0, false
	}
	return w.weights[i], true
}

// entryBytes estimates the memory e points to.
func entryBytes(e *engine.Entry) int {
	n := len(e.From) + len(e.Node)
	if in := e.Input; in != nil {
		n += int(unsafe.Sizeof(*in)) + len(in.Text) + len(in.Postback) + len(in.Goto)
	}
	if r := e.Response; r != nil {
		n += int(unsafe.Sizeof(*r)) + len(r.Type) + len(r.Message) + len(r.ImageURL) + len(r.FileURL) + len(r.Title)
		for _, m := range r.Messages {
			n += 16 + len(m)
		}
		n += buttonsBytes(r.Buttons)
		for i := range r.Elements {
			c := &r.Elements[i]
			n += int(unsafe.Sizeof(*c)) + len(c.Title) + len(c.Subtitle) + len(c.ImageURL) + buttonsBytes(c.Buttons)
		}
	}
	if c := e.Call; c != nil {
		n += int(unsafe.Sizeof(*c)) + len(c.Format) + len(c.Model) + len(c.StopReason) + mapBytes(c.Metadata)
	}
	if e.Data != nil {
		n += mapBytes(e.Data)
	}
	for i := range e.Steps {
		s := &e.Steps[i]
		n += int(unsafe.Sizeof(*s)) + len(s.Node) + len(s.Next) + len(s.End) + len(s.Error)
	}
	return n
}

func buttonsBytes(bs []engine.Button) int {
	n := 0
	for i := range bs {
		b := &bs[i]
		n += int(unsafe.Sizeof(*b)) + len(b.Type) + len(b.Title) + len(b.Value) + len(b.Height)
	}
	return n
}

func (cc *chatCache) window(id string) (*window, bool) {
	v, ok := cc.c.GetIfPresent(cacheKey{id: id, window: true})
	if !ok {
		return nil, false
	}
	return v.(*window), true
}

// getWindow returns chat id's window at seq. The first caller for a
// version of the window gets it with room to append in place; later ones
// without.
func (cc *chatCache) getWindow(id string, seq int64) ([]engine.Entry, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	w, ok := cc.window(id)
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

// putWindow caches the window of chat id at rev and seq from transcript:
// its last engine.MaxTranscript entries, which must run up to seq. A
// window older than the cached one is not taken. The caller must not
// append to transcript in place afterwards (slices.Clip it): its room may
// be the cache's again.
func (cc *chatCache) putWindow(id string, rev, seq int64, transcript []engine.Entry) {
	n := min(int64(engine.MaxTranscript), seq)
	if int64(len(transcript)) < n {
		return
	}
	end := len(transcript)
	entries := transcript[int64(end)-n : end : end]
	// A transcript's entries have consecutive seqs: its ends tell.
	if n > 0 && (entries[0].Seq != seq-n+1 || entries[n-1].Seq != seq) {
		return
	}
	key := cacheKey{id: id, window: true}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	old, ok := cc.window(id)
	if ok && old.rev >= rev {
		return
	}
	if ok && old.claimed && old.inPlace(entries, seq) {
		// The claimant appended in place: take its entries as they are,
		// and the room after them is free again.
		old.buf = old.buf[:len(old.buf)+int(seq-old.seq)]
		old.weigh()
		old.start = len(old.buf) - len(entries)
		old.rev, old.seq, old.claimed = rev, seq, false
		cc.c.Set(key, old) // weigh it again
		return
	}
	if ok && !old.claimed && old.seq < seq && seq-old.seq <= int64(len(entries)) &&
		len(old.buf)+int(seq-old.seq) <= cap(old.buf) {
		// Copy only the new entries into the room.
		old.buf = append(old.buf, entries[len(entries)-int(seq-old.seq):]...)
		old.weigh()
		old.start = len(old.buf) - len(entries)
		old.rev, old.seq = rev, seq
		cc.c.Set(key, old)
		return
	}
	// A new buffer: the old one's room may be a claimant's.
	buf := make([]engine.Entry, len(entries), len(entries)+room)
	copy(buf, entries)
	w := &window{rev: rev, seq: seq, buf: buf, weights: make([]int32, 0, cap(buf))}
	if ok {
		// Entries never change: those the old window holds weigh the same.
		for i := range buf {
			n, known := old.weightOf(buf[i].Seq)
			if !known {
				break
			}
			w.weights = append(w.weights, n)
			w.payload += int(n)
		}
	}
	w.weigh()
	cc.c.Set(key, w)
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
