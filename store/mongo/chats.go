package mongo

import (
	"time"

	"bytes"
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Chats. Collection turns holds one document per revision of a chat, _id
// "<chat id>/<rev, 12 digits>", written once by one atomic upsert: the
// compare-and-set of the turn. It holds what the turn added (its
// transcript entries, its reply) and the chat's state after it (chat,
// head, storyId, status). Nothing else is written on a turn.
//
// Why an upsert of a new _id and not updateOne({_id, rev: n}): FerretDB
// v1 (the test server) runs an update or findAndModify as a read, then a
// rewrite by _id in another statement, so two writers from rev n both
// succeed and one update is lost (TestFerretDBUpdateRace shows it; no
// SQLite setting helps). The unique _id makes the upsert of revision n+1
// succeed for exactly one writer, on FerretDB and MongoDB alike; the
// loser gets either E11000 or the winner's revision back, which it applies
// to its cached chat.
//
// Documents never grow: a revision's state, head fields and reply are
// removed by the compaction (every compactEvery revisions, in the
// background, one update command) once newer revisions exist; its entries
// stay, so the revisions are the full transcript and no entry is ever
// copied.
//
// Each process caches chats (chatCache): GetChatForTurn and GetReply read
// the cache, and the chat is read again only when not cached or after a
// conflict (an update whose result is unknown also marks it stale).
// GetChat checks for newer revisions first.

// compactEvery: the writer of every compactEvery'th revision compacts the
// revisions before it.
const compactEvery = 20

// compactSpan: how far back a compaction looks, so that one that failed is
// covered by the next ones.
const compactSpan = 4 * compactEvery

// maxRev is the largest revision a key can hold.
const maxRev = 999_999_999_999

type turnDoc struct {
	ID      string         `bson:"_id,omitempty"`
	ChatID  string         `bson:"chatId"`
	Rev     int64          `bson:"rev"`
	Seq     int64          `bson:"seq"`
	Entries []engine.Entry `bson:"entries,omitempty"`
	Reply   *store.Reply   `bson:"reply,omitempty"`
	// The head fields, removed once a newer revision exists.
	Head    bool          `bson:"head,omitempty"`
	StoryID string        `bson:"storyId,omitempty"`
	Status  engine.Status `bson:"status,omitempty"`
	Chat    *engine.Chat  `bson:"chat,omitempty"`
	// The outbox (outbox.go): events written with this revision, until
	// they are fanned out; the sparse index outbox_outboxAt finds them.
	Events   []store.Event `bson:"events,omitempty"`
	Outbox   bool          `bson:"outbox,omitempty"`
	OutboxAt *time.Time    `bson:"outboxAt,omitempty"`
	// Erased: EraseChat wrote this revision; a cache that holds the
	// chat from before reads it anew.
	Erased bool `bson:"erased,omitempty"`
}

// headFields are removed from a revision once a newer one exists.
var headFields = bson.D{{Key: "head", Value: ""}, {Key: "storyId", Value: ""}, {Key: "status", Value: ""}, {Key: "chat", Value: ""}}

func revKey(chatID string, rev int64) string {
	return fmt.Sprintf("%s/%012d", chatID, rev)
}

// chatRange filters a chat's revisions from rev lo to hi by _id (chatId
// too: another chat's id may share the prefix).
func chatRange(chatID string, lo, hi int64) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: revKey(chatID, lo)}, {Key: "$lte", Value: revKey(chatID, hi)}}},
		{Key: "chatId", Value: chatID}}
}

