package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// The outbox and event webhooks. Keys:
//
//	e\0<order 12 BE>              outbox event (JSON store.Event)
//	v\0<subscription>             subscription (JSON)
//	d\0<delivery>                 delivery (JSON)
//	q\0<nextAt 8 BE>\0<delivery>  a pending delivery, by next try
//	x\0<subscription>\0<delivery> a subscription's deliveries
//
// One process owns the data directory, so leases live in memory: after a
// restart nothing is leased, which is right, since the old owner is gone.

var _ store.Outbox = (*Store)(nil)

// outbox is the in-memory side of the outbox: event order and leases.
type outbox struct {
	mu      sync.Mutex
	last    uint64           // last order number handed out
	leases  map[string]lease // by event or delivery id
	keys    map[string][]byte
	delivMu sync.Mutex // serialises delivery writes
	// low is an order number below which every event is deleted, and
	// pending holds the first order number of each write not yet
	// committed: a claim starts there rather than at the first event, so
	// it does not walk over the tombstones of events delivered before.
	low     uint64
	pending map[uint64]bool
}

type lease struct {
	owner string
	until time.Time
}

func (o *outbox) init() {
	if o.leases == nil {
		o.leases = map[string]lease{}
		o.keys = map[string][]byte{}
	}
}

// held tells whether id is leased by someone other than owner at now.
func (o *outbox) held(id, owner string, now time.Time) bool {
	l, ok := o.leases[id]
	return ok && l.owner != owner && now.Before(l.until)
}

// eventKeys returns the keys of evs, numbered on in order; the caller
// calls done once their write is committed or has failed.
func (s *Store) eventKeys(evs []store.Event) (keys, vals [][]byte, done func(), err error) {
	keys = make([][]byte, len(evs))
	vals = make([][]byte, len(evs))
	for i := range evs {
		data, err := json.Marshal(&evs[i])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("encode event %s: %w", evs[i].Name, err)
		}
		vals[i] = data
	}
	if len(evs) == 0 {
		return keys, vals, func() {}, nil
	}
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	first := max(s.out.last+1, uint64(time.Now().UnixNano()))
	for i := range evs {
		n := first + uint64(i)
		s.out.last = n
		keys[i] = binary.BigEndian.AppendUint64(append(key('e'), 0), n)
	}
	if s.out.pending == nil {
		s.out.pending = map[uint64]bool{}
	}
	s.out.pending[first] = true
	done = func() {
		s.out.mu.Lock()
		delete(s.out.pending, first)
		s.out.mu.Unlock()
	}
	return keys, vals, done, nil
}

func setAll(b *pebble.Batch, keys, vals [][]byte) error {
	for i := range keys {
		if err := b.Set(keys[i], vals[i], nil); err != nil {
			return err
		}
	}
	return nil
}

