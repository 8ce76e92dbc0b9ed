package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

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
//	bytes 17-    JSON
//
// Records written before the transcript was kept apart are plain JSON with
// the transcript inline (their first byte is '{'); they are read as they
// are and their entries move to the transcripts bucket on the next update.
//
// Bucket transcripts holds every entry of every chat, as JSON, under
// entryKey(chat, seq): a chat's entries are adjacent and in order. An update
// appends the new ones in the transaction that writes the record.

const (
	recordFormat = 1
	headerLen    = 17
)

type chatMeta struct {
	StoryID string        `json:"s"`
	Status  engine.Status `json:"t"`
}

// record is a decoded chat record.
type record struct {
	rev, seq int64
	// legacy is set for an old plain JSON record; its chat then holds the
	// whole transcript, numbered from 1.
	legacy bool
	chat   *engine.Chat
}

// header reads a record's rev and seq without decoding the chat; ok is
// false for a legacy record.
func header(v []byte) (rev, seq int64, ok bool) {
	if len(v) < headerLen || v[0] != recordFormat {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), int64(binary.BigEndian.Uint64(v[9:17])), true
}

// decodeRecord decodes a chat record. withTranscript keeps a legacy
// record's transcript (new records never hold one).
func decodeRecord(v []byte, withTranscript bool) (record, error) {
	var c engine.Chat
	if rev, seq, ok := header(v); ok {
		if err := json.Unmarshal(v[headerLen:], &c); err != nil {
			return record{}, fmt.Errorf("decode chat: %w", err)
		}
		c.Rev, c.Seq, c.Transcript = rev, seq, nil
		return record{rev: rev, seq: seq, chat: &c}, nil
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

// encodedChat is a chat update prepared outside the commit: its record,
// its meta and its entries above seq from (more are encoded in the
// transaction if the stored chat turns out to be older).
type encodedChat struct {
	id      []byte
	rec     []byte
	meta    []byte
	from    int64
	entries [][]byte // entries from+1, from+2, ...
}

func encodeChat(c *engine.Chat, rev, from int64) (*encodedChat, error) {
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

// entryKey is the transcripts key of a chat's entry: the id's length, the
// id, the seq.
func entryKey(id []byte, seq int64) []byte {
	k := make([]byte, 0, 2+len(id)+8)
	k = binary.BigEndian.AppendUint16(k, uint16(len(id)))
	k = append(k, id...)
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// put writes the record, its meta if changed, and the entries of c above
// stored (the stored chat's seq).
func (e *encodedChat) put(tx *bbolt.Tx, c *engine.Chat, stored int64) error {
	add, err := store.NewEntries(c.Transcript, stored, c.Seq)
	if err != nil {
		return err
	}
	if len(e.id) > 1<<16-1 {
		return errors.New("chat id too long")
	}
	tb := tx.Bucket(bucketTranscripts)
	for _, en := range add {
		var data []byte
		if k := en.Seq - e.from - 1; en.Seq > e.from && k < int64(len(e.entries)) {
			data = e.entries[k]
		} else if data, err = json.Marshal(&en); err != nil {
			return fmt.Errorf("encode transcript entry %d: %w", en.Seq, err)
		}
		if err := tb.Put(entryKey(e.id, en.Seq), data); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketChats).Put(e.id, e.rec); err != nil {
		return err
	}
	mb := tx.Bucket(bucketChatMeta)
	if bytes.Equal(mb.Get(e.id), e.meta) {
		return nil
	}
	return mb.Put(e.id, e.meta)
}

// putLegacyTranscript moves a legacy record's inline transcript to the
// transcripts bucket.
func putLegacyTranscript(tx *bbolt.Tx, id []byte, v []byte) error {
	r, err := decodeRecord(v, true)
	if err != nil {
		return err
	}
	tb := tx.Bucket(bucketTranscripts)
	for i := range r.chat.Transcript {
		en := &r.chat.Transcript[i]
		data, err := json.Marshal(en)
		if err != nil {
			return fmt.Errorf("encode transcript entry %d: %w", en.Seq, err)
		}
		if err := tb.Put(entryKey(id, en.Seq), data); err != nil {
			return err
		}
	}
	return nil
}

// readEntries decodes a chat's entries with seq in (after, upto], at most
// limit (<= 0: all).
func readEntries(tx *bbolt.Tx, id []byte, after, upto int64, limit int) ([]engine.Entry, error) {
	after = max(0, after)
	if upto <= after {
		return nil, nil
	}
	n := upto - after
	if limit > 0 {
		n = min(n, int64(limit))
	}
	list := make([]engine.Entry, 0, n)
	prefix := entryKey(id, 0)[:2+len(id)]
	cur := tx.Bucket(bucketTranscripts).Cursor()
	for k, v := cur.Seek(entryKey(id, after+1)); k != nil && int64(len(list)) < n && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		seq := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		if seq > upto {
			break
		}
		var en engine.Entry
		if err := json.Unmarshal(v, &en); err != nil {
			return nil, fmt.Errorf("decode transcript entry %d: %w", seq, err)
		}
		en.Seq = seq
		list = append(list, en)
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
		return e.put(tx, c, 0)
	})
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	c.Rev = 1
	s.windows.put(c.ID, 1, c.Seq, c.Transcript)
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
		if w, ok := s.windows.get(id, r.seq); ok {
			c.Transcript = w
			return nil
		}
		c.Transcript, err = readEntries(tx, []byte(id), max(0, r.seq-int64(engine.MaxTranscript)), r.seq, 0)
		if err != nil {
			return err
		}
		s.windows.put(id, r.rev, r.seq, c.Transcript)
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
		_, seq, ok := header(v)
		if ok {
			var err error
			list, err = readEntries(tx, []byte(chatID), afterSeq, seq, limit)
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
	from, ok := s.windows.seqAt(c.ID, c.Rev)
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
		rev, seq, ok := header(v)
		if !ok {
			r, err := decodeRecord(v, false)
			if err != nil {
				return err
			}
			rev, seq = r.rev, r.seq
			if rev == c.Rev {
				if err := putLegacyTranscript(tx, e.id, v); err != nil {
					return err
				}
			}
		}
		if rev != c.Rev {
			return store.ErrConflict
		}
		if err := e.put(tx, c, seq); err != nil {
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
	s.windows.put(c.ID, c.Rev, c.Seq, c.Transcript)
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
