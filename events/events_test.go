package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/storyflow/storyflow/webhook"
)

// receiver records what a real loopback server got.
type receiver struct {
	mu    sync.Mutex
	got   []received
	fail  int // answer 500 to the first fail requests
	delay time.Duration
}

type received struct {
	ID, Event, Sig, WebhookID string
	Header                    http.Header
	Body                      []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p struct{ ID, Event, WebhookID string }
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	r.got = append(r.got, received{ID: p.ID, Event: p.Event, WebhookID: p.WebhookID, Sig: req.Header.Get(webhook.HeaderSignature), Header: req.Header.Clone(), Body: body})
	n := len(r.got)
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
		}
	}
	if n <= r.fail {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func open(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func worker(st store.Outbox, o events.Options) *events.Worker {
	o.Store = st
	o.HTTP = webhook.NewClient(webhook.Options{AllowPrivate: true}).HTTP()
	if o.Backoff == 0 {
		o.Backoff = 20 * time.Millisecond
	}
	o.Poll = 10 * time.Millisecond
	return events.New(o)
}

// waitFor runs the worker until done says so or the deadline passes.
func waitFor(t *testing.T, w *events.Worker, d time.Duration, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	deadline := time.Now().Add(d)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	st := open(t)
	rcv := &receiver{fail: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ctx := context.Background()
	sub := store.Subscription{URL: srv.URL, Events: []string{"order.requested"}, Secret: "s3cret", Headers: map[string]string{"X-Api-Key": "k"}}
	if err := st.CreateSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	ev := store.NewEvent("order.requested", "chat1", map[string]any{"sku": "A1"})
	other := store.NewEvent("conversation.created", "chat1", nil) // not subscribed
	if err := st.AppendEvents(ctx, []store.Event{ev, other}); err != nil {
		t.Fatal(err)
	}
	w := worker(st, events.Options{})
	id := store.DeliveryID(ev.ID, sub.ID)
	waitFor(t, w, 10*time.Second, func() bool {
		d, err := st.GetDelivery(ctx, id)
		return err == nil && d.Status == store.DeliverySucceeded
	})
	got := rcv.all()
	if len(got) != 3 {
		t.Fatalf("got %d requests, want 3", len(got))
	}
	for _, g := range got {
		if g.ID != ev.ID || g.Event != "order.requested" || g.WebhookID != sub.ID {
			t.Errorf("request %+v, want id %s", g, ev.ID)
		}
		if err := webhook.CheckSignature("s3cret", g.Header.Get(webhook.HeaderTimestamp), g.Sig, g.Body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		if g.Header.Get("X-Api-Key") != "k" {
			t.Errorf("header X-Api-Key missing")
		}
	}
	d, _ := st.GetDelivery(ctx, id)
	if len(d.Attempts) != 3 || d.Attempts[0].Status != 500 || d.Attempts[2].Status != 204 || d.Attempts[2].Error != "" {
		t.Errorf("attempts %+v", d.Attempts)
	}
}

func TestGivesUpAndReplays(t *testing.T) {
	st := open(t)
	rcv := &receiver{fail: 4}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ctx := context.Background()
	sub, ev := subscribeAndAppend(t, st, srv.URL, "task.created", "c")
	w := worker(st, events.Options{})
	id := store.DeliveryID(ev.ID, sub.ID)
	waitFor(t, w, 10*time.Second, func() bool {
		d, err := st.GetDelivery(ctx, id)
		return err == nil && d.Status == store.DeliveryFailed
	})
	if n := len(rcv.all()); n != 4 {
		t.Fatalf("%d attempts, want 4 (the first and 3 retries)", n)
	}
	// Replay: pending again, due now; the receiver now succeeds.
	d, _ := st.GetDelivery(ctx, id)
	d.Status, d.NextAt = store.DeliveryPending, time.Now()
	if err := st.SaveDelivery(ctx, "", &d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, 10*time.Second, func() bool {
		d, err := st.GetDelivery(ctx, id)
		return err == nil && d.Status == store.DeliverySucceeded
	})
	if n := len(rcv.all()); n != 5 {
		t.Fatalf("%d requests after replay, want 5", n)
	}
}

func TestHangingReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("waits the 10s timeout")
	}
	t.Parallel()
	st := open(t)
	rcv := &receiver{delay: 12 * time.Second}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	defer srv.CloseClientConnections()
	ctx := context.Background()
	sub, ev := subscribeAndAppend(t, st, srv.URL, "conversation.updated", "c")
	w := worker(st, events.Options{Backoff: time.Hour})
	id := store.DeliveryID(ev.ID, sub.ID)
	start := time.Now()
	waitFor(t, w, 30*time.Second, func() bool {
		d, err := st.GetDelivery(ctx, id)
		return err == nil && len(d.Attempts) == 1
	})
	d, _ := st.GetDelivery(ctx, id)
	if el := time.Since(start); el < events.DefaultTimeout {
		t.Errorf("gave up after %s, before the 10s timeout", el)
	}
	if d.Status != store.DeliveryPending || d.Attempts[0].Error != "no answer within 10s" || d.NextAt.Before(time.Now().Add(20*time.Minute)) {
		t.Errorf("delivery %+v, want pending with a timeout and a later retry", d)
	}
}

func TestStreamOrder(t *testing.T) {
	st := open(t)
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ctx := context.Background()
	sub := store.Subscription{URL: srv.URL, Events: []string{"*"}}
	if err := st.CreateSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 50; i++ {
		ev := store.NewEvent("conversation.updated", "chatA", map[string]any{"i": i})
		want = append(want, ev.ID)
		if err := st.AppendEvents(ctx, []store.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	w := worker(st, events.Options{})
	waitFor(t, w, 10*time.Second, func() bool { return len(rcv.all()) >= 50 })
	got := rcv.all()
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("request %d is %s, want %s", i, got[i].ID, want[i])
		}
	}
}

func TestPrivateAddressRefused(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	sub := store.Subscription{URL: "http://127.0.0.1:9/", Events: []string{"*"}}
	w := events.New(events.Options{Store: st, HTTP: webhook.NewClient(webhook.Options{}).HTTP()})
	ev := store.NewEvent("conversation.updated", "c", nil)
	a := w.Send(ctx, &sub, &ev)
	if a.Error == "" || a.Status != 0 {
		t.Fatalf("attempt %+v, want refused", a)
	}
	t.Log(a.Error)
}

// TestPrunesFinishedDeliveries: a worker removes the finished deliveries
// older than its retention when it starts, and keeps younger ones.
func TestPrunesFinishedDeliveries(t *testing.T) {
	st := open(t)
	srv := httptest.NewServer(&receiver{})
	defer srv.Close()
	ctx := context.Background()
	sub, ev := subscribeAndAppend(t, st, srv.URL, "order.requested", "chat1")
	id := store.DeliveryID(ev.ID, sub.ID)
	succeeded := func() bool {
		d, err := st.GetDelivery(ctx, id)
		return err == nil && d.Status == store.DeliverySucceeded
	}
	// The default retention keeps it.
	waitFor(t, worker(st, events.Options{}), 10*time.Second, succeeded)
	waitFor(t, worker(st, events.Options{}), 10*time.Second, func() bool { return true })
	if !succeeded() {
		t.Fatal("a delivery of a moment ago was pruned")
	}
	// A worker whose clock is a day ahead, with a retention of an hour,
	// prunes it.
	late := worker(st, events.Options{Retention: time.Hour, Now: func() time.Time { return time.Now().Add(24 * time.Hour) }})
	waitFor(t, late, 10*time.Second, func() bool {
		_, err := st.GetDelivery(ctx, id)
		return errors.Is(err, store.ErrNotFound)
	})
	if list, err := st.ListDeliveries(ctx, sub.ID, 10); err != nil || len(list) != 0 {
		t.Errorf("%d deliveries listed after the prune (%v)", len(list), err)
	}
}

// subscribeAndAppend subscribes url to every event and appends one event
// named name in stream.
func subscribeAndAppend(t *testing.T, st store.Outbox, url, name, stream string) (store.Subscription, store.Event) {
	t.Helper()
	ctx := context.Background()
	sub := store.Subscription{URL: url, Events: []string{"*"}}
	if err := st.CreateSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	ev := store.NewEvent(name, stream, nil)
	if err := st.AppendEvents(ctx, []store.Event{ev}); err != nil {
		t.Fatal(err)
	}
	return sub, ev
}
