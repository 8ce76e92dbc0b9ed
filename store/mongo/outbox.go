package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// The outbox and event webhooks. A chat write's events ride in its
// revision document (events, outbox: true, outboxAt): the insert that is
// the turn's compare-and-set writes them too. Events no chat write causes
// go to collection outbox, in documents of the same shape. Claims are
// documents in collection leases whose _id is unique: inserting one is the
// claim, so of two processes exactly one gets it (on FerretDB v1 too,
// whose filtered updates are not atomic). An expired lease is deleted
// (filtered by its owner and end) and inserted anew by whoever wins.
//
//	leases:        {_id: "ev/<stream>" | "dl/<delivery>", owner, until}
//	eventwebhooks: store.Subscription
//	deliveries:    store.Delivery

var _ store.Outbox = (*Store)(nil)

type outbox struct {
	extra, leases, subs, deliveries *mongo.Collection

	mu sync.Mutex
	// claimed: event id → the document holding it, for DeleteEvents.
	claimed map[string]outboxRef
}

type outboxRef struct {
	coll   *mongo.Collection
	docID  string
	stream string
	owner  string
}

type leaseDoc struct {
	ID    string    `bson:"_id"`
	Owner string    `bson:"owner"`
	Until time.Time `bson:"until"`
}

func (s *Store) openOutbox(db *mongo.Database) {
	s.out = outbox{extra: db.Collection("outbox"), leases: db.Collection("leases"), subs: db.Collection("eventwebhooks"),
		deliveries: db.Collection("deliveries"), claimed: map[string]outboxRef{}}
}

// CreateChatEvents implements store.Outbox.
func (s *Store) CreateChatEvents(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	return s.createChat(ctx, c, evs)
}

// UpdateChatEvents implements store.Outbox.
func (s *Store) UpdateChatEvents(ctx context.Context, c *engine.Chat, reply *store.Reply, evs []store.Event) error {
	return s.updateChat(ctx, c, reply, evs, false)
}

// EraseChat implements store.Outbox. On MongoDB it is not one atomic
// write: the entries in the chat's revision documents are erased, the
// chat is updated (with evs), then the entries are erased again (an
// update racing with a background compaction on FerretDB, whose updates
// are not atomic, may have restored some). An erasure cut short is
// finished by repeating it. The chat's remembered replies are dropped.
// This process's cached chat is dropped; the revision is marked erased, so
// other processes' caches read the chat anew.
func (s *Store) EraseChat(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	if err := s.eraseEntries(ctx, c.ID); err != nil {
		return fmt.Errorf("erase chat %q: %w", c.ID, err)
	}
	if err := s.updateChat(ctx, c, nil, evs, true); err != nil {
		return fmt.Errorf("erase chat %q: %w", c.ID, err)
	}
	// The replies remembered for message ids hold answers (attributes,
	// texts): forgotten, so a retry of one runs as a new message.
	if _, err := s.turns.UpdateMany(ctx, append(chatRange(c.ID, 1, maxRev), bson.E{Key: "reply", Value: bson.D{{Key: "$exists", Value: true}}}),
		bson.D{{Key: "$unset", Value: bson.D{{Key: "reply", Value: ""}}}}); err != nil {
		return fmt.Errorf("erase chat %q: replies: %w", c.ID, err)
	}
	s.cache.forget(c.ID)
	if err := s.eraseEntries(ctx, c.ID); err != nil {
		return fmt.Errorf("erase chat %q: %w", c.ID, err)
	}
	return nil
}

