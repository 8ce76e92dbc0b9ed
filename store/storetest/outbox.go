package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// RunOutbox runs the outbox part of the suite (store.Outbox): stores that
// keep events must pass it.
func RunOutbox(t *testing.T, fresh Fresh) {
	tests := []struct {
		name string
		run  func(t *testing.T, s outboxStore)
	}{
		{"EventsWithChat", testEventsWithChat},
		{"EventLeases", testEventLeases},
		{"Deliveries", testDeliveries},
		{"Erase", testErase},
		{"EraseDeliveries", testEraseDeliveries},
		{"PruneDeliveries", testPruneDeliveries},
		{"Task", testTask},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, fresh(t))
			ob, ok := s.(outboxStore)
			if !ok {
				t.Fatalf("%T is not a store.Outbox", s)
			}
			tt.run(t, ob)
		})
	}
	t.Run("EventsReopen", func(t *testing.T) { testEventsReopen(t, fresh(t)) })
}

type outboxStore interface {
	store.Store
	store.Outbox
}

func names(evs []store.Event) string {
	s := ""
	for _, e := range evs {
		s += e.Name + " "
	}
	return s
}

// testEventsWithChat: events are written with the chat write that carries
// them, and not at all when it fails.
func testEventsWithChat(t *testing.T, s outboxStore) {
	ctx := context.Background()
	c := newChat("ev1", "s", engine.StatusActive)
	must(t, "create", s.CreateChatEvents(ctx, c, []store.Event{store.NewEvent("conversation.created", c.ID, map[string]any{"n": float64(1)})}))
	stale := *c
	c.Attributes["n"] = float64(1)
	must(t, "update", s.UpdateChatEvents(ctx, c, nil, []store.Event{store.NewEvent("order.requested", c.ID, nil), store.NewEvent("conversation.updated", c.ID, nil)}))
	err := s.UpdateChatEvents(ctx, &stale, nil, []store.Event{store.NewEvent("lost.event", c.ID, nil)})
	wantErr(t, "stale update", err, store.ErrConflict)
	must(t, "append", s.AppendEvents(ctx, []store.Event{store.NewEvent("contact.updated", "user:u", nil)}))
	evs, err := s.ClaimEvents(ctx, "w1", time.Now().Add(time.Minute), 100)
	must(t, "claim", err)
	if got, want := names(evs), "conversation.created order.requested conversation.updated contact.updated "; got != want {
		t.Fatalf("claimed %q, want %q", got, want)
	}
	if evs[0].Data["n"] != float64(1) || evs[0].Stream != c.ID || evs[0].Time.IsZero() {
		t.Errorf("event %+v", evs[0])
	}
	got, err := s.GetChat(ctx, c.ID)
	must(t, "get", err)
	if got.Rev != 2 {
		t.Errorf("rev %d, want 2", got.Rev)
	}
}

// testEventLeases: a leased event is not claimed by another owner until
// the lease ends, nor are later events of its stream; deleted events are
// gone.
func testEventLeases(t *testing.T, s outboxStore) {
	ctx := context.Background()
	a1, a2 := store.NewEvent("x.one", "A", nil), store.NewEvent("x.two", "A", nil)
	b1 := store.NewEvent("x.one", "B", nil)
	must(t, "append", s.AppendEvents(ctx, []store.Event{a1}))
	must(t, "append", s.AppendEvents(ctx, []store.Event{b1, a2}))
	evs, err := s.ClaimEvents(ctx, "w1", time.Now().Add(time.Minute), 1)
	must(t, "claim w1", err)
	if len(evs) != 1 || evs[0].ID != a1.ID {
		t.Fatalf("w1 claimed %v, want a1", evs)
	}
	evs, err = s.ClaimEvents(ctx, "w2", time.Now().Add(200*time.Millisecond), 10)
	must(t, "claim w2", err)
	if len(evs) != 1 || evs[0].ID != b1.ID {
		t.Fatalf("w2 claimed %s, want only b1 (stream A is held by w1)", names(evs))
	}
	must(t, "delete", s.DeleteEvents(ctx, []string{a1.ID}))
	// w2's lease on b1 runs out: w1 may take it, and a2 now that a1 is gone.
	time.Sleep(300 * time.Millisecond)
	evs, err = s.ClaimEvents(ctx, "w1", time.Now().Add(time.Minute), 10)
	must(t, "claim again", err)
	// Streams are independent: b1 and a2 may come in either order.
	if len(evs) != 2 || !((evs[0].ID == b1.ID && evs[1].ID == a2.ID) || (evs[0].ID == a2.ID && evs[1].ID == b1.ID)) {
		t.Fatalf("claimed %q, want b1 and a2", names(evs))
	}
	must(t, "delete", s.DeleteEvents(ctx, []string{b1.ID, a2.ID}))
	evs, err = s.ClaimEvents(ctx, "w3", time.Now().Add(time.Minute), 10)
	must(t, "claim empty", err)
	if len(evs) != 0 {
		t.Fatalf("claimed %q from an empty outbox", names(evs))
	}
}

