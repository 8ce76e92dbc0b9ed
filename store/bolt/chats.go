package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Chats. A chat record (bucket chats) is a header, then the chat as JSON
// without its transcript:
//
//	byte 0       recordFormat
//	bytes 1-8    rev, big endian
//	bytes 9-16   seq (transcript entries), big endian
//	bytes 17-24  log id of the last entry (0: none)
//	bytes 25-    JSON
//
// Records written before the transcript was kept apart are plain JSON with
// the transcript inline (their first byte is '{'); they are read as they
// are and their entries move to the log on their next update.
//
// Transcripts: bucket tlog is one append-only log of every chat's entries,
// keyed by a growing 8-byte id, so that a commit's entries share the last
// page or two instead of dirtying a page per chat. An entry's value is the
// log id of its chat's previous entry (0: none), its seq, its chat id
// (2-byte length first) and its JSON. Reading walks a chat's entries back
// from a known one: its record names the last; bucket tindex names the
// last entry of each full chunk of chunkLen entries, under chunkKey. An
// update appends the new entries, the index entries of chunks they fill
// and the record in one transaction.

const (
	recordFormat = 2
	headerLen    = 25
	chunkLen     = 64
)

type chatMeta struct {
	StoryID string        `json:"s"`
	Status  engine.Status `json:"t"`
}

// record is a decoded chat record.
type record struct {
	rev, seq, last int64
	// legacy is set for an old plain JSON record; its chat then holds the
	// whole transcript, numbered from 1.
	legacy bool
	chat   *engine.Chat
}

var errFormat = errors.New("unknown chat record format")

// header reads a record's rev, seq and last log id without decoding the
// chat; ok is false for a legacy record.
func header(v []byte) (rev, seq, last int64, ok bool, err error) {
	if len(v) > 0 && v[0] == '{' {
		return 0, 0, 0, false, nil
	}
	if len(v) < headerLen || v[0] != recordFormat {
		return 0, 0, 0, false, errFormat
	}
	be := binary.BigEndian
	return int64(be.Uint64(v[1:9])), int64(be.Uint64(v[9:17])), int64(be.Uint64(v[17:25])), true, nil
}

// decodeRecord decodes a chat record. withTranscript keeps a legacy
// record's transcript (new records never hold one).
func decodeRecord(v []byte, withTranscript bool) (record, error) {
	var c engine.Chat
	rev, seq, last, ok, err := header(v)
	if err != nil {
		return record{}, err
	}
	if ok {
		if err := json.Unmarshal(v[headerLen:], &c); err != nil {
			return record{}, fmt.Errorf("decode chat: %w", err)
		}
		c.Rev, c.Seq, c.Transcript = rev, seq, nil
		return record{rev: rev, seq: seq, last: last, chat: &c}, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return record{}, fmt.Errorf("decode chat: %w", err)
	}
	for i := range c.Transcript {
		c.Transcript[i].Seq = int64(i + 1)
	}
	c.Seq = int64(len(c.Transcript))
	if !withTranscript {
		c.Transcript = nil
	}
	return record{rev: c.Rev, seq: c.Seq, legacy: true, chat: &c}, nil
}

// encodedChat is a chat update prepared outside the commit: its record
// (the last log id is filled in by put), its meta and its entries above
// seq from (more are encoded in the transaction if the stored chat turns
// out to be older).
type encodedChat struct {
	id      []byte
	rec     []byte
	meta    []byte
	from    int64
	entries [][]byte // entries from+1, from+2, ...
}

func encodeChat(c *engine.Chat, rev, from int64) (*encodedChat, error) {
	if len(c.ID) > 1<<16-1 {
		return nil, errors.New("chat id too long")
	}
	cc := *c
	cc.Transcript = nil
	rec := make([]byte, headerLen, headerLen+512)
	rec[0] = recordFormat
	binary.BigEndian.PutUint64(rec[1:9], uint64(rev))
	binary.BigEndian.PutUint64(rec[9:17], uint64(c.Seq))
	data, err := json.Marshal(&cc)
	if err != nil {
		return nil, fmt.Errorf("encode chat: %w", err)
	}
	meta, err := json.Marshal(chatMeta{c.StoryID, c.Status})
	if err != nil {
		return nil, fmt.Errorf("encode chat: %w", err)
	}
	e := &encodedChat{id: []byte(c.ID), rec: append(rec, data...), meta: meta, from: from}
	for i := range c.Transcript {
		if c.Transcript[i].Seq <= from {
			continue
		}
		data, err := json.Marshal(&c.Transcript[i])
		if err != nil {
			return nil, fmt.Errorf("encode transcript entry %d: %w", c.Transcript[i].Seq, err)
		}
		e.entries = append(e.entries, data)
	}
	return e, nil
}

// chunkKey is the tindex key of a chat's chunk k (entries k*chunkLen+1 to
// (k+1)*chunkLen): the id's length, the id, k.
func chunkKey(id []byte, k int64) []byte {
	key := make([]byte, 0, 2+len(id)+8)
	key = binary.BigEndian.AppendUint16(key, uint16(len(id)))
	key = append(key, id...)
	return binary.BigEndian.AppendUint64(key, uint64(k))
}