// eraseEntries erases the entries of a chat's revision documents.
func (s *Store) eraseEntries(ctx context.Context, chatID string) error {
	cur, err := s.turns.Find(ctx, append(chatRange(chatID, 1, maxRev), bson.E{Key: "entries.0", Value: bson.D{{Key: "$exists", Value: true}}}),
		options.Find().SetProjection(bson.D{{Key: "entries", Value: 1}, {Key: "chatId", Value: 1}, {Key: "rev", Value: 1}}))
	if err != nil {
		return err
	}
	var revs []turnDoc
	if err := cur.All(ctx, &revs); err != nil {
		return err
	}
	for _, r := range revs {
		changed := false
		for i := range r.Entries {
			before := r.Entries[i]
			store.EraseEntry(&r.Entries[i])
			changed = changed || !erased(before)
		}
		if !changed {
			continue
		}
		if _, err := s.turns.UpdateOne(ctx, bson.D{{Key: "_id", Value: r.ID}, {Key: "chatId", Value: chatID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "entries", Value: r.Entries}}}}); err != nil {
			return err
		}
	}
	return nil
}

// erased reports whether an entry says nothing but store.Erased.
func erased(e engine.Entry) bool {
	return (e.Input == nil || e.Input.Text == store.Erased) &&
		(e.Response == nil || e.Response.Message == store.Erased) &&
		(e.Call == nil || e.Call.Metadata == nil)
}

// AppendEvents implements store.Outbox: one document per event.
func (s *Store) AppendEvents(ctx context.Context, evs []store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	docs := make([]any, len(evs))
	for i, e := range evs {
		docs[i] = bson.D{{Key: "_id", Value: e.ID}, {Key: "events", Value: []store.Event{e}},
			{Key: "outbox", Value: true}, {Key: "outboxAt", Value: e.Time}}
	}
	if _, err := s.out.extra.InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// lease takes the lease id for owner until until; false when another owner
// holds it.
func (s *Store) lease(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	for range 2 {
		_, err := s.out.leases.InsertOne(ctx, leaseDoc{ID: id, Owner: owner, Until: until})
		if err == nil {
			return true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, err
		}
		var cur leaseDoc
		err = s.out.leases.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&cur)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return false, err
		}
		if cur.Owner == owner {
			return true, nil
		}
		if time.Now().Before(cur.Until) {
			return false, nil
		}
		// Expired: remove exactly that lease, then race for a new one.
		if _, err := s.out.leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: cur.Owner}, {Key: "until", Value: cur.Until}}); err != nil {
			return false, err
		}
	}
	return false, nil
}

func (s *Store) unlease(ctx context.Context, id, owner string) error {
	_, err := s.out.leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: owner}})
	return err
}

type outboxDoc struct {
	ID     string        `bson:"_id"`
	ChatID string        `bson:"chatId"`
	Events []store.Event `bson:"events"`
}

// ClaimEvents implements store.Outbox: streams are leased whole, in
// order of their oldest waiting event.
func (s *Store) ClaimEvents(ctx context.Context, owner string, until time.Time, max int) ([]store.Event, error) {
	var out []store.Event
	for _, coll := range []*mongo.Collection{s.turns, s.out.extra} {
		cur, err := coll.Find(ctx, bson.D{{Key: "outbox", Value: true}},
			options.Find().SetSort(bson.D{{Key: "outboxAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(4*max)).
				SetProjection(bson.D{{Key: "events", Value: 1}, {Key: "chatId", Value: 1}}))
		if err != nil {
			return out, fmt.Errorf("claim events: %w", err)
		}
		var docs []outboxDoc
		if err := cur.All(ctx, &docs); err != nil {
			return out, fmt.Errorf("claim events: %w", err)
		}
		// A stream's documents in order: by chat revision (the _id sorts so).
		held := map[string]bool{}
		got := map[string]bool{}
		for _, d := range docs {
			if len(out) >= max || len(d.Events) == 0 {
				continue
			}
			stream := d.Events[0].Stream
			if stream == "" {
				stream = d.ID
			}
			if held[stream] {
				continue
			}
			if !got[stream] {
				ok, err := s.lease(ctx, "ev/"+stream, owner, until)
				if err != nil {
					return out, fmt.Errorf("claim events: %w", err)
				}
				if !ok {
					held[stream] = true
					continue
				}
				got[stream] = true
			}
			s.out.mu.Lock()
			for _, e := range d.Events {
				s.out.claimed[e.ID] = outboxRef{coll: coll, docID: d.ID, stream: stream, owner: owner}
			}
			s.out.mu.Unlock()
			out = append(out, d.Events...)
		}
	}
	return out, nil
}

// DeleteEvents implements store.Outbox: the documents holding the events
// leave the outbox and their streams' leases end.
func (s *Store) DeleteEvents(ctx context.Context, ids []string) error {
	s.out.mu.Lock()
	refs := map[outboxRef]bool{}
	for _, id := range ids {
		if r, ok := s.out.claimed[id]; ok {
			refs[r] = true
			delete(s.out.claimed, id)
		}
	}
	s.out.mu.Unlock()
	streams := map[string]string{}
	for r := range refs {
		var err error
		if r.coll == s.turns {
			_, err = s.turns.UpdateOne(ctx, bson.D{{Key: "_id", Value: r.docID}},
				bson.D{{Key: "$unset", Value: bson.D{{Key: "outbox", Value: ""}, {Key: "outboxAt", Value: ""}, {Key: "events", Value: ""}}}})
		} else {
			_, err = r.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: r.docID}})
		}
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		streams[r.stream] = r.owner
	}
	for st, owner := range streams {
		if err := s.unlease(ctx, "ev/"+st, owner); err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
	}
	return nil
}

