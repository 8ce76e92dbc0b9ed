package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

// TestFaultCodes: store faults answer 503 with their code, whatever the
// driver wraps them in; errors of the request or of storyflow do not.
func TestFaultCodes(t *testing.T) {
	s := &Server{}
	cases := []struct {
		name string
		err  error
		code string
	}{
		{"disk full", fmt.Errorf("update chat: %w", store.ErrFull), "storage_full"},
		{"store timeout", fmt.Errorf("turn: %w", fmt.Errorf("%w (%w)", errStoreTimeout, context.DeadlineExceeded)), "store_unavailable"},
		{"server selection", errors.New("server selection error: context deadline exceeded, current topology: …"), "store_unavailable"},
		{"shutting down", fmt.Errorf("get chat: %w", mongo.CommandError{Code: 91, Name: "ShutdownInProgress"}), "store_unavailable"},
		{"interrupted at shutdown", fmt.Errorf("get chat: %w", mongo.CommandError{Code: 11600, Name: "InterruptedAtShutdown"}), "store_unavailable"},
		{"ferretdb cut short", fmt.Errorf("update chat: %w", mongo.CommandError{Code: 1, Name: "InternalError", Message: "context canceled after delay"}), "store_unavailable"},
		{"network label", fmt.Errorf("update chat: %w", mongo.CommandError{Code: 0, Labels: []string{"NetworkError"}, Wrapped: io.ErrUnexpectedEOF}), "store_unavailable"},
		{"duplicate key", fmt.Errorf("create chat: %w", mongo.CommandError{Code: 11000, Name: "DuplicateKey"}), "internal"},
		{"bad query", fmt.Errorf("list chats: %w", mongo.CommandError{Code: 2, Name: "BadValue"}), "internal"},
		{"request timeout", fmt.Errorf("turn: %w", context.DeadlineExceeded), "timeout"},
		{"bug", errors.New("something broke"), "internal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := s.toError(c.err)
			if e.Code != c.code {
				t.Fatalf("code %s (status %d), want %s", e.Code, e.Status, c.code)
			}
			if c.code != "internal" && e.Status != 503 {
				t.Fatalf("status %d, want 503", e.Status)
			}
		})
	}
}

// TestBoundedStoreTimeout: a timeout within a store operation is the
// store's (store_unavailable) while the request's own context is alive,
// also when the driver gave up a little before the operation's deadline;
// past the request's own deadline it is the request's (timeout).
func TestBoundedStoreTimeout(t *testing.T) {
	b := &boundedStore{timeout: 20 * time.Millisecond}
	early := fmt.Errorf("read: %w", context.DeadlineExceeded)

	_, done := b.bound(context.Background())
	if err := done(early); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("early driver timeout: %v, want ErrUnavailable", err)
	}
	ctx, done := b.bound(context.Background())
	<-ctx.Done()
	if err := done(ctx.Err()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("past the store timeout: %v, want ErrUnavailable", err)
	}
	parent, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	ctx, done = b.bound(parent)
	<-ctx.Done()
	if err := done(ctx.Err()); errors.Is(err, store.ErrUnavailable) {
		t.Errorf("past the request's deadline: %v, want not ErrUnavailable", err)
	}
	_, done = b.bound(context.Background())
	if err := done(store.ErrNotFound); err != store.ErrNotFound {
		t.Errorf("other errors pass: %v", err)
	}
}

// TestBoundedStoreInProcess: an in-process store's operations get the
// request's context as it is; another store's get the store timeout.
func TestBoundedStoreInProcess(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	local := &boundedStore{timeout: time.Second, inProcess: true}
	ctx, done := local.op(parent, true)
	if ctx != parent {
		t.Error("in-process store: the operation got a context of its own")
	}
	done(nil)
	remote := &boundedStore{timeout: time.Second}
	ctx, done = remote.op(parent, true)
	if _, ok := ctx.Deadline(); !ok || ctx == parent {
		t.Error("remote store: the operation has no deadline")
	}
	if err := done(nil); err != nil || ctx.Err() == nil {
		t.Errorf("remote store: done(nil) = %v, context not cancelled after", err)
	}
	var st store.Store = &embedded.Store{}
	if _, ok := st.(store.InProcess); !ok {
		t.Error("the embedded store is not a store.InProcess")
	}
}
