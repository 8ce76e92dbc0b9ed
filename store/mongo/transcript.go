package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Transcripts. Collection transcripts holds every entry of every chat:
// {_id: "<chat id>/<seq, 12 digits>", chatId, seq, entry}. An update puts
// the entries it adds into its revision document (field entries, atomic
// with the compare-and-set) and, once it has won, copies them to
// transcripts. Only winners copy, and a seq is added by one winner only, so
// a copy never overwrites another writer's entry. A crash between the
// insert and the copy leaves entries only in their revision; GetTranscript
// copies such missing entries when it meets the gap, and the sweep copies a
// revision's entries before it deletes the revision.
//
// Revisions written before transcripts were kept apart have no seq field
// and the whole transcript inline; they read with entries numbered from 1,
// and the first update after one copies that whole transcript.

type entryDoc struct {
	ID     string       `bson:"_id"`
	ChatID string       `bson:"chatId"`
	Seq    int64        `bson:"seq"`
	Entry  engine.Entry `bson:"entry"`
}

func entryKey(chatID string, seq int64) string {
	return fmt.Sprintf("%s/%012d", chatID, seq)
}

// numberLegacy numbers an old revision's inline transcript from 1.
func numberLegacy(c *engine.Chat) {
	for i := range c.Transcript {
		c.Transcript[i].Seq = int64(i + 1)
	}
	c.Seq = int64(len(c.Transcript))
}

// putEntries copies entries to transcripts (upserts by _id; the same entry
// may be copied more than once).
func (s *Store) putEntries(ctx context.Context, chatID string, entries []engine.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(entries))
	for i, e := range entries {
		id := entryKey(chatID, e.Seq)
		models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetReplacement(entryDoc{ID: id, ChatID: chatID, Seq: e.Seq, Entry: e}).SetUpsert(true)
	}
	_, err := s.transcripts.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil {
		return fmt.Errorf("copy transcript entries: %w", err)
	}
	return nil
}

// newEntries returns the entries an update of c adds: those above the
// stored chat's seq at c.Rev (all of an old revision's inline transcript
// first, when c.Rev is one).
func (s *Store) newEntries(ctx context.Context, c *engine.Chat) ([]engine.Entry, error) {
	if seq, ok := s.seqs.get(c.ID, c.Rev); ok {
		return store.NewEntries(c.Transcript, seq, c.Seq)
	}
	var d revDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: revKey(c.ID, c.Rev)}},
		options.FindOne().SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, s.chatMissing(ctx, c.ID)
	}
	if err != nil {
		return nil, err
	}
	if d.Seq != nil {
		return store.NewEntries(c.Transcript, *d.Seq, c.Seq)
	}
	// An old revision: its whole transcript is new to transcripts.
	err = s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: revKey(c.ID, c.Rev)}}).Decode(&d)
	if err != nil {
		return nil, err
	}
	if d.Chat == nil {
		return nil, store.ErrConflict // retired: a newer revision exists
	}
	old := d.Chat
	numberLegacy(old)
	add, err := store.NewEntries(c.Transcript, old.Seq, c.Seq)
	if err != nil {
		return nil, err
	}
	return append(old.Transcript, add...), nil
}

// GetTranscript implements store.Store.
func (s *Store) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	list, err := s.transcript(ctx, chatID, max(0, afterSeq), limit)
	if err != nil {
		return nil, fmt.Errorf("get transcript of chat %q: %w", chatID, err)
	}
	return list, nil
}

func (s *Store) transcript(ctx context.Context, chatID string, after int64, limit int) ([]engine.Entry, error) {
	d, err := s.head(ctx, chatID)
	if err != nil {
		return nil, err
	}
	if d.Seq == nil {
		c := d.Chat
		numberLegacy(c)
		all := c.Transcript[min(after, c.Seq):]
		if limit > 0 && len(all) > limit {
			all = all[:limit]
		}
		return all, nil
	}
	upto := *d.Seq
	if limit > 0 {
		upto = min(upto, after+int64(limit))
	}
	if upto <= after {
		return nil, nil
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: entryKey(chatID, after)}, {Key: "$lte", Value: entryKey(chatID, upto)}}},
		{Key: "chatId", Value: chatID}}
	cur, err := s.transcripts.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []entryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	list := make([]engine.Entry, 0, upto-after)
	for _, e := range docs {
		e.Entry.Seq = e.Seq
		list = append(list, e.Entry)
	}
	if int64(len(list)) == upto-after {
		return list, nil
	}
	return s.repair(ctx, chatID, after, upto, list)
}

// repair fills the gaps in entries (after, upto] of list from the chat's
// revisions and copies what it found to transcripts.
func (s *Store) repair(ctx context.Context, chatID string, after, upto int64, list []engine.Entry) ([]engine.Entry, error) {
	cur, err := s.chats.Find(ctx, bson.D{{Key: "chatId", Value: chatID}},
		options.Find().SetProjection(bson.D{{Key: "entries", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []revDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	have := make(map[int64]bool, len(list))
	for _, e := range list {
		have[e.Seq] = true
	}
	var found []engine.Entry
	for _, d := range docs {
		for _, e := range d.Entries {
			if e.Seq > after && e.Seq <= upto && !have[e.Seq] {
				have[e.Seq] = true
				found = append(found, e)
			}
		}
	}
	if int64(len(have)) != upto-after {
		return nil, fmt.Errorf("transcript entries %d to %d: %d missing", after+1, upto, upto-after-int64(len(have)))
	}
	if err := s.putEntries(ctx, chatID, found); err != nil {
		return nil, err
	}
	list = append(list, found...)
	slices.SortFunc(list, func(a, b engine.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return list, nil
}

// head returns a chat's latest revision (ErrNotFound).
func (s *Store) head(ctx context.Context, id string) (*revDoc, error) {
	d, err := s.latest(ctx, id)
	if err != nil {
		return nil, err
	}
	if d != nil {
		return d, nil
	}
	d = new(revDoc)
	err = s.chats.FindOne(ctx, bson.D{{Key: "chatId", Value: id}},
		options.FindOne().SetSort(bson.D{{Key: "rev", Value: -1}})).Decode(d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if d.Chat == nil {
		return nil, fmt.Errorf("revision %s has no chat state", d.ID)
	}
	return d, nil
}

// seqHints remembers each chat's seq at its last revision read or written
// here, so that an update usually knows which entries are new without a
// read. A hint for a rev is a fact (revisions do not change), so hints need
// no invalidation; one for another rev is just not used.
type seqHints struct {
	mu sync.Mutex
	m  map[string][2]int64 // rev, seq
}

const maxSeqHints = 4096

func newSeqHints() *seqHints { return &seqHints{m: map[string][2]int64{}} }

func (h *seqHints) get(id string, rev int64) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[id]
	if !ok || v[0] != rev {
		return 0, false
	}
	return v[1], true
}

func (h *seqHints) put(id string, rev, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.m[id]; ok && v[0] >= rev {
		return
	}
	if _, ok := h.m[id]; !ok && len(h.m) >= maxSeqHints {
		for k := range h.m {
			delete(h.m, k)
			break
		}
	}
	h.m[id] = [2]int64{rev, seq}
}