func testDeliveries(t *testing.T, s outboxStore) {
	ctx := context.Background()
	sub := store.Subscription{URL: "https://example.com/hook", Events: []string{"*"}, Secret: "k", Headers: map[string]string{"X-A": "b"}}
	must(t, "create subscription", s.CreateSubscription(ctx, &sub))
	got, err := s.GetSubscription(ctx, sub.ID)
	must(t, "get subscription", err)
	same(t, "subscription", got, sub)
	list, err := s.ListSubscriptions(ctx)
	must(t, "list", err)
	if len(list) != 1 {
		t.Fatalf("%d subscriptions", len(list))
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ds []store.Delivery
	for i := 0; i < 3; i++ {
		e := store.NewEvent(fmt.Sprintf("x.e%d", i), "A", nil)
		at := now.Add(time.Duration(i) * time.Millisecond)
		ds = append(ds, store.Delivery{ID: store.DeliveryID(e.ID, sub.ID), SubscriptionID: sub.ID, Event: e,
			Status: store.DeliveryPending, NextAt: at, CreatedAt: at, UpdatedAt: at})
	}
	ds[2].NextAt = now.Add(time.Hour)
	must(t, "add", s.AddDeliveries(ctx, ds))
	must(t, "add again", s.AddDeliveries(ctx, ds[:1]))
	claimed, err := s.ClaimDeliveries(ctx, "w1", now.Add(time.Second), now.Add(time.Minute), 10)
	must(t, "claim", err)
	if len(claimed) != 2 || claimed[0].ID != ds[0].ID || claimed[1].ID != ds[1].ID {
		t.Fatalf("claimed %d deliveries, want the 2 due in order", len(claimed))
	}
	other, err := s.ClaimDeliveries(ctx, "w2", now.Add(time.Second), now.Add(time.Minute), 10)
	must(t, "claim w2", err)
	if len(other) != 0 {
		t.Fatalf("w2 claimed %d leased deliveries", len(other))
	}
	d := claimed[0]
	d.Attempts = append(d.Attempts, store.Attempt{Time: now, Status: 500, Error: "Request failed with status code 500"})
	wantErr(t, "save by another owner", s.SaveDelivery(ctx, "w2", &d), store.ErrConflict)
	d.Status = store.DeliverySucceeded
	must(t, "save", s.SaveDelivery(ctx, "w1", &d))
	back, err := s.GetDelivery(ctx, d.ID)
	must(t, "get", err)
	if back.Status != store.DeliverySucceeded || len(back.Attempts) != 1 || back.Attempts[0].Status != 500 {
		t.Errorf("delivery %+v", back)
	}
	// A succeeded delivery is not claimed again; a pending one after its lease is freed.
	must(t, "release", s.SaveDelivery(ctx, "w1", &claimed[1]))
	again, err := s.ClaimDeliveries(ctx, "w2", now.Add(time.Second), now.Add(time.Minute), 10)
	must(t, "claim again", err)
	if len(again) != 1 || again[0].ID != ds[1].ID {
		t.Fatalf("claimed %d, want the pending one", len(again))
	}
	all, err := s.ListDeliveries(ctx, sub.ID, 10)
	must(t, "list deliveries", err)
	if len(all) != 3 || all[0].ID != ds[2].ID {
		t.Fatalf("listed %d deliveries, want 3 newest first", len(all))
	}
	must(t, "delete subscription", s.DeleteSubscription(ctx, sub.ID))
	_, err = s.GetDelivery(ctx, ds[0].ID)
	wantErr(t, "delivery of a deleted subscription", err, store.ErrNotFound)
	_, err = s.GetSubscription(ctx, sub.ID)
	wantErr(t, "deleted subscription", err, store.ErrNotFound)
	left, err := s.ClaimDeliveries(ctx, "w3", now.Add(2*time.Hour), now.Add(3*time.Hour), 10)
	must(t, "claim after delete", err)
	if len(left) != 0 {
		t.Fatalf("claimed %d deliveries of a deleted subscription", len(left))
	}
}

// testErase: EraseChat erases every stored entry and moves the chat to its
// new user.
func testErase(t *testing.T, s outboxStore) {
	ctx := context.Background()
	c := newChat("er1", "s", engine.StatusActive)
	must(t, "create", s.CreateChatEvents(ctx, c, nil))
	// A reply remembered for a message id holds the answer, personal
	// data and all: erasure forgets it.
	c.Seq++
	c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "user", Input: &engine.Input{Text: "my address is 1 Main St"}, Time: ms(time.Now())})
	must(t, "turn with a reply", s.UpdateChatEvents(ctx, c, &store.Reply{MessageID: "m-secret", Body: []byte(`{"said":"my address is 1 Main St"}`)}, nil))
	if _, ok, err := s.GetReply(ctx, c.ID, "m-secret"); err != nil || !ok {
		t.Fatalf("reply before erasure: ok %v, %v", ok, err)
	}
	other := newChat("er2", "s", engine.StatusActive)
	must(t, "create other", s.CreateChatEvents(ctx, other, nil))
	must(t, "other's turn with a reply", s.UpdateChatEvents(ctx, other, &store.Reply{MessageID: "m-other", Body: []byte(`{}`)}, nil))
	byUser, err := s.ListChats(ctx, store.ChatFilter{UserID: c.UserID})
	must(t, "list by user", err)
	if len(byUser) != 1 || byUser[0].ID != c.ID {
		t.Fatalf("chats of %s: %d", c.UserID, len(byUser))
	}
	old := c.UserID
	c.UserID, c.Attributes, c.UserAttributes = c.ID, map[string]any{}, map[string]any{}
	tr := append([]engine.Entry(nil), c.Transcript...)
	for i := range tr {
		store.EraseEntry(&tr[i])
	}
	c.Transcript = tr
	must(t, "erase", s.EraseChat(ctx, c, []store.Event{store.NewEvent("contact.deleted", "user:"+old, nil)}))
	entries, err := s.GetTranscript(ctx, c.ID, 0, 0)
	must(t, "transcript", err)
	for _, e := range entries {
		if (e.Input != nil && e.Input.Text != store.Erased) || (e.Response != nil && e.Response.Message != store.Erased) {
			t.Errorf("entry %d not erased: %+v", e.Seq, e)
		}
	}
	got, err := s.GetChat(ctx, c.ID)
	must(t, "get", err)
	if len(got.UserAttributes) != 0 || got.UserID != c.ID || got.Transcript[0].Input.Text != store.Erased {
		t.Errorf("chat after erase: %+v", got)
	}
	byUser, err = s.ListChats(ctx, store.ChatFilter{UserID: old})
	must(t, "list by old user", err)
	if len(byUser) != 0 {
		t.Errorf("%d chats still under the erased user", len(byUser))
	}
	if body, ok, err := s.GetReply(ctx, c.ID, "m-secret"); err != nil || ok {
		t.Errorf("reply after erasure: %q, ok %v, %v; want none", body, ok, err)
	}
	kept, err := s.GetTranscript(ctx, other.ID, 0, 0)
	must(t, "other transcript", err)
	if kept[0].Input.Text != "hi" {
		t.Errorf("another user's chat was erased")
	}
	if _, ok, err := s.GetReply(ctx, other.ID, "m-other"); err != nil || !ok {
		t.Errorf("another chat's reply after erasure: ok %v, %v", ok, err)
	}
}

