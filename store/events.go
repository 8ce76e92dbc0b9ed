package store

import (
	"context"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// Event is an outbox entry: an event written in the same atomic write as
// the change that caused it, kept until the delivery worker has fanned it
// out to the subscriptions that want it.
type Event struct {
	// ID is "evt_" and a NewID; ids sort by creation time within a process.
	ID   string         `json:"id" bson:"id"`
	Name string         `json:"event" bson:"event"`
	Time time.Time      `json:"timestamp" bson:"timestamp"`
	Data map[string]any `json:"data" bson:"data"`
	// Stream orders events: one stream's events are delivered in order
	// (a chat's id, or "user:<id>" for contact events).
	Stream string `json:"stream,omitempty" bson:"stream,omitempty"`
}

// NewEvent returns an event named name with data, now, in stream.
func NewEvent(name, stream string, data map[string]any) Event {
	return Event{ID: "evt_" + NewID(), Name: name, Time: time.Now().UTC().Truncate(time.Millisecond), Data: data, Stream: stream}
}

// Subscription is an event webhook: events named in Events are POSTed to
// URL, signed with Secret when set.
type Subscription struct {
	ID        string            `json:"id" bson:"_id"`
	URL       string            `json:"url" bson:"url"`
	Events    []string          `json:"events" bson:"events"`
	Headers   map[string]string `json:"headers,omitempty" bson:"headers,omitempty"`
	Secret    string            `json:"secret,omitempty" bson:"secret,omitempty"`
	CreatedAt time.Time         `json:"createdAt" bson:"createdAt"`
}

// Wants tells whether the subscription takes events named name ("*" takes
// all).
func (s *Subscription) Wants(name string) bool {
	for _, e := range s.Events {
		if e == name || e == "*" {
			return true
		}
	}
	return false
}

// DeliveryStatus is the state of one event's delivery to one subscription.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Attempt is one POST of a delivery.
type Attempt struct {
	Time time.Time `json:"time" bson:"time"`
	// Status is the HTTP status code (0: no answer).
	Status     int    `json:"status" bson:"status"`
	Error      string `json:"error,omitempty" bson:"error,omitempty"`
	DurationMS int64  `json:"durationMs" bson:"durationMs"`
}

// Delivery is one event for one subscription, with its attempts.
type Delivery struct {
	// ID is the event id, "." and the subscription id.
	ID             string         `json:"id" bson:"_id"`
	SubscriptionID string         `json:"webhookId" bson:"subscriptionId"`
	Event          Event          `json:"event" bson:"event"`
	Status         DeliveryStatus `json:"status" bson:"status"`
	Attempts       []Attempt      `json:"attempts" bson:"attempts"`
	// NextAt is when a pending delivery is tried next.
	NextAt    time.Time `json:"nextAttemptAt,omitzero" bson:"nextAt"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
	// Order sorts deliveries due at once (nanoseconds of the fan-out; a
	// stream's deliveries in its events' order).
	Order int64 `json:"-" bson:"order"`
	// LeaseOwner holds the delivery until LeaseUntil (a worker trying it).
	LeaseOwner string    `json:"-" bson:"leaseOwner,omitempty"`
	LeaseUntil time.Time `json:"-" bson:"leaseUntil"`
}

// DeliveryID is the id of event's delivery to subscription sub.
func DeliveryID(event, sub string) string { return event + "." + sub }

// Outbox is implemented by stores that keep events (an optional interface:
// check with a type assertion). Writes that cause events pass them to
// CreateChatEvents or UpdateChatEvents, which write them in the same atomic
// write as the chat.
type Outbox interface {
	// CreateChatEvents is CreateChat that also appends evs to the outbox.
	CreateChatEvents(ctx context.Context, c *engine.Chat, evs []Event) error
	// UpdateChatEvents is UpdateChat that also appends evs to the outbox.
	UpdateChatEvents(ctx context.Context, c *engine.Chat, reply *Reply, evs []Event) error
	// EraseChat is UpdateChat (without reply) that also runs EraseEntry on
	// every stored transcript entry of the chat, in the same atomic write;
	// the caller erases c itself (attributes, user, c.Transcript).
	EraseChat(ctx context.Context, c *engine.Chat, evs []Event) error
	// AppendEvents appends events that no chat write causes.
	AppendEvents(ctx context.Context, evs []Event) error
	// ClaimEvents leases up to max outbox events to owner until until: the
	// oldest ones whose lease is free or expired, a stream's events only
	// while no other owner holds an earlier one of that stream, in order.
	ClaimEvents(ctx context.Context, owner string, until time.Time, max int) ([]Event, error)
	// DeleteEvents removes fanned-out events from the outbox.
	DeleteEvents(ctx context.Context, ids []string) error

	CreateSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	ListSubscriptions(ctx context.Context) ([]Subscription, error)
	// DeleteSubscription removes a subscription and its deliveries.
	DeleteSubscription(ctx context.Context, id string) error

	// AddDeliveries stores new deliveries; one whose id exists is kept as it
	// is (a fan-out repeated after a crash adds nothing).
	AddDeliveries(ctx context.Context, ds []Delivery) error
	// ClaimDeliveries leases up to max pending deliveries due by now (NextAt
	// passed, lease free or expired) to owner until until, oldest first.
	ClaimDeliveries(ctx context.Context, owner string, now, until time.Time, max int) ([]Delivery, error)
	// SaveDelivery writes d back (status, attempts, next try) and frees its
	// lease, if owner still holds it (ErrConflict otherwise); owner ""
	// writes regardless (replay).
	SaveDelivery(ctx context.Context, owner string, d *Delivery) error
	GetDelivery(ctx context.Context, id string) (Delivery, error)
	// ListDeliveries returns a subscription's deliveries, newest first, at
	// most limit.
	ListDeliveries(ctx context.Context, subID string, limit int) ([]Delivery, error)
	// EraseDeliveries runs erase on the event of every stored delivery
	// whose event is of one of streams, whatever its status, and stores it;
	// it returns how many it rewrote. It need not be atomic: one cut short
	// is finished by repeating it. SaveDelivery keeps a stored event as it
	// is, so a delivery in flight meanwhile stays erased.
	EraseDeliveries(ctx context.Context, streams []string, erase func(*Event)) (int, error)
	// PruneDeliveries removes up to max finished deliveries (succeeded or
	// failed) last updated before before, oldest first; it returns how many.
	PruneDeliveries(ctx context.Context, before time.Time, max int) (int, error)
}

// Erased replaces erased text.
const Erased = "[erased]"

// EraseEntry replaces what a transcript entry says (the user's input, the
// bot's or agent's response, a model call's metadata) with Erased,
// keeping its place: seq, sender, node, time, response type.
func EraseEntry(e *engine.Entry) {
	if e.Input != nil {
		e.Input = &engine.Input{Text: Erased}
	}
	if e.Response != nil {
		e.Response = &engine.Response{Type: engine.TypeText, Delay: e.Response.Delay, Message: Erased}
	}
	if e.Call != nil {
		c := *e.Call
		c.Metadata = nil
		e.Call = &c
	}
}
