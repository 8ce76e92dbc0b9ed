// Package mongo is the MongoDB store (official driver v2), for several
// storyflow processes sharing one database.
//
// Every write is a single-document atomic operation; there are no
// multi-document transactions. Optimistic concurrency on chats is the
// insert of the next revision document under a unique _id (see the Chats
// section), so of two writers from one revision exactly one wins, also on
// FerretDB v1, whose version-filtered updateOne is not atomic. A turn's
// remembered reply is stored in that same revision document.
package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

var _ store.Store = (*Store)(nil)

// DefaultDatabase is used when the URI names no database.
const DefaultDatabase = "storyflow"

// Collection names.
const (
	collStories     = "stories"
	collChats       = "chats"
	collChatHeads   = "chatheads"
	collConnections = "connections"
	collTranscripts = "transcripts"
)

// Store is the MongoDB store.
type Store struct {
	client      *mongo.Client
	stories     *mongo.Collection
	chats       *mongo.Collection
	chatheads   *mongo.Collection
	connections *mongo.Collection
	transcripts *mongo.Collection
	seqs        *seqHints
}

// DatabaseName returns the database a URI names, or DefaultDatabase.
func DatabaseName(uri string) (string, error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return "", fmt.Errorf("parse mongodb uri: %w", err)
	}
	if cs.Database == "" {
		return DefaultDatabase, nil
	}
	return cs.Database, nil
}

// Open connects to uri, checks the server answers and creates the indexes.
func Open(ctx context.Context, uri string) (*Store, error) {
	name, err := DatabaseName(uri)
	if err != nil {
		return nil, err
	}
	opts := options.Client().ApplyURI(uri).SetBSONOptions(&options.BSONOptions{DefaultDocumentMap: true})
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("ping mongodb: %w", err)
	}
	db := client.Database(name)
	s := &Store{client: client, stories: db.Collection(collStories), chats: db.Collection(collChats), chatheads: db.Collection(collChatHeads),
		connections: db.Collection(collConnections), transcripts: db.Collection(collTranscripts), seqs: newSeqHints()}
	if err := s.createIndexes(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (s *Store) createIndexes(ctx context.Context) error {
	indexes := []struct {
		coll  *mongo.Collection
		model mongo.IndexModel
	}{
		{s.stories, mongo.IndexModel{
			Keys:    bson.D{{Key: "storyId", Value: 1}, {Key: "version", Value: 1}},
			Options: options.Index().SetUnique(true).SetName("storyId_version"),
		}},
		{s.chats, mongo.IndexModel{
			Keys:    bson.D{{Key: "chatId", Value: 1}, {Key: "rev", Value: -1}},
			Options: options.Index().SetName("chatId_rev"),
		}},
		{s.chats, mongo.IndexModel{
			Keys:    bson.D{{Key: "chatId", Value: 1}, {Key: "reply.id", Value: 1}},
			Options: options.Index().SetName("chatId_reply"),
		}},
		{s.chats, mongo.IndexModel{
			Keys:    bson.D{{Key: "head", Value: 1}, {Key: "storyId", Value: 1}, {Key: "status", Value: 1}, {Key: "chatId", Value: 1}},
			Options: options.Index().SetName("storyId_status"),
		}},
		{s.chats, mongo.IndexModel{
			Keys:    bson.D{{Key: "updatedAt", Value: 1}},
			Options: options.Index().SetName("updatedAt"),
		}},
		{s.connections, mongo.IndexModel{
			Keys:    bson.D{{Key: "storyId", Value: 1}},
			Options: options.Index().SetName("storyId"),
		}},
	}
	// One at a time: FerretDB v1.24 panics on a createIndexes naming two or
	// more indexes that already exist.
	for _, ix := range indexes {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("create indexes on %s: %w", ix.coll.Name(), err)
		}
	}
	return nil
}

// Close disconnects.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from mongodb: %w", err)
	}
	return nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Stories: one document per version.

type storyDoc struct {
	OID               bson.ObjectID `bson:"_id,omitempty"`
	store.StoryRecord `bson:",inline"`
}

func (s *Store) latestStory(ctx context.Context, id string) (storyDoc, bool, error) {
	var d storyDoc
	opts := options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}})
	err := s.stories.FindOne(ctx, bson.D{{Key: "storyId", Value: id}}, opts).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	return d, true, nil
}

