package api

import (
	"context"
	"sync"
	"time"

	"github.com/storyflow/storyflow/store"
)

// subscribersFresh is how long the subscription list read for a turn is
// reused: a subscription made through another process (a MongoDB
// deployment) receives events within this time. This process's own
// changes take effect at once.
const subscribersFresh = time.Second

// subscribers caches the event webhooks, so that a turn writes to the
// outbox only the events some subscription wants: the event worker would
// claim and drop the others, and without subscriptions that was about a
// seventh of the server's CPU under load.
type subscribers struct {
	mu   sync.Mutex
	subs []store.Subscription
	at   time.Time // zero: read again
}

// forget makes the next turn read the list again.
func (c *subscribers) forget() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// wanted returns the events of evs that some subscription wants (all of
// them when the list cannot be read: the worker decides then).
func (c *subscribers) wanted(ctx context.Context, ob store.Outbox, evs []store.Event) []store.Event {
	if len(evs) == 0 || ob == nil {
		return evs
	}
	want := c.wants(ctx, ob)
	out := make([]store.Event, 0, len(evs))
	for _, e := range evs {
		if want(e.Name) {
			out = append(out, e)
		}
	}
	return out
}

// wants tells whether some subscription wants events of a name (all
// names without an outbox or when the list cannot be read), so that a turn
// builds only those.
func (c *subscribers) wants(ctx context.Context, ob store.Outbox) func(name string) bool {
	all := func(string) bool { return true }
	if ob == nil {
		return all
	}
	c.mu.Lock()
	if time.Since(c.at) >= subscribersFresh {
		subs, err := ob.ListSubscriptions(ctx)
		if err != nil {
			c.mu.Unlock()
			return all
		}
		c.subs, c.at = subs, time.Now()
	}
	subs := c.subs
	c.mu.Unlock()
	return func(name string) bool {
		for i := range subs {
			if subs[i].Wants(name) {
				return true
			}
		}
		return false
	}
}
