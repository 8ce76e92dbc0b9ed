package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// A chat record is rev (8 bytes BE), seq (8 bytes BE), then the chat as
// JSON without its transcript. Transcript entries have their own keys;
// an update writes its new entries, the record, the meta if changed and
// the reply in one synced batch.

const headerLen = 16

type chatMeta struct {
	StoryID string        `json:"s"`
	Status  engine.Status `json:"t"`
}

func header(v []byte) (rev, seq int64, err error) {
	if len(v) < headerLen {
		return 0, 0, errors.New("short chat record")
	}
	return int64(binary.BigEndian.Uint64(v[0:8])), int64(binary.BigEndian.Uint64(v[8:16])), nil
}

func decodeChat(v []byte) (*engine.Chat, error) {
	rev, seq, err := header(v)
	if err != nil {
		return nil, err
	}
	var c engine.Chat
	if err := json.Unmarshal(v[headerLen:], &c); err != nil {
		return nil, fmt.Errorf("decode chat: %w", err)
	}
	c.Rev, c.Seq, c.Transcript = rev, seq, nil
	return &c, nil
}

// encodeChat returns the record of c at rev, and its meta.
func encodeChat(c *engine.Chat, rev int64) (rec, meta []byte, err error) {
	meta, err = json.Marshal(chatMeta{c.StoryID, c.Status})
	if err != nil {
		return nil, nil, fmt.Errorf("encode chat: %w", err)
	}
	cc := *c
	cc.Transcript = nil
	buf := bytes.NewBuffer(make([]byte, headerLen, headerLen+512))
	if err := json.NewEncoder(buf).Encode(&cc); err != nil {
		return nil, nil, fmt.Errorf("encode chat: %w", err)
	}
	rec = bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	binary.BigEndian.PutUint64(rec[0:8], uint64(rev))
	binary.BigEndian.PutUint64(rec[8:16], uint64(c.Seq))
	return rec, meta, nil
}

// newCachedRecord returns the cache entry of c's record at rev.
func newCachedRecord(c *engine.Chat, rev int64, rec, meta []byte) *cachedRecord {
	r := &cachedRecord{rev: rev, seq: c.Seq, rec: rec, meta: meta}
	if plain, ok := plainChat(c, rev); ok {
		r.chat, r.chatBytes = plain, plainBytes(plain)
	}
	return r
}

func entryPrefix(id string) []byte { return append(key('t', id), 0) }

func entryKey(id string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(entryPrefix(id), uint64(seq))
}

func replyPrefix(id string) []byte { return append(key('r', id), 0) }

// A reply is stored under its message id, so a turn's check for a repeated
// id is one point read: the value is the rev of the update that wrote it
// (8 bytes BE), then the answer's bytes.
func replyKey(id, messageID string) []byte { return append(replyPrefix(id), messageID...) }

func replyValue(rev int64, body []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(body)), uint64(rev)), body...)
}

// pruneEvery: every pruneEvery revisions, an update deletes the replies
// older than the chat's last store.MaxReplies updates; GetReply ignores
// those still there in between.
const pruneEvery = store.MaxReplies / 2