// CreateChatEvents implements store.Outbox.
func (s *Store) CreateChatEvents(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	keys, vals, done, err := s.eventKeys(evs)
	if err != nil {
		return err
	}
	defer done()
	extra := func(b *pebble.Batch) error {
		if err := b.Set(userKey(c.UserID, c.ID), nil, nil); err != nil {
			return err
		}
		return setAll(b, keys, vals)
	}
	if err := s.createChatWith(c, extra); err != nil {
		return fmt.Errorf("create chat %q: %w", c.ID, err)
	}
	c.Rev = 1
	s.cache.putWindow(c.ID, 1, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// UpdateChatEvents implements store.Outbox.
func (s *Store) UpdateChatEvents(ctx context.Context, c *engine.Chat, reply *store.Reply, evs []store.Event) error {
	keys, vals, done, err := s.eventKeys(evs)
	if err != nil {
		return err
	}
	defer done()
	if err := s.updateChatWith(ctx, c, reply, func(b *pebble.Batch) error { return setAll(b, keys, vals) }); err != nil {
		return fmt.Errorf("update chat %q: %w", c.ID, err)
	}
	c.Rev++
	s.cache.putWindow(c.ID, c.Rev, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

func userKey(user, chat string) []byte { return key('u', user, chat) }

// EraseChat implements store.Outbox.
func (s *Store) EraseChat(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	keys, vals, done, err := s.eventKeys(evs)
	if err != nil {
		return err
	}
	defer done()
	extra := func(b *pebble.Batch) error {
		v, err := get(s.db, key('c', c.ID))
		if err != nil || v == nil {
			return fmt.Errorf("read chat: %v", err)
		}
		old, err := decodeChat(v)
		if err != nil {
			return err
		}
		if old.UserID != c.UserID {
			if err := b.Delete(userKey(old.UserID, c.ID), nil); err != nil {
				return err
			}
			if err := b.Set(userKey(c.UserID, c.ID), nil, nil); err != nil {
				return err
			}
		}
		p := entryPrefix(c.ID)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper(p)})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			var e engine.Entry
			if err := json.Unmarshal(it.Value(), &e); err != nil {
				return fmt.Errorf("decode transcript entry: %w", err)
			}
			store.EraseEntry(&e)
			data, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			if err := b.Set(slices.Clone(it.Key()), data, nil); err != nil {
				return err
			}
		}
		if err := it.Error(); err != nil {
			return err
		}
		// The replies remembered for message ids hold answers (attributes,
		// texts): forgotten, so a retry of one runs as a new message.
		rp := replyPrefix(c.ID)
		if err := b.DeleteRange(rp, upper(rp), nil); err != nil {
			return err
		}
		return setAll(b, keys, vals)
	}
	if err := s.updateChatWith(ctx, c, nil, extra); err != nil {
		return fmt.Errorf("erase chat %q: %w", c.ID, err)
	}
	c.Rev++
	s.cache.putWindow(c.ID, c.Rev, c.Seq, c.Transcript)
	c.Transcript = slices.Clip(c.Transcript)
	return nil
}

// AppendEvents implements store.Outbox.
func (s *Store) AppendEvents(ctx context.Context, evs []store.Event) error {
	keys, vals, done, err := s.eventKeys(evs)
	if err != nil {
		return err
	}
	defer done()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	b := s.db.NewBatch()
	defer b.Close()
	if err := setAll(b, keys, vals); err != nil {
		return err
	}
	if err := s.commit(b, pebble.Sync); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// ClaimEvents implements store.Outbox.
func (s *Store) ClaimEvents(ctx context.Context, owner string, until time.Time, max int) ([]store.Event, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	now := time.Now()
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.out.init()
	// Events below low are deleted; those being written are at or above
	// their first number; later ones above last.
	from, next := s.out.low, s.out.last+1
	for n := range s.out.pending {
		from, next = min(from, n), min(next, n)
	}
	p := append(key('e'), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: binary.BigEndian.AppendUint64(p, from), UpperBound: upper(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	blocked := map[string]bool{}
	var out []store.Event
	ok := it.First()
	if k := it.Key(); ok && len(k) == len(p)+8 {
		next = min(next, binary.BigEndian.Uint64(k[len(p):]))
	}
	if it.Error() == nil {
		s.out.low = next
	}
	for ; ok && len(out) < max; ok = it.Next() {
		var e store.Event
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return out, fmt.Errorf("decode event: %w", err)
		}
		if blocked[e.Stream] && e.Stream != "" {
			continue
		}
		if s.out.held(e.ID, owner, now) {
			blocked[e.Stream] = true
			continue
		}
		s.out.leases[e.ID] = lease{owner, until}
		s.out.keys[e.ID] = slices.Clone(it.Key())
		out = append(out, e)
	}
	return out, it.Error()
}

// DeleteEvents implements store.Outbox.
func (s *Store) DeleteEvents(ctx context.Context, ids []string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.out.init()
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		if k, ok := s.out.keys[id]; ok {
			if err := b.Delete(k, nil); err != nil {
				return err
			}
		}
	}
	if err := s.commit(b, pebble.Sync); err != nil {
		return fmt.Errorf("delete events: %w", err)
	}
	for _, id := range ids {
		delete(s.out.keys, id)
		delete(s.out.leases, id)
	}
	return nil
}

// Subscriptions.

// CreateSubscription implements store.Outbox.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.ID == "" {
		sub.ID = store.NewID()
	}
	if err := checkID(sub.ID); err != nil {
		return err
	}
	sub.CreatedAt = now()
	data, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if v, err := get(s.db, key('v', sub.ID)); err != nil {
		return err
	} else if v != nil {
		return store.ErrExists
	}
	return s.set(key('v', sub.ID), data)
}

// GetSubscription implements store.Outbox.
func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	var sub store.Subscription
	if err := s.enter(); err != nil {
		return sub, err
	}
	defer s.leave()
	v, err := get(s.db, key('v', id))
	if err != nil {
		return sub, err
	}
	if v == nil {
		return sub, fmt.Errorf("subscription %q: %w", id, store.ErrNotFound)
	}
	return sub, json.Unmarshal(v, &sub)
}