// PutStory implements store.Store.
func (s *Store) PutStory(ctx context.Context, id string, source []byte) (int, bool, error) {
	if id == "" {
		return 0, false, errors.New("put story: empty id")
	}
	if source == nil {
		source = []byte{}
	}
	for range 10 {
		last, ok, err := s.latestStory(ctx, id)
		if err != nil {
			return 0, false, fmt.Errorf("put story %q: %w", id, err)
		}
		if ok && !last.Deleted && string(last.Source) == string(source) {
			return last.Version, false, nil
		}
		t := now()
		r := store.StoryRecord{ID: id, Version: last.Version + 1, Source: source, CreatedAt: last.CreatedAt, UpdatedAt: t}
		created := !ok || last.Deleted
		if created {
			r.CreatedAt = t
		}
		_, err = s.stories.InsertOne(ctx, storyDoc{StoryRecord: r})
		if mongo.IsDuplicateKeyError(err) {
			continue // another writer took this version: read again
		}
		if err != nil {
			return 0, false, fmt.Errorf("put story %q: %w", id, err)
		}
		return r.Version, created, nil
	}
	return 0, false, fmt.Errorf("put story %q: %w", id, store.ErrConflict)
}

// GetStory implements store.Store.
func (s *Store) GetStory(ctx context.Context, id string, version int) (store.StoryRecord, error) {
	if version == 0 {
		last, ok, err := s.latestStory(ctx, id)
		switch {
		case err != nil:
			return store.StoryRecord{}, fmt.Errorf("get story %q: %w", id, err)
		case !ok || last.Deleted:
			return store.StoryRecord{}, fmt.Errorf("get story %q: %w", id, store.ErrNotFound)
		}
		return last.StoryRecord, nil
	}
	var d storyDoc
	err := s.stories.FindOne(ctx, bson.D{{Key: "storyId", Value: id}, {Key: "version", Value: version}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.StoryRecord{}, fmt.Errorf("get story %q version %d: %w", id, version, err)
	}
	return d.StoryRecord, nil
}

// ListStories implements store.Store. It finds each story's latest version
// without reading sources, then reads those.
func (s *Store) ListStories(ctx context.Context) ([]store.StoryRecord, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "storyId", Value: 1}, {Key: "version", Value: -1}}).
		SetProjection(bson.D{{Key: "storyId", Value: 1}, {Key: "version", Value: 1}, {Key: "deleted", Value: 1}})
	cur, err := s.stories.Find(ctx, bson.D{}, opts)
	if err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	var heads []storyDoc
	if err := cur.All(ctx, &heads); err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	var latest []bson.ObjectID
	for i, h := range heads {
		if (i == 0 || heads[i-1].ID != h.ID) && !h.Deleted {
			latest = append(latest, h.OID)
		}
	}
	if len(latest) == 0 {
		return nil, nil
	}
	cur, err = s.stories.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: latest}}}},
		options.Find().SetSort(bson.D{{Key: "storyId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	var docs []storyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	list := make([]store.StoryRecord, 0, len(docs))
	for _, d := range docs {
		list = append(list, d.StoryRecord)
	}
	return list, nil
}

// DeleteStory implements store.Store: it marks the latest version deleted.
func (s *Store) DeleteStory(ctx context.Context, id string) error {
	last, ok, err := s.latestStory(ctx, id)
	if err != nil {
		return fmt.Errorf("delete story %q: %w", id, err)
	}
	if !ok || last.Deleted {
		return fmt.Errorf("delete story %q: %w", id, store.ErrNotFound)
	}
	res, err := s.stories.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: last.OID}, {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}}}})
	if err != nil {
		return fmt.Errorf("delete story %q: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("delete story %q: %w", id, store.ErrNotFound) // deleted meanwhile
	}
	return nil
}