// newTurn encodes revision rev of c, with the entries and reply it adds
// (without _id).
func newTurn(c *engine.Chat, rev int64, entries []engine.Entry, reply *store.Reply, evs []store.Event, erased bool) (bson.Raw, error) {
	cc := *c
	cc.Rev, cc.Transcript = rev, nil
	d := turnDoc{ChatID: c.ID, Rev: rev, Seq: c.Seq, Entries: entries, Reply: reply,
		Head: true, StoryID: c.StoryID, Status: c.Status, Chat: &cc, Erased: erased}
	if len(evs) > 0 {
		at := evs[0].Time
		d.Events, d.Outbox, d.OutboxAt = evs, true, &at
	}
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.SetRegistry(registry)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// turnSizes are the BSON sizes of a revision's entries and state, for
// the cache's bound.
type turnSizes struct {
	entries []int
	state   int
}

// decodeTurn decodes a revision and measures it.
func decodeTurn(raw bson.Raw) (turnDoc, turnSizes, error) {
	var d turnDoc
	var z turnSizes
	// As the client decodes (DefaultDocumentMap): nested documents in
	// untyped values (an entry's data) become maps.
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
	dec.SetRegistry(registry)
	dec.DefaultDocumentMap()
	if err := dec.Decode(&d); err != nil {
		return d, z, fmt.Errorf("decode revision: %w", err)
	}
	if v, err := raw.LookupErr("entries"); err == nil {
		if arr, ok := v.ArrayOK(); ok {
			vals, _ := arr.Values()
			for _, e := range vals {
				z.entries = append(z.entries, len(e.Value))
			}
		}
	}
	if len(z.entries) != len(d.Entries) {
		z.entries = make([]int, len(d.Entries))
		for i := range z.entries {
			z.entries[i] = 256
		}
	}
	if v, err := raw.LookupErr("chat"); err == nil {
		z.state = len(v.Value)
	}
	return d, z, nil
}

// withID returns a revision with its _id first.
func withID(id string, raw bson.Raw) (bson.D, error) {
	elems, err := raw.Elements()
	if err != nil {
		return nil, err
	}
	doc := make(bson.D, 0, len(elems)+1)
	doc = append(doc, bson.E{Key: "_id", Value: id})
	for _, e := range elems {
		doc = append(doc, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return doc, nil
}

// CreateChat implements store.Store.
func (s *Store) CreateChat(ctx context.Context, c *engine.Chat) error {
	return s.createChat(ctx, c, nil)
}

func (s *Store) createChat(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	if c.ID == "" {
		return errors.New("create chat: empty id")
	}
	entries, err := store.NewEntries(c.Transcript, 0, c.Seq)
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	raw, err := newTurn(c, 1, entries, nil, evs, false)
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	doc, err := withID(revKey(c.ID, 1), raw)
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	_, err = s.turns.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	if d, m, err := decodeTurn(raw); err == nil {
		if sn, err := (&snap{}).apply(d, m); err == nil {
			s.cache.put(c.ID, sn)
		}
	}
	c.Rev = 1
	return nil
}

// snapshot returns the cached chat, read (or caught up) first if it is not
// cached or may be stale; store.ErrNotFound for an unknown chat.
func (s *Store) snapshot(ctx context.Context, id string) (*snap, error) {
	sn := s.cache.get(id)
	switch {
	case sn != nil && !sn.stale:
		return sn, nil
	case sn != nil:
		return s.catchUp(ctx, id, sn)
	}
	return s.load(ctx, id)
}

// load reads a chat: its last MaxReplies revisions in one query (the
// newest holds the state; they hold the window's entries and the reply
// ids), more entries only if they hold fewer than MaxTranscript.
func (s *Store) load(ctx context.Context, id string) (*snap, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(store.MaxReplies).
		SetBatchSize(store.MaxReplies).SetProjection(bson.D{{Key: "reply.body", Value: 0}})
	cur, err := s.turns.Find(ctx, chatRange(id, 1, maxRev), opts)
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	for cur.Next(ctx) {
		raws = append(raws, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		cur.Close(ctx)
		return nil, err
	}
	cur.Close(ctx)
	if len(raws) == 0 {
		return nil, store.ErrNotFound
	}
	docs := make([]turnDoc, len(raws))
	sizes := make([]turnSizes, len(raws))
	for i, raw := range raws {
		if docs[i], sizes[i], err = decodeTurn(raw); err != nil {
			return nil, err
		}
	}
	head := docs[0]
	if head.Chat == nil {
		return nil, fmt.Errorf("revision %s has no chat state", revKey(id, head.Rev))
	}
	sn := &snap{}
	// Oldest first, each on the state of the newest: only the last
	// revision's state counts.
	n := 0
	for i := len(docs) - 1; i >= 0; i-- {
		d := docs[i]
		d.Chat = head.Chat
		if i == len(docs)-1 {
			sn, err = (&snap{}).apply(d, sizes[i])
		} else {
			sn, err = sn.apply(d, sizes[i])
		}
		if err != nil {
			return nil, fmt.Errorf("chat %q: %w", id, err)
		}
		n += len(d.Entries)
	}
	if len(sn.chat.Transcript) < engine.MaxTranscript && sn.first > 1 {
		// Few entries in the last revisions: the window goes further back.
		lo := max(0, sn.first-1-int64(engine.MaxTranscript-len(sn.chat.Transcript)))
		older, err := s.transcript(ctx, id, lo, int(sn.first-1-lo))
		if err != nil {
			return nil, err
		}
		sn = sn.prepend(older)
	}
	s.cache.put(id, sn)
	return sn, nil
}

// catchUp applies the revisions after sn's to it (a full load when there
// are many).
func (s *Store) catchUp(ctx context.Context, id string, sn *snap) (*snap, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(compactEvery).SetBatchSize(compactEvery)
	cur, err := s.turns.Find(ctx, chatRange(id, sn.chat.Rev+1, maxRev), opts)
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	for cur.Next(ctx) {
		raws = append(raws, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		cur.Close(ctx)
		return nil, err
	}
	cur.Close(ctx)
	if len(raws) == compactEvery {
		return s.load(ctx, id) // far behind
	}
	next := sn.fresh()
	for _, raw := range raws {
		d, sizes, err := decodeTurn(raw)
		if err == nil && d.Erased {
			return s.load(ctx, id) // the cached entries were erased
		}
		if err == nil {
			next, err = next.apply(d, sizes)
		}
		if err != nil {
			return s.load(ctx, id)
		}
	}
	s.cache.put(id, next)
	return next, nil
}

// GetChat implements store.Store. It reads the revisions after the cached
// one (an index probe that usually finds none), so that a chat another
// process changed reads fresh; GetChatForTurn does not.
func (s *Store) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	sn := s.cache.get(id)
	var err error
	if sn == nil {
		sn, err = s.load(ctx, id)
	} else {
		sn, err = s.catchUp(ctx, id, sn)
	}
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	return sn.copyChat(), nil
}

// GetChatForTurn returns the chat as this process last knew it, without a
// query when it is cached: it may be behind another process's writes, which
// the compare-and-set of the turn's UpdateChat finds (ErrConflict; the
// retry then reads the new revision). For a chat served by one process a
// turn costs one command: the UpdateChat.
func (s *Store) GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	sn, err := s.snapshot(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	return sn.copyChat(), nil
}

// UpdateChat implements store.Store.
func (s *Store) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	return s.updateChat(ctx, c, reply, nil, false)
}

// updateChat stores the next revision with its events: one atomic upsert.
func (s *Store) updateChat(ctx context.Context, c *engine.Chat, reply *store.Reply, evs []store.Event, erased bool) error {
	sn, err := s.snapshot(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	if sn.chat.Rev < c.Rev {
		// The caller knows a newer revision than the cache.
		if sn, err = s.catchUp(ctx, c.ID, sn); err != nil {
			return fmt.Errorf("update chat %q: %w", c.ID, err)
		}
	}
	if c.Rev < 1 || sn.chat.Rev != c.Rev {
		return fmt.Errorf("update chat %q: %w", c.ID, store.ErrConflict)
	}
	if reply != nil {
		if _, ok := sn.reply(reply.MessageID); ok {
			// Answered by a revision up to c.Rev, which the caller's
			// GetReply did not see (it read an older cached revision, and
			// a GetChat caught the cache up since): its retry finds it.
			return fmt.Errorf("update chat %q: message %q already answered: %w", c.ID, reply.MessageID, store.ErrConflict)
		}
	}
	if reply != nil && reply.Body == nil {
		reply = &store.Reply{MessageID: reply.MessageID, Body: []byte{}}
	}
	entries, err := store.NewEntries(c.Transcript, sn.chat.Seq, c.Seq)
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	rev := c.Rev + 1
	raw, err := newTurn(c, rev, entries, reply, evs, erased)
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	// Before: null when this call inserted the revision, else the
	// revision another writer stored first.
	// The chat id in the filter routes the upsert to the chat's shard.
	res := s.turns.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: revKey(c.ID, rev)}, {Key: "chatId", Value: c.ID}},
		bson.D{{Key: "$setOnInsert", Value: raw}}, options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before))
	won, err := res.Raw()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		// Won.
	case err == nil:
		s.conflict(c.ID, sn, won)
		return fmt.Errorf("update chat %q: %w", c.ID, store.ErrConflict)
	case mongo.IsDuplicateKeyError(err):
		s.cache.markStale(c.ID, c.Rev)
		return fmt.Errorf("update chat %q: %w", c.ID, store.ErrConflict)
	default:
		s.cache.markStale(c.ID, c.Rev) // it may or may not be stored
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	if d, sizes, err := decodeTurn(raw); err != nil {
		s.cache.markStale(c.ID, c.Rev)
	} else if next, err := sn.fresh().apply(d, sizes); err != nil {
		s.cache.markStale(c.ID, c.Rev)
	} else {
		s.cache.put(c.ID, next)
	}
	c.Rev = rev
	if rev%compactEvery == 0 {
		s.compactLater(c.ID, rev)
	}
	return nil
}

