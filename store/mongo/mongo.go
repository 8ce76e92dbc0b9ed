// Package mongo is the MongoDB store (official driver v2), for several
// storyflow processes sharing one database.
//
// Every write is a single-document atomic operation; there are no
// multi-document transactions. A chat turn is one upsert of a new
// revision document under a unique _id, the compare-and-set (see
// chats.go), so of two writers from one revision exactly one wins, also on
// FerretDB v1, whose revision-filtered updateOne is not atomic.
package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/storyflow/storyflow/store"
)

var _ store.Store = (*Store)(nil)

// DefaultDatabase is used when the URI names no database.
const DefaultDatabase = "storyflow"

// DefaultCacheBytes bounds the chats a process caches.
const DefaultCacheBytes = 64 << 20

// compactTimeout bounds one background compaction.
const compactTimeout = 30 * time.Second

// Collection names.
const (
	collStories     = "stories"
	collTurns       = "turns"
	collConnections = "connections"
)

// Store is the MongoDB store.
type Store struct {
	client      *mongo.Client
	stories     *mongo.Collection
	turns       *mongo.Collection
	connections *mongo.Collection
	cache       *chatCache
	log         *slog.Logger
	out         outbox

	bg         sync.WaitGroup
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	compacting chan struct{}
}

// Options tune OpenWith.
type Options struct {
	// CacheBytes bounds the chat cache (0: DefaultCacheBytes; < 0: none).
	CacheBytes int64
	// Monitor, if set, sees every command (the tests count them).
	Monitor *event.CommandMonitor
	// Logger for background errors (nil: slog.Default()).
	Logger *slog.Logger
	// ServerSelection bounds how long an operation waits for a reachable
	// server (0: the driver's 30s, or the URI's serverSelectionTimeoutMS).
	ServerSelection time.Duration
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
	return OpenWith(ctx, uri, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, uri string, o Options) (*Store, error) {
	name, err := DatabaseName(uri)
	if err != nil {
		return nil, err
	}
	opts := options.Client().ApplyURI(uri).SetBSONOptions(&options.BSONOptions{DefaultDocumentMap: true}).SetRegistry(registry)
	if o.Monitor != nil {
		opts.SetMonitor(o.Monitor)
	}
	if o.ServerSelection > 0 {
		opts.SetServerSelectionTimeout(o.ServerSelection)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("ping mongodb: %w", err)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	db := client.Database(name)
	s := &Store{client: client, stories: db.Collection(collStories), turns: db.Collection(collTurns),
		connections: db.Collection(collConnections), cache: newChatCache(o.CacheBytes), log: o.Logger,
		compacting: make(chan struct{}, 4)}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.openOutbox(db)
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
		// Unique: PutStory's compare-and-set. Queries: find({storyId}).sort({version: -1})
		// (latest), find({storyId, version}), find({}).sort({storyId: 1, version: -1}) (ListStories).
		{s.stories, mongo.IndexModel{
			Keys:    bson.D{{Key: "storyId", Value: 1}, {Key: "version", Value: 1}},
			Options: options.Index().SetUnique(true).SetName("storyId_version"),
		}},
		// GetTranscript: find({chatId, seq: {$gt: after}}).sort({seq: 1}).
		{s.turns, mongo.IndexModel{
			Keys:    bson.D{{Key: "chatId", Value: 1}, {Key: "seq", Value: 1}},
			Options: options.Index().SetName("chatId_seq"),
		}},
		// ListChats without a story: find({head: true[, status][, chatId: {$gt}]}).sort({chatId: 1, rev: -1}).
		{s.turns, mongo.IndexModel{
			Keys:    bson.D{{Key: "head", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: -1}},
			Options: options.Index().SetName("head_chatId_rev"),
		}},
		// ListChats by story: find({head: true, storyId[, status][, chatId: {$gt}]}).sort({chatId: 1, rev: -1}).
		{s.turns, mongo.IndexModel{
			Keys:    bson.D{{Key: "head", Value: 1}, {Key: "storyId", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: -1}},
			Options: options.Index().SetName("head_storyId_chatId_rev"),
		}},
		// ListChats by user (contacts): find({head: true, "chat.userId"[, ...]}).sort({chatId: 1, rev: -1}).
		{s.turns, mongo.IndexModel{
			Keys:    bson.D{{Key: "head", Value: 1}, {Key: "chat.userId", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: -1}},
			Options: options.Index().SetName("head_userId_chatId_rev"),
		}},
		// ClaimEvents: find({outbox: true}).sort({outboxAt: 1, _id: 1}); sparse:
		// only the revisions with undelivered events have the field.
		{s.turns, mongo.IndexModel{
			Keys:    bson.D{{Key: "outbox", Value: 1}, {Key: "outboxAt", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("outbox_outboxAt").SetSparse(true),
		}},
		// ClaimEvents on events no turn wrote (outbox.go's AppendEvents): the same query.
		{s.out.extra, mongo.IndexModel{
			Keys:    bson.D{{Key: "outbox", Value: 1}, {Key: "outboxAt", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("outbox_outboxAt"),
		}},
		// ClaimDeliveries: find({status: "pending", nextAt: {$lte}}).sort({order: 1, _id: 1}).
		{s.out.deliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "order", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("status_order"),
		}},
		// ListDeliveries: find({subscriptionId}).sort({createdAt: -1, _id: -1}); DeleteSubscription.
		{s.out.deliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "subscriptionId", Value: 1}, {Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}},
			Options: options.Index().SetName("subscriptionId_createdAt"),
		}},
		// PruneDeliveries: find({status: {$in: [succeeded, failed]}, updatedAt: {$lt}}).sort({updatedAt: 1}).
		{s.out.deliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "updatedAt", Value: 1}},
			Options: options.Index().SetName("status_updatedAt"),
		}},
		// EraseDeliveries: find({"event.stream": {$in}}).
		{s.out.deliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "event.stream", Value: 1}},
			Options: options.Index().SetName("event_stream"),
		}},
		// ListConnections: find({storyId}).sort({_id: 1}).
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

// Close waits for background compactions and disconnects.
func (s *Store) Close() error {
	s.bg.Wait()
	s.bgCancel()
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