// Chats. Collection chats holds one document per revision of a chat: _id
// "<chat id>/<rev, 12 digits>". Inserting revision rev+1 is the
// compare-and-set: the unique _id lets exactly one writer from rev win, on
// MongoDB and on FerretDB v1 (whose updateOne is not atomic: it reads,
// modifies and rewrites the whole document, so two version-filtered updates
// can both succeed, and a late rewrite can put old content back). Apart
// from that insert, documents only ever lose fields, so a late rewrite
// cannot undo anything.
//
// The latest revision holds the chat (head: true, chat, storyId, status,
// updatedAt); once a newer one exists those fields are removed, keeping
// {chatId, rev, at, reply} for GetReply. Revision 1 is kept (it makes a
// duplicate create fail); other revisions older than MaxReplies are deleted
// every sweepEvery revisions, so revisions from the oldest kept one to the
// latest have no gaps.
//
// Collection chatheads holds a hint per chat, {_id: chat id, rev}, that may
// lag behind: GetChat reads the hinted revision and walks forward by _id
// while the next one exists, so it needs no query but _id lookups (the
// only filter FerretDB v1's SQLite backend answers without a full scan).
// When the hint is unusable it falls back to a sorted query.

// sweepEvery is how often (in revisions) old revisions are deleted.
const sweepEvery = 20

type revDoc struct {
	ID     string       `bson:"_id"`
	ChatID string       `bson:"chatId"`
	Rev    int64        `bson:"rev"`
	At     time.Time    `bson:"at"`
	Reply  *store.Reply `bson:"reply,omitempty"`
	// Seq is the chat's Seq at this revision (nil in revisions written
	// before transcripts were kept apart), Entries the transcript entries
	// it added; both stay when the revision is retired.
	Seq     *int64         `bson:"seq,omitempty"`
	Entries []engine.Entry `bson:"entries,omitempty"`
	// Set on the latest revision only.
	Head      bool          `bson:"head,omitempty"`
	StoryID   string        `bson:"storyId,omitempty"`
	Status    engine.Status `bson:"status,omitempty"`
	UpdatedAt time.Time     `bson:"updatedAt,omitzero"`
	Chat      *engine.Chat  `bson:"chat,omitempty"`
}

// headFields are removed from a revision once a newer one exists.
var headFields = bson.D{{Key: "head", Value: ""}, {Key: "storyId", Value: ""}, {Key: "status", Value: ""},
	{Key: "updatedAt", Value: ""}, {Key: "chat", Value: ""}}

func revKey(chatID string, rev int64) string {
	return fmt.Sprintf("%s/%012d", chatID, rev)
}

func newRevDoc(c *engine.Chat, rev int64, reply *store.Reply, entries []engine.Entry) revDoc {
	cc := *c
	cc.Rev = rev
	seq := c.Seq
	return revDoc{
		ID: revKey(c.ID, rev), ChatID: c.ID, Rev: rev, At: now(), Reply: reply, Seq: &seq, Entries: entries,
		Head: true, StoryID: c.StoryID, Status: c.Status, UpdatedAt: c.UpdatedAt, Chat: &cc,
	}
}

// normalize gives attribute values the types JSON decoding gives (as the
// embedded store does): map[string]any, []any, float64.
func normalize(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	err = json.Unmarshal(data, &out)
	return out, err
}

func (d *revDoc) chat() (*engine.Chat, error) {
	if d.Chat == nil {
		return nil, fmt.Errorf("revision %s has no chat state", d.ID)
	}
	c := d.Chat
	c.ID, c.Rev = d.ChatID, d.Rev
	if d.Seq == nil {
		numberLegacy(c)
	}
	c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
	if len(c.Transcript) == 0 {
		c.Transcript = nil
	}
	var err error
	if c.Attributes, err = normalize(c.Attributes); err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	if c.UserAttributes, err = normalize(c.UserAttributes); err != nil {
		return nil, fmt.Errorf("decode user attributes: %w", err)
	}
	return c, nil
}

// CreateChat implements store.Store.
func (s *Store) CreateChat(ctx context.Context, c *engine.Chat) error {
	if c.ID == "" {
		return errors.New("create chat: empty id")
	}
	entries, err := store.NewEntries(c.Transcript, 0, c.Seq)
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	_, err = s.chats.InsertOne(ctx, newRevDoc(c, 1, nil, entries))
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	s.putEntries(ctx, c.ID, entries)
	s.hint(ctx, c.ID, 1)
	s.seqs.put(c.ID, 1, c.Seq)
	c.Rev = 1
	return nil
}

// hint records that revision rev of a chat exists. It is best effort: a
// missing or lagging hint costs GetChat a few lookups more.
func (s *Store) hint(ctx context.Context, chatID string, rev int64) {
	s.chatheads.UpdateOne(ctx, bson.D{{Key: "_id", Value: chatID}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "rev", Value: rev}}}}, options.UpdateOne().SetUpsert(true))
}