// conflict applies the revision another writer stored after sn to the
// cache. The second conflict in a row marks the chat stale, so that the
// next read catches up on all newer revisions at once.
func (s *Store) conflict(id string, sn *snap, raw bson.Raw) {
	d, sizes, err := decodeTurn(raw)
	if err != nil || d.Erased {
		s.cache.markStale(id, sn.chat.Rev)
		return
	}
	next, err := sn.fresh().apply(d, sizes)
	if err != nil {
		s.cache.markStale(id, sn.chat.Rev)
		return
	}
	next.conflicts = sn.conflicts + 1
	next.stale = next.conflicts >= 2
	s.cache.put(id, next)
}

// compactLater removes, in the background, the head fields of the
// revisions before rev and the replies of those MaxReplies before it. It
// is skipped when compactions are already running: the next ones cover
// the same revisions.
func (s *Store) compactLater(id string, rev int64) {
	select {
	case s.compacting <- struct{}{}:
	default:
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer func() { <-s.compacting }()
		ctx, cancel := context.WithTimeout(s.bgCtx, compactTimeout)
		defer cancel()
		if err := s.compact(ctx, id, rev); err != nil && s.bgCtx.Err() == nil {
			s.log.Warn("mongo: compacting a chat's revisions failed (the next compaction retries)", "chat", id, "rev", rev, "err", err)
		}
	}()
}