// ListSubscriptions implements store.Outbox.
func (s *Store) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	var out []store.Subscription
	err := s.scan(append(key('v'), 0), func(_, v []byte) (bool, error) {
		var sub store.Subscription
		if err := json.Unmarshal(v, &sub); err != nil {
			return false, err
		}
		out = append(out, sub)
		return true, nil
	})
	return out, err
}

// DeleteSubscription implements store.Outbox.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	if _, err := s.GetSubscription(ctx, id); err != nil {
		return err
	}
	var ids []string
	p := append(key('x', id), 0)
	if err := s.scan(p, func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(p):]))
		return true, nil
	}); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.out.delivMu.Lock()
	defer s.out.delivMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, did := range ids {
		d, err := s.delivery(did)
		if err == nil {
			_ = b.Delete(indexKey(&d), nil)
			_ = b.Delete(streamKey(&d), nil)
		}
		_ = b.Delete(key('d', did), nil)
	}
	if err := b.DeleteRange(p, upper(p), nil); err != nil {
		return err
	}
	if err := b.Delete(key('v', id), nil); err != nil {
		return err
	}
	return s.commit(b, pebble.Sync)
}

// scan calls fn with each key and value under prefix p until it returns false.
func (s *Store) scan(p []byte, fn func(k, v []byte) (bool, error)) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// Deliveries.

func queueKey(d *store.Delivery) []byte {
	k := binary.BigEndian.AppendUint64(append(key('q'), 0), uint64(d.NextAt.UnixNano()))
	return append(append(k, 0), d.ID...)
}

// doneKey indexes a finished delivery by when it was last updated
// (PruneDeliveries).
func doneKey(d *store.Delivery) []byte {
	k := binary.BigEndian.AppendUint64(append(key('f'), 0), uint64(max(0, d.UpdatedAt.UnixNano())))
	return append(append(k, 0), d.ID...)
}

// subKey indexes a delivery by its subscription (ListDeliveries,
// DeleteSubscription).
func subKey(d *store.Delivery) []byte {
	return append(append(key('x', d.SubscriptionID), 0), d.ID...)
}

// streamKey indexes a delivery by its event's stream (EraseDeliveries).
func streamKey(d *store.Delivery) []byte {
	return append(append(key('y', d.Event.Stream), 0), d.ID...)
}

func (s *Store) delivery(id string) (store.Delivery, error) {
	var d store.Delivery
	v, err := get(s.db, key('d', id))
	if err != nil {
		return d, err
	}
	if v == nil {
		return d, fmt.Errorf("delivery %q: %w", id, store.ErrNotFound)
	}
	return d, json.Unmarshal(v, &d)
}

// putDelivery adds d's records to b; old is its stored version (or nil).
func putDelivery(b *pebble.Batch, d, old *store.Delivery) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if old != nil {
		if err := b.Delete(indexKey(old), nil); err != nil {
			return err
		}
	}
	if err := b.Set(indexKey(d), nil, nil); err != nil {
		return err
	}
	if err := b.Set(subKey(d), nil, nil); err != nil {
		return err
	}
	if err := b.Set(streamKey(d), nil, nil); err != nil {
		return err
	}
	return b.Set(key('d', d.ID), data, nil)
}

// indexKey is d's key in the due queue while pending, else in the
// finished index.
func indexKey(d *store.Delivery) []byte {
	if d.Status == store.DeliveryPending {
		return queueKey(d)
	}
	return doneKey(d)
}

// AddDeliveries implements store.Outbox.
func (s *Store) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.out.delivMu.Lock()
	defer s.out.delivMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for i := range ds {
		if v, err := get(s.db, key('d', ds[i].ID)); err != nil {
			return err
		} else if v != nil {
			continue
		}
		if err := putDelivery(b, &ds[i], nil); err != nil {
			return err
		}
	}
	// Not synced: the worker's DeleteEvents comes next and is, and the WAL
	// keeps order, so no crash keeps the deletion without the deliveries.
	return s.commit(b, pebble.NoSync)
}

// ClaimDeliveries implements store.Outbox.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now, until time.Time, max int) ([]store.Delivery, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	p := append(key('q'), 0)
	hi := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(now.UnixNano())+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.out.init()
	var out []store.Delivery
	for ok := it.First(); ok && len(out) < max; ok = it.Next() {
		k := it.Key()
		id := string(k[len(p)+9:])
		if s.out.held(id, owner, now) {
			continue
		}
		d, err := s.delivery(id)
		if err != nil {
			return out, err
		}
		if d.Status != store.DeliveryPending {
			continue
		}
		s.out.leases[id] = lease{owner, until}
		out = append(out, d)
	}
	return out, it.Error()
}