const logHeader = 8 + 8 + 2 // prev, seq, id length

// appendLog appends one entry of chat id (seq, JSON data) after the entry
// at log id last and returns its log id.
func appendLog(tx *bbolt.Tx, id []byte, seq, last int64, data []byte) (int64, error) {
	log := tx.Bucket(bucketLog)
	log.FillPercent = 1 // appends only: full pages
	n, err := log.NextSequence()
	if err != nil {
		return 0, err
	}
	v := make([]byte, 0, logHeader+len(id)+len(data))
	v = binary.BigEndian.AppendUint64(v, uint64(last))
	v = binary.BigEndian.AppendUint64(v, uint64(seq))
	v = binary.BigEndian.AppendUint16(v, uint16(len(id)))
	v = append(append(v, id...), data...)
	if err := log.Put(binary.BigEndian.AppendUint64(nil, n), v); err != nil {
		return 0, err
	}
	if seq%chunkLen == 0 {
		if err := tx.Bucket(bucketLogIndex).Put(chunkKey(id, seq/chunkLen-1), binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return 0, err
		}
	}
	return int64(n), nil
}

// put writes the record, its meta if changed, and the entries of c above
// stored (the stored chat's seq, whose last entry is at log id last).
func (e *encodedChat) put(tx *bbolt.Tx, c *engine.Chat, stored, last int64) error {
	add, err := store.NewEntries(c.Transcript, stored, c.Seq)
	if err != nil {
		return err
	}
	for _, en := range add {
		var data []byte
		if k := en.Seq - e.from - 1; en.Seq > e.from && k < int64(len(e.entries)) {
			data = e.entries[k]
		} else if data, err = json.Marshal(&en); err != nil {
			return fmt.Errorf("encode transcript entry %d: %w", en.Seq, err)
		}
		if last, err = appendLog(tx, e.id, en.Seq, last, data); err != nil {
			return err
		}
	}
	rec := append([]byte(nil), e.rec...)
	binary.BigEndian.PutUint64(rec[17:25], uint64(last))
	// New ids mostly grow (NewID starts with the time) and records are
	// rewritten in place: fuller pages mean fewer pages per commit.
	cb := tx.Bucket(bucketChats)
	cb.FillPercent = 0.9
	if err := cb.Put(e.id, rec); err != nil {
		return err
	}
	mb := tx.Bucket(bucketChatMeta)
	mb.FillPercent = 0.9
	if bytes.Equal(mb.Get(e.id), e.meta) {
		return nil
	}
	return mb.Put(e.id, e.meta)
}

// putLegacyTranscript appends a legacy record's inline transcript to the
// log and returns the log id of its last entry.
func putLegacyTranscript(tx *bbolt.Tx, id []byte, v []byte) (int64, error) {
	r, err := decodeRecord(v, true)
	if err != nil {
		return 0, err
	}
	last := int64(0)
	for i := range r.chat.Transcript {
		en := &r.chat.Transcript[i]
		data, err := json.Marshal(en)
		if err != nil {
			return 0, fmt.Errorf("encode transcript entry %d: %w", en.Seq, err)
		}
		if last, err = appendLog(tx, id, en.Seq, last, data); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// readEntries decodes the entries with seq in (after, upto] of chat id,
// whose last entry, seq, is at log id last; at most limit (<= 0: all), the
// first ones.
func readEntries(tx *bbolt.Tx, id []byte, seq, last, after, upto int64, limit int) ([]engine.Entry, error) {
	after, upto = max(0, after), min(upto, seq)
	if limit > 0 {
		upto = min(upto, after+int64(limit))
	}
	if upto <= after {
		return nil, nil
	}
	// Start from the nearest known entry at or after upto: the end of its
	// chunk if that chunk is full, else the chat's last entry.
	at, atSeq := last, seq
	if k := (upto - 1) / chunkLen; (k+1)*chunkLen <= seq {
		v := tx.Bucket(bucketLogIndex).Get(chunkKey(id, k))
		if len(v) != 8 {
			return nil, fmt.Errorf("transcript index of chunk %d missing", k)
		}
		at, atSeq = int64(binary.BigEndian.Uint64(v)), (k+1)*chunkLen
	}
	list := make([]engine.Entry, upto-after)
	log := tx.Bucket(bucketLog)
	for atSeq > after {
		v := log.Get(binary.BigEndian.AppendUint64(nil, uint64(at)))
		if len(v) < logHeader {
			return nil, fmt.Errorf("transcript entry %d missing from the log", atSeq)
		}
		prev, s := int64(binary.BigEndian.Uint64(v[0:8])), int64(binary.BigEndian.Uint64(v[8:16]))
		n := int(binary.BigEndian.Uint16(v[16:18]))
		if s != atSeq || len(v) < logHeader+n || !bytes.Equal(v[logHeader:logHeader+n], id) {
			return nil, fmt.Errorf("transcript entry %d: log id %d holds another entry", atSeq, at)
		}
		if s <= upto {
			en := &list[s-after-1]
			if err := json.Unmarshal(v[logHeader+n:], en); err != nil {
				return nil, fmt.Errorf("decode transcript entry %d: %w", s, err)
			}
			en.Seq = s
		}
		at, atSeq = prev, atSeq-1
	}
	return list, nil
}

// CreateChat implements store.Store.
func (s *Store) CreateChat(ctx context.Context, c *engine.Chat) error {
	if c.ID == "" {
		return errors.New("create chat: empty id")
	}
	e, err := encodeChat(c, 1, 0)
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	err = s.commit(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketChats).Get(e.id) != nil {
			return store.ErrExists
		}
		return e.put(tx, c, 0, 0)
	})
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	c.Rev = 1
	s.windows.Put(c.ID, 1, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// GetChat implements store.Store.
func (s *Store) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	var c *engine.Chat
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketChats).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		r, err := decodeRecord(v, true)
		if err != nil {
			return err
		}
		c = r.chat
		if r.legacy {
			c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
			return nil
		}
		if r.seq == 0 {
			return nil
		}
		if w, ok := s.windows.Get(id, r.seq); ok {
			c.Transcript = w
			return nil
		}
		c.Transcript, err = readEntries(tx, []byte(id), r.seq, r.last, r.seq-int64(engine.MaxTranscript), r.seq, 0)
		if err != nil {
			return err
		}
		s.windows.Put(id, r.rev, r.seq, c.Transcript)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	return c, nil
}

