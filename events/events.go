// Package events delivers the outbox's events to event webhooks (SPEC §6).
//
// A Worker fans each outbox event out into one delivery per subscription
// that wants it, then POSTs the deliveries: signed like webhook requests
// when the subscription has a secret, a 2xx within Timeout is success,
// anything else is retried MaxAttempts-1 times with exponential backoff
// and jitter, then kept as failed (replayable). Events and deliveries are
// claimed under a lease, so several processes on one database share the
// work and each event is delivered once in normal operation, at least once
// across crashes. A stream's (a chat's) events are fanned out in order and
// their first attempts made in order.
package events

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/webhook"
)

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 4 // the first and 3 retries
	DefaultBackoff     = 5 * time.Second
	DefaultLease       = 30 * time.Second
	DefaultPoll        = 250 * time.Millisecond
	DefaultParallel    = 16
	DefaultRetention   = 7 * 24 * time.Hour
	batch              = 256
	// pruneEvery is how often finished deliveries past the retention are
	// removed; pruneBatch how many a store call removes.
	pruneEvery = time.Hour
	pruneBatch = 1000
	// maxAnswer is how much of a receiver's answer is read (and dropped).
	maxAnswer = 64 << 10
)

// HeaderEvent and HeaderEventID name the event on each request.
const (
	HeaderEvent   = "X-Storyflow-Event"
	HeaderEventID = "X-Storyflow-Event-Id"
)

// Options configure a Worker.
type Options struct {
	// Store holds the outbox (required).
	Store store.Outbox
	// HTTP sends the requests (required): webhook.Client.HTTP, so that the
	// outbound address guard applies.
	HTTP *http.Client
	// Owner names this worker in leases (default: random).
	Owner string
	// Timeout is how long a receiver has to answer (default 10s).
	Timeout time.Duration
	// MaxAttempts is how often a delivery is tried (default 4).
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles per retry,
	// with jitter of ±50% (default 5s).
	Backoff time.Duration
	// Lease is how long a claim lasts (default 30s; at least 2 Timeouts).
	Lease time.Duration
	// Poll is how often the outbox is read when nothing wakes the worker
	// (default 250ms).
	Poll time.Duration
	// Parallel bounds the requests in flight (default 16).
	Parallel int
	// Retention is how long a finished delivery (succeeded or failed) is
	// kept, from its last attempt (default 7 days; negative: for good).
	// The worker removes older ones at its start and about once an hour.
	Retention time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Worker delivers events. Run it once per process.
type Worker struct {
	o    Options
	wake chan struct{}
}

// New returns a worker.
func New(o Options) *Worker {
	if o.Owner == "" {
		var b [8]byte
		_, _ = crand.Read(b[:])
		o.Owner = hex.EncodeToString(b[:])
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	o.Lease = max(o.Lease, 2*o.Timeout)
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Worker{o: o, wake: make(chan struct{}, 1)}
}

// Notify wakes the worker: events were written.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// failLogEvery is how often a worker that keeps failing logs it.
const failLogEvery = 30 * time.Second

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	var failing int        // steps failed in a row
	var loggedAt time.Time // when the last failure was logged
	var prunedAt time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.wake:
		}
		if w.o.Retention > 0 && time.Since(prunedAt) >= pruneEvery {
			prunedAt = time.Now()
			w.prune(ctx)
		}
		busy, err := w.Step(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// While the store is down every poll fails: log the first
			// failure, then at most once per failLogEvery.
			failing++
			if failing == 1 || time.Since(loggedAt) >= failLogEvery {
				w.o.Logger.Error("events: deliver", "err", err, "failedSteps", failing)
				loggedAt = time.Now()
			}
		case err == nil && failing > 0:
			w.o.Logger.Info("events: delivering again", "failedSteps", failing)
			failing = 0
		}
		t.Stop()
		select {
		case <-t.C:
		default:
		}
		if busy && err == nil {
			t.Reset(0)
		} else {
			t.Reset(w.o.Poll)
		}
	}
}

// prune removes the finished deliveries older than the retention.
func (w *Worker) prune(ctx context.Context) {
	before := w.o.Now().Add(-w.o.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := w.o.Store.PruneDeliveries(ctx, before, pruneBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				w.o.Logger.Warn("events: prune deliveries", "err", err)
			}
			break
		}
		if n < pruneBatch {
			break
		}
	}
	if total > 0 {
		w.o.Logger.Info("events: pruned deliveries", "count", total, "before", before)
	}
}

// Step fans out claimed outbox events and makes the due attempts once;
// busy tells that there may be more to do right away.
func (w *Worker) Step(ctx context.Context) (busy bool, err error) {
	n, err := w.fanOut(ctx)
	if err != nil {
		return false, err
	}
	m, err := w.deliverDue(ctx)
	return n == batch || m == batch, err
}

// fanOut turns claimed outbox events into deliveries.
func (w *Worker) fanOut(ctx context.Context) (int, error) {
	evs, err := w.o.Store.ClaimEvents(ctx, w.o.Owner, w.o.Now().Add(w.o.Lease), batch)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	// Read the clock after the claim: a stream's next events are fanned out
	// (by any process) only after this claim ends, so their deliveries
	// sort after these.
	now := w.o.Now()
	subs, err := w.o.Store.ListSubscriptions(ctx)
	if err != nil {
		return 0, err
	}
	var ds []store.Delivery
	ids := make([]string, 0, len(evs))
	for i, e := range evs {
		ids = append(ids, e.ID)
		for k := range subs {
			if !subs[k].Wants(e.Name) {
				continue
			}
			// NextAt keeps the events' order among deliveries due at once.
			at := now.Add(time.Duration(i))
			ds = append(ds, store.Delivery{
				ID: store.DeliveryID(e.ID, subs[k].ID), SubscriptionID: subs[k].ID, Event: e,
				Status: store.DeliveryPending, Attempts: []store.Attempt{}, NextAt: at, CreatedAt: at, UpdatedAt: at, Order: at.UnixNano(),
			})
		}
	}
	if len(ds) > 0 {
		if err := w.o.Store.AddDeliveries(ctx, ds); err != nil {
			return 0, err
		}
	}
	if err := w.o.Store.DeleteEvents(ctx, ids); err != nil {
		return 0, err
	}
	return len(evs), nil
}