// CreateSubscription implements store.Outbox.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.ID == "" {
		sub.ID = store.NewID()
	}
	sub.CreatedAt = now()
	_, err := s.out.subs.InsertOne(ctx, sub)
	if mongo.IsDuplicateKeyError(err) {
		return store.ErrExists
	}
	return err
}

// GetSubscription implements store.Outbox.
func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	var sub store.Subscription
	err := s.out.subs.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&sub)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return sub, fmt.Errorf("subscription %q: %w", id, store.ErrNotFound)
	}
	return sub, err
}

// ListSubscriptions implements store.Outbox.
func (s *Store) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	cur, err := s.out.subs.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var out []store.Subscription
	return out, cur.All(ctx, &out)
}

// DeleteSubscription implements store.Outbox.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	res, err := s.out.subs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("subscription %q: %w", id, store.ErrNotFound)
	}
	_, err = s.out.deliveries.DeleteMany(ctx, bson.D{{Key: "subscriptionId", Value: id}})
	return err
}

// AddDeliveries implements store.Outbox.
func (s *Store) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	docs := make([]any, len(ds))
	for i := range ds {
		docs[i] = ds[i]
	}
	_, err := s.out.deliveries.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bw mongo.BulkWriteException
	if errors.As(err, &bw) {
		for _, we := range bw.WriteErrors {
			if we.Code != 11000 {
				return fmt.Errorf("add deliveries: %w", err)
			}
		}
		return nil
	}
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("add deliveries: %w", err)
	}
	return nil
}

// ClaimDeliveries implements store.Outbox.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now, until time.Time, max int) ([]store.Delivery, error) {
	cur, err := s.out.deliveries.Find(ctx, bson.D{{Key: "status", Value: store.DeliveryPending}, {Key: "nextAt", Value: bson.D{{Key: "$lte", Value: now}}}},
		options.Find().SetSort(bson.D{{Key: "order", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(2*max)))
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var ds []store.Delivery
	if err := cur.All(ctx, &ds); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	out := ds[:0]
	// A lane is a stream's deliveries to one subscription: once one of them
	// is held elsewhere, its later ones wait, so that they keep their order.
	blocked := map[string]bool{}
	for _, d := range ds {
		if len(out) >= max {
			break
		}
		lane := d.SubscriptionID + "\x00" + d.Event.Stream
		if d.Event.Stream != "" && blocked[lane] {
			continue
		}
		ok, err := s.lease(ctx, "dl/"+d.ID, owner, until)
		if err != nil {
			return out, fmt.Errorf("claim deliveries: %w", err)
		}
		if !ok {
			blocked[lane] = true
			continue
		}
		// Read again under the lease: another worker may have finished it.
		var fresh store.Delivery
		if err := s.out.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&fresh); err != nil || fresh.Status != store.DeliveryPending || len(fresh.Attempts) != len(d.Attempts) {
			s.unlease(ctx, "dl/"+d.ID, owner)
			continue
		}
		out = append(out, fresh)
	}
	return out, nil
}