func (s *Store) compact(ctx context.Context, id string, rev int64) error {
	models := []mongo.WriteModel{
		mongo.NewUpdateManyModel().SetFilter(append(chatRange(id, max(1, rev-compactSpan), rev-1), bson.E{Key: "head", Value: true})).
			SetUpdate(bson.D{{Key: "$unset", Value: headFields}}),
	}
	if old := rev - store.MaxReplies; old >= 1 {
		models = append(models, mongo.NewUpdateManyModel().
			SetFilter(append(chatRange(id, max(1, old-compactSpan), old), bson.E{Key: "reply", Value: bson.D{{Key: "$exists", Value: true}}})).
			SetUpdate(bson.D{{Key: "$unset", Value: bson.D{{Key: "reply", Value: ""}}}}))
	}
	_, err := s.turns.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	return err
}

// GetReply implements store.Store. The message id is looked up in the
// cached chat's recent replies; only a repeated one costs a read (of its
// revision).
func (s *Store) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	sn, err := s.snapshot(ctx, chatID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: %w", messageID, chatID, err)
	}
	r, ok := sn.reply(messageID)
	if !ok {
		return nil, false, nil
	}
	// A repeated id (rare) reads its revision even when this process
	// holds the body: another server may have erased the chat's replies
	// (DELETE /v1/contacts) since this one cached it.
	var d turnDoc
	err = s.turns.FindOne(ctx, bson.D{{Key: "_id", Value: revKey(chatID, r.rev)}, {Key: "chatId", Value: chatID}},
		options.FindOne().SetProjection(bson.D{{Key: "reply", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: %w", messageID, chatID, err)
	}
	if d.Reply == nil || d.Reply.MessageID != messageID {
		return nil, false, nil // dropped by a compaction
	}
	if d.Reply.Body == nil {
		d.Reply.Body = []byte{}
	}
	return d.Reply.Body, true, nil
}

// GetTranscript implements store.Store.
func (s *Store) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	list, err := s.transcript(ctx, chatID, max(0, afterSeq), limit)
	if err == nil && len(list) == 0 && s.cache.get(chatID) == nil {
		var d turnDoc
		err = s.turns.FindOne(ctx, bson.D{{Key: "_id", Value: revKey(chatID, 1)}, {Key: "chatId", Value: chatID}},
			options.FindOne().SetProjection(bson.D{{Key: "rev", Value: 1}})).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get transcript of chat %q: %w", chatID, err)
	}
	return list, nil
}

// transcript reads the entries after seq after from the revisions that
// hold them.
func (s *Store) transcript(ctx context.Context, chatID string, after int64, limit int) ([]engine.Entry, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).
		SetProjection(bson.D{{Key: "entries", Value: 1}, {Key: "seq", Value: 1}, {Key: "rev", Value: 1}, {Key: "chatId", Value: 1}})
	if limit > 0 {
		opts.SetBatchSize(int32(min(limit+1, 1000)))
	}
	// Index chatId_seq.
	cur, err := s.turns.Find(ctx, bson.D{{Key: "chatId", Value: chatID}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: after}}}}, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var list []engine.Entry
	next := after + 1
	for (limit <= 0 || len(list) < limit) && cur.Next(ctx) {
		var d turnDoc
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		for _, e := range d.Entries {
			if e.Seq < next {
				continue
			}
			if e.Seq != next {
				return nil, fmt.Errorf("transcript entry %d missing (revision %d starts at %d)", next, d.Rev, e.Seq)
			}
			list = append(list, e)
			next++
			if limit > 0 && len(list) == limit {
				break
			}
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// ListChats implements store.Store. It reads the head revisions matching
// the filter; a chat may have stale heads (not compacted yet), so each
// candidate is kept only if no next revision exists.
func (s *Store) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	filter := bson.D{{Key: "head", Value: true}}
	if f.StoryID != "" {
		filter = append(filter, bson.E{Key: "storyId", Value: f.StoryID})
	}
	if f.UserID != "" {
		filter = append(filter, bson.E{Key: "chat.userId", Value: f.UserID})
	}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: string(f.Status)})
	}
	if f.After != "" {
		filter = append(filter, bson.E{Key: "chatId", Value: bson.D{{Key: "$gt", Value: f.After}}})
	}
	// Index head_storyId_chatId_rev with a story, else head_chatId_rev.
	opts := options.Find().SetSort(bson.D{{Key: "chatId", Value: 1}, {Key: "rev", Value: -1}}).SetBatchSize(int32(limit + 1)).
		SetProjection(bson.D{{Key: "chat", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}, {Key: "seq", Value: 1}})
	cur, err := s.turns.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	defer cur.Close(ctx)
	var list []*engine.Chat
	last := ""
	more := true
	for more && len(list) < limit {
		var cands []turnDoc
		for len(cands) < limit-len(list) {
			if more = cur.Next(ctx); !more {
				break
			}
			var d turnDoc
			if err := cur.Decode(&d); err != nil {
				return nil, fmt.Errorf("list chats: %w", err)
			}
			if d.ChatID == last {
				continue // an older head of the same chat
			}
			last = d.ChatID
			cands = append(cands, d)
		}
		if err := cur.Err(); err != nil {
			return nil, fmt.Errorf("list chats: %w", err)
		}
		ok, err := s.latestOf(ctx, cands)
		if err != nil {
			return nil, fmt.Errorf("list chats: %w", err)
		}
		for i, d := range cands {
			if !ok[i] {
				continue
			}
			c, err := stateOf(d)
			if err != nil {
				return nil, fmt.Errorf("list chats: %w", err)
			}
			c.Transcript = nil
			list = append(list, c)
		}
	}
	return list, nil
}

// latestOf tells which revisions have no next revision.
func (s *Store) latestOf(ctx context.Context, docs []turnDoc) ([]bool, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(docs))
	for i, d := range docs {
		keys[i] = revKey(d.ChatID, d.Rev+1)
	}
	cur, err := s.turns.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var next []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &next); err != nil {
		return nil, err
	}
	newer := make(map[string]bool, len(next))
	for _, n := range next {
		newer[n.ID] = true
	}
	ok := make([]bool, len(docs))
	for i, k := range keys {
		ok[i] = !newer[k]
	}
	return ok, nil
}

// stateOf returns the chat a head revision holds, without transcript.
func stateOf(d turnDoc) (*engine.Chat, error) {
	if d.Chat == nil {
		return nil, fmt.Errorf("revision %s has no chat state", revKey(d.ChatID, d.Rev))
	}
	c := *d.Chat
	c.ID, c.Rev, c.Seq, c.Transcript = d.ChatID, d.Rev, d.Seq, nil
	var err error
	if c.Attributes, err = normalize(c.Attributes); err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	if c.UserAttributes, err = normalize(c.UserAttributes); err != nil {
		return nil, fmt.Errorf("decode user attributes: %w", err)
	}
	return &c, nil
}