func (s *Store) revision(ctx context.Context, chatID string, rev int64) (*revDoc, error) {
	var d revDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: revKey(chatID, rev)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// latest finds a chat's latest revision from its hint; nil if the hint is
// missing or unusable.
func (s *Store) latest(ctx context.Context, id string) (*revDoc, error) {
	var h struct {
		Rev int64 `bson:"rev"`
	}
	err := s.chatheads.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cur, err := s.revision(ctx, id, h.Rev)
	if err != nil || cur == nil {
		return nil, err // hinted revision swept: too far behind
	}
	for {
		next, err := s.revision(ctx, id, cur.Rev+1)
		if err != nil {
			return nil, err
		}
		if next == nil {
			break
		}
		cur = next
	}
	if !cur.Head {
		// Retired but with no successor: the walk started below a swept
		// range (from revision 1).
		return nil, nil
	}
	if cur.Rev > h.Rev {
		s.hint(ctx, id, cur.Rev)
	}
	return cur, nil
}

// GetChat implements store.Store.
func (s *Store) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	d, err := s.latest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	if d == nil {
		d = new(revDoc)
		err = s.chats.FindOne(ctx, bson.D{{Key: "chatId", Value: id}},
			options.FindOne().SetSort(bson.D{{Key: "rev", Value: -1}})).Decode(d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("get chat %q: %w", id, err)
		}
		s.hint(ctx, id, d.Rev)
	}
	c, err := d.chat()
	if err != nil {
		return nil, fmt.Errorf("get chat %q: %w", id, err)
	}
	if d.Seq != nil {
		s.seqs.put(id, d.Rev, *d.Seq)
	}
	return c, nil
}

// chatMissing tells why an update from c.Rev cannot apply.
func (s *Store) chatMissing(ctx context.Context, id string) error {
	n, err := s.chats.CountDocuments(ctx, bson.D{{Key: "chatId", Value: id}})
	switch {
	case err != nil:
		return err
	case n == 0:
		return store.ErrNotFound
	}
	return store.ErrConflict
}

// UpdateChat implements store.Store.
func (s *Store) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	if c.Rev < 1 {
		return fmt.Errorf("update chat %q: %w", c.ID, s.chatMissing(ctx, c.ID))
	}
	if reply != nil && reply.Body == nil {
		reply = &store.Reply{MessageID: reply.MessageID, Body: []byte{}}
	}
	entries, err := s.newEntries(ctx, c)
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	rev := c.Rev + 1
	_, err = s.chats.InsertOne(ctx, newRevDoc(c, rev, reply, entries))
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("update chat %q: %w", c.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	// Committed. Retire the previous head; that it exists also proves c.Rev
	// was a stored revision.
	res, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: revKey(c.ID, c.Rev)}},
		bson.D{{Key: "$unset", Value: headFields}})
	if err == nil && res.MatchedCount == 0 {
		// c.Rev was never stored: take the revision back.
		if _, err := s.chats.DeleteOne(ctx, bson.D{{Key: "_id", Value: revKey(c.ID, rev)}}); err != nil {
			return fmt.Errorf("update chat %q: undo: %w", c.ID, err)
		}
		return fmt.Errorf("update chat %q: %w", c.ID, s.chatMissing(ctx, c.ID))
	}
	// A failed retire only leaves a stale head behind, which readers
	// skip (they take the highest revision) and the sweep retires.
	s.putEntries(ctx, c.ID, entries)
	s.hint(ctx, c.ID, rev)
	s.seqs.put(c.ID, rev, c.Seq)
	if rev%sweepEvery == 0 {
		s.sweep(ctx, c.ID, rev)
	}
	c.Rev = rev
	return nil
}

// sweep deletes revisions older than MaxReplies (but revision 1) and
// retires stale heads. It is best effort: a later sweep redoes it.
func (s *Store) sweep(ctx context.Context, chatID string, rev int64) {
	old := bson.D{{Key: "chatId", Value: chatID},
		{Key: "rev", Value: bson.D{{Key: "$gt", Value: 1}, {Key: "$lte", Value: rev - store.MaxReplies}}}}
	// Their entries are copied first (again, normally), so that an entry
	// whose copy a crash prevented is not lost with its revision.
	cur, err := s.chats.Find(ctx, old, options.Find().SetProjection(bson.D{{Key: "entries", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}}))
	if err != nil {
		return
	}
	var docs []revDoc
	if err := cur.All(ctx, &docs); err != nil {
		return
	}
	var entries []engine.Entry
	for _, d := range docs {
		entries = append(entries, d.Entries...)
	}
	if len(entries) > 0 && s.putEntries(ctx, chatID, entries) != nil {
		return
	}
	s.chats.DeleteMany(ctx, old)
	s.chats.UpdateMany(ctx, bson.D{{Key: "chatId", Value: chatID}, {Key: "head", Value: true},
		{Key: "rev", Value: bson.D{{Key: "$lt", Value: rev}}}},
		bson.D{{Key: "$unset", Value: headFields}})
}