// testEraseDeliveries: EraseDeliveries rewrites the events of the given
// streams' deliveries, whatever their status, and a worker that saves one
// it claimed before does not bring the event back.
func testEraseDeliveries(t *testing.T, s outboxStore) {
	ctx := context.Background()
	sub := store.Subscription{URL: "https://example.com/hook", Events: []string{"*"}}
	must(t, "create subscription", s.CreateSubscription(ctx, &sub))
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ds []store.Delivery
	for i, stream := range []string{"c1", "user:ann", "c2", "c1"} {
		e := store.NewEvent("x.e", stream, map[string]any{"chatId": stream, "email": "ann@example.com"})
		ds = append(ds, store.Delivery{ID: store.DeliveryID(e.ID, sub.ID), SubscriptionID: sub.ID, Event: e,
			Status: store.DeliveryPending, NextAt: now, CreatedAt: now.Add(time.Duration(i)), UpdatedAt: now})
	}
	ds[3].Status, ds[3].NextAt = store.DeliverySucceeded, time.Time{}
	must(t, "add", s.AddDeliveries(ctx, ds))
	// More of one stream than a store may write in one batch.
	var many []store.Delivery
	for i := range 520 {
		e := store.NewEvent("x.many", "c1", map[string]any{"email": "ann@example.com"})
		many = append(many, store.Delivery{ID: store.DeliveryID(e.ID, sub.ID), SubscriptionID: sub.ID, Event: e,
			Status: store.DeliverySucceeded, CreatedAt: now.Add(time.Duration(10 + i)), UpdatedAt: now})
	}
	must(t, "add many", s.AddDeliveries(ctx, many))
	claimed, err := s.ClaimDeliveries(ctx, "w1", now.Add(time.Second), now.Add(time.Minute), 10)
	must(t, "claim", err)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d deliveries, want 3", len(claimed))
	}
	n, err := s.EraseDeliveries(ctx, []string{"c1", "user:ann"}, func(e *store.Event) { e.Data = map[string]any{"erased": true} })
	must(t, "erase deliveries", err)
	if n != 3+len(many) {
		t.Errorf("erased %d deliveries, want %d", n, 3+len(many))
	}
	for _, i := range []int{0, 499, 500, 519} {
		if got, err := s.GetDelivery(ctx, many[i].ID); err != nil || got.Event.Data["email"] != nil {
			t.Errorf("delivery %d of many: %v, %v", i, got.Event.Data, err)
		}
	}
	// A worker in flight saves the delivery it claimed before the erasure.
	d := claimed[0]
	d.Status = store.DeliverySucceeded
	d.Attempts = append(d.Attempts, store.Attempt{Time: now, Status: 200})
	must(t, "save claimed", s.SaveDelivery(ctx, "w1", &d))
	for i, want := range []bool{true, true, false, true} {
		got, err := s.GetDelivery(ctx, ds[i].ID)
		must(t, "get", err)
		if erased := got.Event.Data["email"] == nil && got.Event.Data["erased"] == true; erased != want {
			t.Errorf("delivery %d (stream %s): data %v, erased %v, want %v", i, ds[i].Event.Stream, got.Event.Data, erased, want)
		}
		if got.Event.ID != ds[i].Event.ID || got.Event.Name != "x.e" {
			t.Errorf("delivery %d: event %+v", i, got.Event)
		}
	}
	got, err := s.GetDelivery(ctx, d.ID)
	must(t, "get saved", err)
	if got.Status != store.DeliverySucceeded || len(got.Attempts) != 1 {
		t.Errorf("saved delivery: status %s, %d attempts", got.Status, len(got.Attempts))
	}
}