// SaveDelivery implements store.Outbox.
func (s *Store) SaveDelivery(ctx context.Context, owner string, d *store.Delivery) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.out.mu.Lock()
	s.out.init()
	if owner != "" {
		if l, ok := s.out.leases[d.ID]; !ok || l.owner != owner {
			s.out.mu.Unlock()
			return fmt.Errorf("save delivery %q: lease lost: %w", d.ID, store.ErrConflict)
		}
	}
	delete(s.out.leases, d.ID)
	s.out.mu.Unlock()
	s.out.delivMu.Lock()
	defer s.out.delivMu.Unlock()
	old, err := s.delivery(d.ID)
	if err != nil {
		return err
	}
	d.UpdatedAt = now()
	d.Event = old.Event // erased meanwhile, maybe (EraseDeliveries)
	b := s.db.NewBatch()
	defer b.Close()
	if err := putDelivery(b, d, &old); err != nil {
		return err
	}
	// A worker's outcome is not synced: a crash may forget it, and the
	// delivery is made again (at least once). A replay (owner "") is.
	if owner != "" {
		return s.commit(b, pebble.NoSync)
	}
	return s.commit(b, pebble.Sync)
}

// GetDelivery implements store.Outbox.
func (s *Store) GetDelivery(ctx context.Context, id string) (store.Delivery, error) {
	if err := s.enter(); err != nil {
		return store.Delivery{}, err
	}
	defer s.leave()
	return s.delivery(id)
}

// ListDeliveries implements store.Outbox.
func (s *Store) ListDeliveries(ctx context.Context, subID string, limit int) ([]store.Delivery, error) {
	var ids []string
	p := append(key('x', subID), 0)
	if err := s.scan(p, func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(p):]))
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make([]store.Delivery, 0, min(len(ids), limit))
	for _, id := range ids {
		d, err := s.delivery(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Delivery) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return -bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// EraseDeliveries implements store.Outbox: the deliveries of each stream
// are found through their index (streamKey).
func (s *Store) EraseDeliveries(ctx context.Context, streams []string, erase func(*store.Event)) (int, error) {
	var ids []string
	for _, st := range streams {
		p := append(key('y', st), 0)
		if err := s.scan(p, func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(p):]))
			return true, nil
		}); err != nil {
			return 0, err
		}
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.out.delivMu.Lock()
	defer s.out.delivMu.Unlock()
	// Written eraseBatch at a time, so that a user with many deliveries
	// does not make one batch of them all; an erasure cut short is
	// finished by repeating it.
	const eraseBatch = 500
	n := 0
	for len(ids) > 0 {
		chunk := ids[:min(eraseBatch, len(ids))]
		ids = ids[len(chunk):]
		b := s.db.NewBatch()
		k := 0
		for _, id := range chunk {
			d, err := s.delivery(id)
			if errors.Is(err, store.ErrNotFound) {
				continue // pruned meanwhile
			}
			if err == nil {
				erase(&d.Event)
				var data []byte
				if data, err = json.Marshal(&d); err == nil {
					err = b.Set(key('d', id), data, nil)
				}
			}
			if err != nil {
				b.Close()
				return n, fmt.Errorf("erase deliveries: %w", err)
			}
			k++
		}
		err := s.commit(b, pebble.Sync)
		b.Close()
		if err != nil {
			return n, fmt.Errorf("erase deliveries: %w", err)
		}
		n += k
	}
	return n, nil
}

// PruneDeliveries implements store.Outbox.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.out.delivMu.Lock()
	defer s.out.delivMu.Unlock()
	p := append(key('f'), 0)
	hi := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(max(0, before.UnixNano())))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		id := string(it.Key()[len(p)+9:])
		if err := b.Delete(slices.Clone(it.Key()), nil); err != nil {
			return 0, err
		}
		if d, err := s.delivery(id); err == nil {
			if err := b.Delete(subKey(&d), nil); err != nil {
				return 0, err
			}
			if err := b.Delete(streamKey(&d), nil); err != nil {
				return 0, err
			}
		}
		if err := b.Delete(key('d', id), nil); err != nil {
			return 0, err
		}
		n++
	}
	if err := it.Error(); err != nil || n == 0 {
		return 0, err
	}
	return n, s.commit(b, pebble.NoSync)
}
