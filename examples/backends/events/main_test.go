package main

import (
	"context"
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

// TestReceiver: storyflow's worker delivers a signed event to the receiver
// on loopback; a wrong secret is refused and retried.
func TestReceiver(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	rc := &Receiver{Secret: "whsec", Handle: func(ev Event) { mu.Lock(); got = append(got, ev); mu.Unlock() }}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	w := events.New(events.Options{Store: st, HTTP: webhook.NewClient(webhook.Options{AllowPrivate: true}).HTTP()})
	ev := store.NewEvent("order.requested", "c1", map[string]any{"sku": "A1"})
	good := store.Subscription{ID: "good", URL: srv.URL, Secret: "whsec"}
	if a := w.Send(ctx, &good, &ev); a.Error != "" || a.Status != http.StatusNoContent {
		t.Fatalf("signed delivery: %+v", a)
	}
	if a := w.Send(ctx, &good, &ev); a.Error != "" {
		t.Fatalf("repeated delivery: %+v", a)
	}
	bad := store.Subscription{ID: "bad", URL: srv.URL, Secret: "other"}
	if a := w.Send(ctx, &bad, &ev); a.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %+v", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ID != ev.ID || got[0].Data["sku"] != "A1" || got[0].WebhookID != "good" || time.Since(got[0].Timestamp) > time.Minute {
		t.Fatalf("handled %+v, want the event once", got)
	}
}