// SaveDelivery implements store.Outbox.
func (s *Store) SaveDelivery(ctx context.Context, owner string, d *store.Delivery) error {
	if owner != "" {
		var l leaseDoc
		err := s.out.leases.FindOne(ctx, bson.D{{Key: "_id", Value: "dl/" + d.ID}}).Decode(&l)
		if err != nil || l.Owner != owner {
			return fmt.Errorf("save delivery %q: lease lost: %w", d.ID, store.ErrConflict)
		}
	}
	d.UpdatedAt = now()
	// The event stays as stored (erased meanwhile, maybe: EraseDeliveries).
	res, err := s.out.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: d.Status}, {Key: "attempts", Value: d.Attempts},
			{Key: "nextAt", Value: d.NextAt}, {Key: "updatedAt", Value: d.UpdatedAt}}}})
	if err != nil {
		return fmt.Errorf("save delivery %q: %w", d.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("delivery %q: %w", d.ID, store.ErrNotFound)
	}
	if owner != "" {
		return s.unlease(ctx, "dl/"+d.ID, owner)
	}
	return nil
}

// GetDelivery implements store.Outbox.
func (s *Store) GetDelivery(ctx context.Context, id string) (store.Delivery, error) {
	var d store.Delivery
	err := s.out.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, fmt.Errorf("delivery %q: %w", id, store.ErrNotFound)
	}
	return d, err
}

// ListDeliveries implements store.Outbox.
func (s *Store) ListDeliveries(ctx context.Context, subID string, limit int) ([]store.Delivery, error) {
	cur, err := s.out.deliveries.Find(ctx, bson.D{{Key: "subscriptionId", Value: subID}},
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var out []store.Delivery
	return out, cur.All(ctx, &out)
}

// EraseDeliveries implements store.Outbox.
func (s *Store) EraseDeliveries(ctx context.Context, streams []string, erase func(*store.Event)) (int, error) {
	if len(streams) == 0 {
		return 0, nil
	}
	// Index event.stream.
	cur, err := s.out.deliveries.Find(ctx, bson.D{{Key: "event.stream", Value: bson.D{{Key: "$in", Value: streams}}}},
		options.Find().SetProjection(bson.D{{Key: "event", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("erase deliveries: %w", err)
	}
	defer cur.Close(ctx)
	// One delivery at a time off the cursor: a user's deliveries are not
	// all held at once.
	n := 0
	for cur.Next(ctx) {
		var d store.Delivery
		if err := cur.Decode(&d); err != nil {
			return n, fmt.Errorf("erase deliveries: %w", err)
		}
		erase(&d.Event)
		if _, err := s.out.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "event", Value: d.Event}}}}); err != nil {
			return n, fmt.Errorf("erase delivery %q: %w", d.ID, err)
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("erase deliveries: %w", err)
	}
	return n, nil
}

// PruneDeliveries implements store.Outbox.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	// Index status_updatedAt.
	cur, err := s.out.deliveries.Find(ctx, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryFailed}}}},
		{Key: "updatedAt", Value: bson.D{{Key: "$lt", Value: before}}}},
		options.Find().SetSort(bson.D{{Key: "updatedAt", Value: 1}}).SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	var ids []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &ids); err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	list := make([]string, len(ids))
	for i := range ids {
		list[i] = ids[i].ID
	}
	res, err := s.out.deliveries.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: list}}},
		{Key: "status", Value: bson.D{{Key: "$ne", Value: store.DeliveryPending}}}})
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return int(res.DeletedCount), nil
}