// GetReply implements store.Store.
func (s *Store) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	var d revDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "chatId", Value: chatID}, {Key: "reply.id", Value: messageID}},
		options.FindOne().SetProjection(bson.D{{Key: "reply", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: %w", messageID, chatID, err)
	}
	if d.Reply == nil {
		return nil, false, fmt.Errorf("get reply %q of chat %q: revision %d has no reply", messageID, chatID, d.Rev)
	}
	return d.Reply.Body, true, nil
}

// ListChats implements store.Store.
func (s *Store) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	filter := bson.D{{Key: "head", Value: true}}
	if f.StoryID != "" {
		filter = append(filter, bson.E{Key: "storyId", Value: f.StoryID})
	}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: string(f.Status)})
	}
	if f.After != "" {
		filter = append(filter, bson.E{Key: "chatId", Value: bson.D{{Key: "$gt", Value: f.After}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "chatId", Value: 1}, {Key: "rev", Value: -1}}).SetBatchSize(int32(limit + 1)).
		SetProjection(bson.D{{Key: "chat.transcript", Value: 0}, {Key: "entries", Value: 0}, {Key: "reply", Value: 0}})
	cur, err := s.chats.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	defer cur.Close(ctx)
	var list []*engine.Chat
	for len(list) < limit && cur.Next(ctx) {
		var d revDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("list chats: %w", err)
		}
		if len(list) > 0 && list[len(list)-1].ID == d.ChatID {
			continue // a stale head left by a crash: the newest comes first
		}
		c, err := d.chat()
		if err != nil {
			return nil, fmt.Errorf("list chats: %w", err)
		}
		if d.Seq != nil {
			c.Seq = *d.Seq
		}
		c.Transcript = nil
		list = append(list, c)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	return list, nil
}

// Connections.

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c *store.Connection) error {
	cc := *c
	if cc.ID == "" {
		cc.ID = store.NewID()
	}
	t := now()
	cc.CreatedAt, cc.UpdatedAt = t, t
	_, err := s.connections.InsertOne(ctx, cc)
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	*c = cc
	return nil
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	var c store.Connection
	err := s.connections.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("get connection %q: %w", id, err)
	}
	return c, nil
}

// ListConnections implements store.Store.
func (s *Store) ListConnections(ctx context.Context, storyID string) ([]store.Connection, error) {
	filter := bson.D{}
	if storyID != "" {
		filter = bson.D{{Key: "storyId", Value: storyID}}
	}
	cur, err := s.connections.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	var list []store.Connection
	if err := cur.All(ctx, &list); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return list, nil
}

// UpdateConnection implements store.Store.
func (s *Store) UpdateConnection(ctx context.Context, c *store.Connection) error {
	set := bson.D{
		{Key: "storyId", Value: c.StoryID}, {Key: "name", Value: c.Name}, {Key: "url", Value: c.URL},
		{Key: "token", Value: c.Token}, {Key: "headers", Value: c.Headers}, {Key: "auth", Value: c.Auth},
		{Key: "maxInFlight", Value: c.MaxInFlight}, {Key: "updatedAt", Value: now()},
	}
	var updated store.Connection
	err := s.connections.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&updated)
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update connection %q: %w", c.ID, err)
	}
	*c = updated
	return nil
}

// DeleteConnection implements store.Store.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	res, err := s.connections.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete connection %q: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete connection %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// SetConnectionError implements store.Store.
func (s *Store) SetConnectionError(ctx context.Context, id, msg string) error {
	res, err := s.connections.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "error", Value: msg}}}})
	if err != nil {
		return fmt.Errorf("set error of connection %q: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set error of connection %q: %w", id, store.ErrNotFound)
	}
	return nil
}