// testPruneDeliveries: PruneDeliveries removes finished deliveries last
// updated before a time, oldest first, up to a number, and nothing pending.
func testPruneDeliveries(t *testing.T, s outboxStore) {
	ctx := context.Background()
	sub := store.Subscription{URL: "https://example.com/hook", Events: []string{"*"}}
	must(t, "create subscription", s.CreateSubscription(ctx, &sub))
	t0 := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	status := []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryFailed, store.DeliveryPending, store.DeliverySucceeded, store.DeliverySucceeded}
	var ds []store.Delivery
	for i, st := range status {
		e := store.NewEvent("x.e", "c1", nil)
		at := t0.Add(time.Duration(i) * time.Minute)
		d := store.Delivery{ID: store.DeliveryID(e.ID, sub.ID), SubscriptionID: sub.ID, Event: e,
			Status: st, CreatedAt: at, UpdatedAt: at}
		if st == store.DeliveryPending {
			d.NextAt = at
		}
		ds = append(ds, d)
	}
	must(t, "add", s.AddDeliveries(ctx, ds))
	// Before t0+3m: deliveries 0 and 1 are finished, 2 is pending.
	n, err := s.PruneDeliveries(ctx, t0.Add(3*time.Minute), 1)
	must(t, "prune one", err)
	if n != 1 {
		t.Fatalf("pruned %d, want 1", n)
	}
	if _, err := s.GetDelivery(ctx, ds[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the oldest finished delivery is still there: %v", err)
	}
	n, err = s.PruneDeliveries(ctx, t0.Add(3*time.Minute), 100)
	must(t, "prune", err)
	if n != 1 {
		t.Fatalf("pruned %d, want 1 (the failed one)", n)
	}
	list, err := s.ListDeliveries(ctx, sub.ID, 100)
	must(t, "list", err)
	if len(list) != 3 {
		t.Fatalf("%d deliveries left, want 3", len(list))
	}
	for _, d := range list {
		if d.ID == ds[0].ID || d.ID == ds[1].ID {
			t.Errorf("pruned delivery %s still listed", d.ID)
		}
	}
	// A pending delivery is never pruned; once saved finished, it is by
	// when it was saved (now).
	claimed, err := s.ClaimDeliveries(ctx, "w1", time.Now(), time.Now().Add(time.Minute), 10)
	must(t, "claim", err)
	if len(claimed) != 1 || claimed[0].ID != ds[2].ID {
		t.Fatalf("claimed %d deliveries", len(claimed))
	}
	n, err = s.PruneDeliveries(ctx, time.Now().Add(-time.Second), 100)
	must(t, "prune the rest before now", err)
	if n != 2 {
		t.Errorf("pruned %d, want 2", n)
	}
	d := claimed[0]
	d.Status = store.DeliverySucceeded
	must(t, "save", s.SaveDelivery(ctx, "w1", &d))
	if n, err := s.PruneDeliveries(ctx, t0.Add(time.Hour-time.Second), 100); err != nil || n != 0 {
		t.Errorf("pruned %d (%v) before the delivery was saved, want 0", n, err)
	}
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(time.Second), 100); err != nil || n != 1 {
		t.Errorf("pruned %d (%v) after it was saved, want 1", n, err)
	}
	if list, err := s.ListDeliveries(ctx, sub.ID, 100); err != nil || len(list) != 0 {
		t.Errorf("%d deliveries left (%v)", len(list), err)
	}
	must(t, "delete subscription", s.DeleteSubscription(ctx, sub.ID))
}

