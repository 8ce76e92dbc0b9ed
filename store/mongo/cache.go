package mongo

import (
	"fmt"
	"slices"

	"github.com/maypok86/otter/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// snap is a cached chat at one revision. It is never changed once cached:
// an update makes a new one.
type snap struct {
	chat  *engine.Chat // Transcript is the window
	sizes []int        // BSON size of each window entry
	// first is the seq of the window's first entry (Seq+1 when empty).
	first int64
	// replies are the message ids of the revisions after Rev-MaxReplies,
	// oldest first (a repeated id reads its body from its revision).
	replies []replyRef
	// stale: a newer revision may exist; catch up before use.
	stale     bool
	conflicts int // in a row
	state     int // BSON size of the state
	size      int64
}

type replyRef struct {
	id  string
	rev int64
}

// fresh returns a copy of sn that is neither stale nor in conflict.
func (sn *snap) fresh() *snap {
	c := *sn
	c.stale, c.conflicts = false, 0
	return &c
}

// apply returns sn with revision d applied: d must be the next revision
// (or any revision when sn is empty) and run on from its entries.
func (sn *snap) apply(d turnDoc, z turnSizes) (*snap, error) {
	if d.Chat == nil {
		return nil, fmt.Errorf("revision %s has no chat state", revKey(d.ChatID, d.Rev))
	}
	n := int64(len(d.Entries))
	for i, e := range d.Entries {
		if e.Seq != d.Seq-n+1+int64(i) {
			return nil, fmt.Errorf("revision %s: entry %d has seq %d", revKey(d.ChatID, d.Rev), i, e.Seq)
		}
	}
	next := &snap{conflicts: sn.conflicts, state: z.state}
	if sn.chat == nil {
		next.first = d.Seq - n + 1
	} else {
		if d.Rev != sn.chat.Rev+1 || d.Seq-n != sn.chat.Seq {
			return nil, fmt.Errorf("revision %s does not follow revision %d (seq %d)", revKey(d.ChatID, d.Rev), sn.chat.Rev, sn.chat.Seq)
		}
		next.first = sn.first
	}
	c, err := stateOf(d)
	if err != nil {
		return nil, err
	}
	var window []engine.Entry
	var sizes []int
	if sn.chat != nil {
		window, sizes = sn.chat.Transcript, sn.sizes
	}
	if drop := len(window) + len(d.Entries) - engine.MaxTranscript; drop > 0 {
		drop = min(drop, len(window))
		window, sizes = window[drop:], sizes[drop:]
	}
	c.Transcript = append(slices.Clip(window), d.Entries...)
	next.sizes = append(slices.Clip(sizes), z.entries...)
	if drop := len(c.Transcript) - engine.MaxTranscript; drop > 0 {
		c.Transcript, next.sizes = c.Transcript[drop:], next.sizes[drop:]
	}
	if len(c.Transcript) > 0 {
		next.first = c.Transcript[0].Seq
	} else {
		c.Transcript, next.first = nil, c.Seq+1
	}
	next.chat = c
	replies := sn.replies
	for len(replies) > 0 && replies[0].rev <= d.Rev-store.MaxReplies {
		replies = replies[1:]
	}
	if d.Reply != nil {
		replies = append(slices.Clip(replies), replyRef{id: d.Reply.MessageID, rev: d.Rev})
	}
	next.replies = replies
	next.measure()
	return next, nil
}

// prepend returns sn with older entries before its window (up to
// MaxTranscript in all).
func (sn *snap) prepend(older []engine.Entry) *snap {
	next := *sn
	room := engine.MaxTranscript - len(sn.chat.Transcript)
	older = older[max(0, len(older)-room):]
	if len(older) == 0 || older[len(older)-1].Seq != sn.first-1 {
		return sn
	}
	c := *sn.chat
	c.Transcript = append(slices.Clone(older), sn.chat.Transcript...)
	sizes := make([]int, len(older), len(c.Transcript))
	for i := range sizes {
		sizes[i] = 256
	}
	next.sizes = append(sizes, sn.sizes...)
	next.chat, next.first = &c, older[0].Seq
	next.measure()
	return &next
}

func (sn *snap) measure() {
	size := int64(512 + sn.state)
	for _, n := range sn.sizes {
		size += int64(n) + 64
	}
	for _, r := range sn.replies {
		size += int64(len(r.id) + 48)
	}
	sn.size = size
}

// reply finds a remembered reply by message id.
func (sn *snap) reply(id string) (replyRef, bool) {
	for i := len(sn.replies) - 1; i >= 0; i-- {
		if sn.replies[i].id == id {
			return sn.replies[i], true
		}
	}
	return replyRef{}, false
}

// copyChat returns the chat for a caller, who may change it, and append
// to its transcript, but not change the entries in it (they are shared
// with the cache; the engine only appends).
func (sn *snap) copyChat() *engine.Chat {
	c := *sn.chat
	c.Attributes = copyMap(c.Attributes)
	c.UserAttributes = copyMap(c.UserAttributes)
	c.Transcript = slices.Clone(c.Transcript)
	return &c
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyMap(v)
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	}
	return v // JSON scalars
}

// chatCache holds snaps by chat id in an otter cache bounded in bytes
// (what each snap weighs, sn.size).
type chatCache struct {
	c *otter.Cache[string, *snap]
	// max is the bound: a snap over an eighth of it is not cached.
	max int64
}

// snapOverhead estimates what an entry costs otter beyond its snap.
const snapOverhead = 160

func newChatCache(maxBytes int64) *chatCache {
	return &chatCache{max: maxBytes, c: otter.Must(&otter.Options[string, *snap]{
		MaximumWeight: uint64(max(maxBytes, 1)),
		Weigher: func(id string, sn *snap) uint32 {
			return uint32(min(snapOverhead+int64(len(id))+sn.size, 1<<32-1))
		},
	})}
}

func (c *chatCache) get(id string) *snap {
	sn, _ := c.c.GetIfPresent(id)
	return sn
}

// put caches sn unless a newer revision is cached.
func (c *chatCache) put(id string, sn *snap) {
	big := sn.size > c.max/8
	c.c.Compute(id, func(old *snap, found bool) (*snap, otter.ComputeOp) {
		switch {
		case found && old.chat.Rev > sn.chat.Rev:
			return old, otter.CancelOp
		case big:
			return nil, otter.InvalidateOp
		}
		return sn, otter.WriteOp
	})
}

// forget drops a chat from the cache.
func (c *chatCache) forget(id string) { c.c.Invalidate(id) }

// markStale marks the cached chat stale if it is not newer than rev.
func (c *chatCache) markStale(id string, rev int64) {
	c.c.Compute(id, func(old *snap, found bool) (*snap, otter.ComputeOp) {
		if !found || old.chat.Rev > rev || old.stale {
			return old, otter.CancelOp
		}
		sn := *old
		sn.stale = true
		return &sn, otter.WriteOp
	})
}