// GetTranscript implements store.Store.
func (s *Store) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	var list []engine.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketChats).Get([]byte(chatID))
		if v == nil {
			return store.ErrNotFound
		}
		_, seq, last, ok, err := header(v)
		if err != nil {
			return err
		}
		if ok {
			list, err = readEntries(tx, []byte(chatID), seq, last, afterSeq, seq, limit)
			return err
		}
		r, err := decodeRecord(v, true)
		if err != nil {
			return err
		}
		all := r.chat.Transcript[min(max(0, afterSeq), int64(len(r.chat.Transcript))):]
		if limit > 0 && len(all) > limit {
			all = all[:limit]
		}
		list = all
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get transcript of chat %q: %w", chatID, err)
	}
	return list, nil
}

func replySlot(rev int64) []byte {
	return binary.BigEndian.AppendUint16(nil, uint16(rev%store.MaxReplies))
}

// UpdateChat implements store.Store.
func (s *Store) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	// Encode outside the commit the entries after the chat's seq at c.Rev,
	// when the window cache knows it.
	from, ok := s.windows.SeqAt(c.ID, c.Rev)
	if !ok {
		from = c.Seq
	}
	e, err := encodeChat(c, c.Rev+1, from)
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	var replyData []byte
	if reply != nil {
		if replyData, err = json.Marshal(reply); err != nil {
			return fmt.Errorf("update chat %q: %w", c.ID, err)
		}
	}
	err = s.commit(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketChats).Get(e.id)
		if v == nil {
			return store.ErrNotFound
		}
		rev, seq, last, ok, err := header(v)
		if err != nil {
			return err
		}
		if !ok {
			r, err := decodeRecord(v, false)
			if err != nil {
				return err
			}
			rev, seq = r.rev, r.seq
			if rev == c.Rev {
				if last, err = putLegacyTranscript(tx, e.id, v); err != nil {
					return err
				}
			}
		}
		if rev != c.Rev {
			return store.ErrConflict
		}
		if err := e.put(tx, c, seq, last); err != nil {
			return err
		}
		if reply == nil {
			return nil
		}
		b, err := tx.Bucket(bucketReplies).CreateBucketIfNotExists(e.id)
		if err != nil {
			return err
		}
		return b.Put(replySlot(c.Rev+1), replyData)
	})
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	c.Rev++
	s.windows.Put(c.ID, c.Rev, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// GetReply implements store.Store.
func (s *Store) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	var body []byte
	var found bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketReplies).Bucket([]byte(chatID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var r store.Reply
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.MessageID == messageID {
				body, found = r.Body, true
			}
			return nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: %w", messageID, chatID, err)
	}
	return body, found, nil
}

// ListChats implements store.Store.
func (s *Store) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	var list []*engine.Chat
	err := s.db.View(func(tx *bbolt.Tx) error {
		chats := tx.Bucket(bucketChats)
		cur := tx.Bucket(bucketChatMeta).Cursor()
		k, v := cur.First()
		if f.After != "" {
			k, v = cur.Seek([]byte(f.After))
			if k != nil && string(k) == f.After {
				k, v = cur.Next()
			}
		}
		for ; k != nil && len(list) < limit; k, v = cur.Next() {
			var m chatMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decode chat %q: %w", k, err)
			}
			if (f.StoryID != "" && m.StoryID != f.StoryID) || (f.Status != "" && m.Status != f.Status) {
				continue
			}
			r, err := decodeRecord(chats.Get(k), false)
			if err != nil {
				return fmt.Errorf("decode chat %q: %w", k, err)
			}
			list = append(list, r.chat)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	return list, nil
}