// testTask: a chat's task is stored with it.
func testTask(t *testing.T, s outboxStore) {
	ctx := context.Background()
	c := newChat("tk1", "s", engine.StatusHandoff)
	now := ms(time.Now())
	c.Task = &engine.Task{ID: "tk1_1", Status: engine.TaskOpen, Data: map[string]any{"topic": "refund"}, CreatedAt: now, UpdatedAt: now}
	must(t, "create", s.CreateChatEvents(ctx, c, nil))
	got, err := s.GetChat(ctx, c.ID)
	must(t, "get", err)
	same(t, "task", got.Task, c.Task)
	list, err := s.ListChats(ctx, store.ChatFilter{Status: engine.StatusHandoff})
	must(t, "list", err)
	if len(list) != 1 || list[0].Task == nil || list[0].Task.ID != "tk1_1" {
		t.Fatalf("listed %+v", list)
	}
}

// testEventsReopen: events, subscriptions and deliveries survive a reopen;
// leases do not outlive the store.
func testEventsReopen(t *testing.T, o Opener) {
	ctx := context.Background()
	s1, err := o()
	must(t, "open", err)
	ob := s1.(store.Outbox)
	sub := store.Subscription{URL: "https://example.com/", Events: []string{"a.b"}}
	must(t, "subscribe", ob.CreateSubscription(ctx, &sub))
	c := newChat("re1", "s", engine.StatusActive)
	e := store.NewEvent("a.b", c.ID, map[string]any{"k": "v"})
	must(t, "create", ob.CreateChatEvents(ctx, c, []store.Event{e}))
	_, err = ob.ClaimEvents(ctx, "gone", time.Now().Add(time.Second), 10)
	must(t, "claim", err)
	must(t, "close", s1.Close())
	s2 := open(t, o)
	ob = s2.(store.Outbox)
	// The embedded store forgets leases with the process; a shared one
	// keeps them until they run out.
	time.Sleep(1100 * time.Millisecond)
	evs, err := ob.ClaimEvents(ctx, "new", time.Now().Add(time.Minute), 10)
	must(t, "claim after reopen", err)
	if len(evs) != 1 || evs[0].ID != e.ID || evs[0].Data["k"] != "v" {
		t.Fatalf("claimed %+v after reopen", evs)
	}
	if _, err := ob.GetSubscription(ctx, sub.ID); err != nil {
		t.Fatalf("subscription after reopen: %v", err)
	}
}