// pruneReplies adds to b the deletion of chat id's replies written before
// its last store.MaxReplies updates, rev being the update b writes.
func (s *Store) pruneReplies(b *pebble.Batch, id string, rev int64) error {
	prefix := replyPrefix(id)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if len(v) < 8 || rev-int64(binary.BigEndian.Uint64(v)) >= store.MaxReplies {
			if err := b.Delete(slices.Clone(it.Key()), nil); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// current returns chat id's record (nil record: no chat), from the cache
// or else read and cached; the caller holds id's chat lock. A record read
// here has no meta: the next write writes it.
func (s *Store) current(id string) (*cachedRecord, error) {
	if r, ok := s.cache.record(id); ok {
		return r, nil
	}
	rec, err := get(s.db, key('c', id))
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return &cachedRecord{}, nil
	}
	rev, seq, err := header(rec)
	if err != nil {
		return nil, err
	}
	r := &cachedRecord{rev: rev, seq: seq, rec: rec}
	s.cache.putRecord(id, r)
	return r, nil
}

// record returns chat id's current record (nil: no chat) without taking
// its lock.
func (s *Store) record(id string) ([]byte, error) {
	if r, ok := s.cache.record(id); ok {
		return r.rec, nil
	}
	return get(s.db, key('c', id))
}

// writeChat adds to b the record, the meta (if it differs from the stored
// one), the reply (if any) and the entries of c above the stored chat's, in
// key order (c, m, r, t): the memtable inserts a batch's keys in its order
// and finds each one fastest right after the one before.
func (s *Store) writeChat(b *pebble.Batch, c *engine.Chat, stored *cachedRecord, rec, meta []byte, reply *store.Reply) error {
	add, err := store.NewEntries(c.Transcript, stored.seq, c.Seq)
	if err != nil {
		return err
	}
	if err := b.Set(key('c', c.ID), rec, nil); err != nil {
		return err
	}
	if !bytes.Equal(stored.meta, meta) {
		if err := b.Set(key('m', c.ID), meta, nil); err != nil {
			return err
		}
	}
	if reply != nil {
		if err := b.Set(replyKey(c.ID, reply.MessageID), replyValue(c.Rev+1, reply.Body), nil); err != nil {
			return err
		}
	}
	if (c.Rev+1)%pruneEvery == 0 {
		if err := s.pruneReplies(b, c.ID, c.Rev+1); err != nil {
			return fmt.Errorf("prune replies: %w", err)
		}
	}
	for i := range add {
		data, err := json.Marshal(&add[i])
		if err != nil {
			return fmt.Errorf("encode transcript entry %d: %w", add[i].Seq, err)
		}
		if err := b.Set(entryKey(c.ID, add[i].Seq), data, nil); err != nil {
			return err
		}
	}
	return nil
}

// CreateChat implements store.Store.
func (s *Store) CreateChat(ctx context.Context, c *engine.Chat) error {
	if err := s.createChatWith(c, nil); err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	c.Rev = 1
	s.cache.putWindow(c.ID, 1, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// createChatWith creates c; extra (if set) adds to the chat's batch.
func (s *Store) createChatWith(c *engine.Chat, extra func(*pebble.Batch) error) error {
	if err := checkID(c.ID); err != nil {
		return err
	}
	rec, meta, err := encodeChat(c, 1)
	if err != nil {
		return err
	}
	cached := newCachedRecord(c, 1, rec, meta)
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	mu := s.chatLock(c.ID)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.current(c.ID)
	if err != nil {
		return err
	}
	if cur.rec != nil {
		return store.ErrExists
	}
	return s.writeChatBatch(c, cur, cached, rec, meta, nil, extra)
}

// writeChatBatch writes a chat (and its reply, and what extra adds) in one
// batch, commits it and caches the record.
func (s *Store) writeChatBatch(c *engine.Chat, cur, cached *cachedRecord, rec, meta []byte, reply *store.Reply, extra func(*pebble.Batch) error) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.writeChat(b, c, cur, rec, meta, reply); err != nil {
		return err
	}
	if extra != nil {
		if err := extra(b); err != nil {
			return err
		}
	}
	if err := s.commit(b, pebble.Sync); err != nil {
		return err
	}
	s.cache.putRecord(c.ID, cached)
	return nil
}

// UpdateChat implements store.Store.
func (s *Store) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	if err := s.updateChatWith(ctx, c, reply, nil); err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	c.Rev++
	s.cache.putWindow(c.ID, c.Rev, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// updateChatWith updates c; extra (if set) adds to the chat's batch.
func (s *Store) updateChatWith(ctx context.Context, c *engine.Chat, reply *store.Reply, extra func(*pebble.Batch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, meta, err := encodeChat(c, c.Rev+1)
	if err != nil {
		return err
	}
	cached := newCachedRecord(c, c.Rev+1, rec, meta)
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	mu := s.chatLock(c.ID)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.current(c.ID)
	if err != nil {
		return err
	}
	if cur.rec == nil {
		return store.ErrNotFound
	}
	if cur.rev != c.Rev {
		return store.ErrConflict
	}
	return s.writeChatBatch(c, cur, cached, rec, meta, reply, extra)
}

// GetChat implements store.Store.
func (s *Store) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	c, err := s.getChat(id, false)
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	return c, nil
}

// GetChatForTurn is GetChat for a turn (the API's turnReader): when the
// chat's window of recent entries is not cached, it is read only if the
// turn needs it (engine.Chat.Earlier), which most turns do not.
func (s *Store) GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	c, err := s.getChat(id, true)
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	return c, nil
}

func (s *Store) getChat(id string, lazy bool) (*engine.Chat, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var c *engine.Chat
	if r, ok := s.cache.record(id); ok && r.chat != nil {
		c = cloneChat(r.chat)
	} else {
		mu := s.chatLock(id)
		mu.Lock()
		r, err := s.current(id)
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		if r.rec == nil {
			return nil, store.ErrNotFound
		}
		if c, err = decodeChat(r.rec); err != nil {
			return nil, err
		}
	}
	if c.Seq == 0 {
		return c, nil
	}
	if w, ok := s.cache.getWindow(id, c.Seq); ok {
		c.Transcript = w
		return c, nil
	}
	if lazy {
		rev, seq := c.Rev, c.Seq
		c.Earlier = func() ([]engine.Entry, error) { return s.window(id, rev, seq) }
		return c, nil
	}
	var err error
	c.Transcript, err = s.readWindow(id, c.Rev, c.Seq)
	return c, err
}

// window reads chat id's window at rev and seq (for Chat.Earlier).
func (s *Store) window(id string, rev, seq int64) ([]engine.Entry, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.readWindow(id, rev, seq)
}

// readWindow reads chat id's window of recent entries at rev and seq, and
// caches it.
func (s *Store) readWindow(id string, rev, seq int64) ([]engine.Entry, error) {
	tr, err := s.readEntries(id, seq-int64(engine.MaxTranscript), seq, 0)
	if err != nil {
		return nil, err
	}
	s.cache.putWindow(id, rev, seq, tr)
	return slices.Clip(tr), nil
}

// readEntries returns the entries of chat id with seq in (after, upto],
// at most limit (<= 0: all), the first ones. Entries up to a stored seq
// never change, so no snapshot is needed.
func (s *Store) readEntries(id string, after, upto int64, limit int) ([]engine.Entry, error) {
	after = max(0, after)
	if limit > 0 {
		upto = min(upto, after+int64(limit))
	}
	if upto <= after {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(id, after+1), UpperBound: entryKey(id, upto+1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	list := make([]engine.Entry, 0, upto-after)
	want := after + 1
	for ok := it.First(); ok; ok = it.Next() {
		var e engine.Entry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("decode transcript entry %d: %w", want, err)
		}
		e.Seq = want
		list = append(list, e)
		want++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if want != upto+1 {
		return nil, fmt.Errorf("transcript entries %d to %d missing", want, upto)
	}
	return list, nil
}

// GetTranscript implements store.Store.
func (s *Store) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	list, err := s.getTranscript(chatID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("get transcript of chat %q: %w", chatID, err)
	}
	return list, nil
}

func (s *Store) getTranscript(id string, after int64, limit int) ([]engine.Entry, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, store.ErrNotFound
	}
	_, seq, err := header(v)
	if err != nil {
		return nil, err
	}
	return s.readEntries(id, after, seq, limit)
}

// GetReply implements store.Store.
func (s *Store) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	body, ok, err := s.getReply(chatID, messageID)
	if err != nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: %w", messageID, chatID, err)
	}
	return body, ok, nil
}