// deliverDue makes the attempts that are due: a stream's deliveries to one
// subscription one after the other, in order; others in parallel.
func (w *Worker) deliverDue(ctx context.Context) (int, error) {
	now := w.o.Now()
	ds, err := w.o.Store.ClaimDeliveries(ctx, w.o.Owner, now, now.Add(w.o.Lease), batch)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	subs := map[string]*store.Subscription{}
	type lane struct{ ds []*store.Delivery }
	lanes := map[string]*lane{}
	var order []*lane
	for i := range ds {
		d := &ds[i]
		if _, ok := subs[d.SubscriptionID]; !ok {
			sub, err := w.o.Store.GetSubscription(ctx, d.SubscriptionID)
			if errors.Is(err, store.ErrNotFound) {
				subs[d.SubscriptionID] = nil
			} else if err != nil {
				return 0, err
			} else {
				subs[d.SubscriptionID] = &sub
			}
		}
		k := d.SubscriptionID + "\x00" + d.Event.Stream
		l := lanes[k]
		if l == nil || d.Event.Stream == "" {
			l = &lane{}
			lanes[k] = l
			order = append(order, l)
		}
		l.ds = append(l.ds, d)
	}
	sem := make(chan struct{}, w.o.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, l := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, d := range l.ds {
				sub := subs[d.SubscriptionID]
				if sub == nil {
					continue // deleted meanwhile
				}
				if err := w.attempt(ctx, sub, d); err != nil {
					mu.Lock()
					first = cmp(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return len(ds), first
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// attempt POSTs d once and saves the outcome.
func (w *Worker) attempt(ctx context.Context, sub *store.Subscription, d *store.Delivery) error {
	a := w.Send(ctx, sub, &d.Event)
	if ctx.Err() != nil {
		return nil // shutting down: the lease runs out, the attempt is made again
	}
	d.Attempts = append(d.Attempts, a)
	switch {
	case a.Error == "":
		d.Status, d.NextAt = store.DeliverySucceeded, time.Time{}
	case len(d.Attempts) >= w.o.MaxAttempts:
		d.Status, d.NextAt = store.DeliveryFailed, time.Time{}
		w.o.Logger.Warn("events: delivery failed", "webhook", sub.ID, "event", d.Event.ID, "attempts", len(d.Attempts), "err", a.Error)
	default:
		d.NextAt = w.o.Now().Add(Backoff(w.o.Backoff, retriesSince(d)))
	}
	if err := w.o.Store.SaveDelivery(ctx, w.o.Owner, d); err != nil {
		return fmt.Errorf("save delivery %s: %w", d.ID, err)
	}
	return nil
}

// retriesSince counts the failed attempts since the last replay (or all).
func retriesSince(d *store.Delivery) int {
	n := 0
	for i := len(d.Attempts) - 1; i >= 0 && d.Attempts[i].Error != ""; i-- {
		n++
	}
	return n
}

// Backoff is the wait after the n-th failed attempt (n from 1): base
// doubled n-1 times, with jitter of ±50%, at most an hour.
func Backoff(base time.Duration, n int) time.Duration {
	d := base << min(n-1, 20)
	d = min(d, time.Hour)
	return d/2 + rand.N(d+1)
}

// Payload is the body POSTed for e to subscription subID.
func Payload(e *store.Event, subID string) ([]byte, error) {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return json.Marshal(struct {
		ID        string         `json:"id"`
		Event     string         `json:"event"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
		WebhookID string         `json:"webhookId"`
	}{e.ID, e.Name, e.Time.UTC(), data, subID})
}

// Send POSTs e to sub once and says how it went; Error is empty on success.
func (w *Worker) Send(ctx context.Context, sub *store.Subscription, e *store.Event) store.Attempt {
	start := w.o.Now()
	a := store.Attempt{Time: start.UTC().Truncate(time.Millisecond)}
	status, err := w.post(ctx, sub, e)
	a.Status = status
	a.DurationMS = w.o.Now().Sub(start).Milliseconds()
	if err != nil {
		a.Error = err.Error()
	}
	return a
}

func (w *Worker) post(ctx context.Context, sub *store.Subscription, e *store.Event) (int, error) {
	body, err := Payload(e, sub.ID)
	if err != nil {
		return 0, fmt.Errorf("encode payload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	for k, v := range sub.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "storyflow-events/1")
	req.Header.Set(HeaderEvent, e.Name)
	req.Header.Set(HeaderEventID, e.ID)
	if sub.Secret != "" {
		ts := strconv.FormatInt(w.o.Now().Unix(), 10)
		req.Header.Set(webhook.HeaderTimestamp, ts)
		req.Header.Set(webhook.HeaderSignature, webhook.Sign(sub.Secret, ts, body))
	}
	resp, err := w.o.HTTP.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return 0, fmt.Errorf("no answer within %s", w.o.Timeout)
		}
		var re *webhook.RefusedError
		if errors.As(err, &re) {
			return 0, re
		}
		return 0, fmt.Errorf("request failed: %v", unwrapURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("Request failed with status code %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// unwrapURL drops *url.Error's method and URL (the URL may hold a secret).
func unwrapURL(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