func (s *Store) getReply(chatID, messageID string) ([]byte, bool, error) {
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	v, err := get(s.db, replyKey(chatID, messageID))
	if err != nil || v == nil {
		return nil, false, err
	}
	if len(v) < 8 {
		return nil, false, errors.New("short reply record")
	}
	rec, err := s.record(chatID)
	if err != nil || rec == nil {
		return nil, false, err
	}
	rev, _, err := header(rec)
	if err != nil {
		return nil, false, err
	}
	if rev-int64(binary.BigEndian.Uint64(v)) >= store.MaxReplies {
		return nil, false, nil // forgotten, not yet pruned
	}
	return v[8:], true, nil
}

// ListChats implements store.Store.
func (s *Store) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	list, err := s.listChats(f)
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	return list, nil
}

func (s *Store) listChats(f store.ChatFilter) ([]*engine.Chat, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := []byte{'m', 0}
	lower := prefix
	if f.After != "" {
		lower = append(key('m', f.After), 0) // the least key above After's
	}
	if f.UserID != "" {
		// The user index: u\0<user>\0<chat> (outbox.go).
		prefix = append(key('u', f.UserID), 0)
		lower = prefix
		if f.After != "" {
			lower = append(append(slices.Clone(prefix), f.After...), 0)
		}
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var list []*engine.Chat
	for ok := it.First(); ok && len(list) < limit; ok = it.Next() {
		id := string(it.Key()[len(prefix):])
		var m chatMeta
		if f.UserID != "" {
			mv, err := get(snap, key('m', id))
			if err != nil || mv == nil {
				continue
			}
			if err := json.Unmarshal(mv, &m); err != nil {
				return nil, fmt.Errorf("decode chat %q: %w", id, err)
			}
		} else if err := json.Unmarshal(it.Value(), &m); err != nil {
			return nil, fmt.Errorf("decode chat %q: %w", id, err)
		}
		if (f.StoryID != "" && m.StoryID != f.StoryID) || (f.Status != "" && m.Status != f.Status) {
			continue
		}
		v, err := get(snap, key('c', id))
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("chat %q has meta but no record", id)
		}
		c, err := decodeChat(v)
		if err != nil {
			return nil, fmt.Errorf("decode chat %q: %w", id, err)
		}
		if f.UserID != "" && c.UserID != f.UserID {
			continue
		}
		list = append(list, c)
	}
	return list, it.Error()
}
