package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/webhook"
)

// gate is a loopback service whose calls wait until released; it counts
// the calls that arrived.
type gate struct {
	url     string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	calls   atomic.Int32
}

func newGate(t *testing.T) *gate {
	g := &gate{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		g.calls.Add(1)
		g.arrived <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{}`)
	})
	t.Cleanup(g.open)
	g.url = srv.URL
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-g.arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("calls did not arrive")
		}
	}
}

// callAsync starts a call and returns its error channel.
func callAsync(c *webhook.Client, conn *webhook.Connection) chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), conn, &webhook.Request{})
		ch <- err
	}()
	return ch
}

func TestMaxInFlight(t *testing.T) {
	tests := []struct {
		name       string
		server     int // the client's MaxInFlight
		connection int // the connection's
		bound      int
	}{
		{"connection's bound", 0, 2, 2},
		{"server's bound", 3, 0, 3},
		{"connection's over the server's", 1, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := webhook.NewClient(webhook.Options{AllowPrivate: true, MaxInFlight: tt.server, QueueWait: 20 * time.Millisecond})
			g := newGate(t)
			conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: g.url, MaxInFlight: tt.connection}
			var held []chan error
			for range tt.bound {
				held = append(held, callAsync(c, conn))
			}
			g.wait(t, tt.bound)
			_, err := c.Call(context.Background(), conn, &webhook.Request{})
			want := "Too many calls in flight to this connection (" + strconv.Itoa(tt.bound) + ")"
			if got := reason(err); got != want || !errors.Is(err, webhook.ErrBusy) {
				t.Errorf("call over the bound: %v, want %q", err, want)
			}
			if n := int(g.calls.Load()); n != tt.bound {
				t.Errorf("the service saw %d calls, want %d", n, tt.bound)
			}
			// Another connection of the same service is not held.
			other := &webhook.Connection{StoryID: "s", ID: "other", URL: g.url}
			o := callAsync(c, other)
			g.wait(t, 1)
			g.open()
			for _, ch := range append(held, o) {
				if err := <-ch; err != nil {
					t.Errorf("held call: %v", err)
				}
			}
		})
	}
}

// TestMaxInFlightWaits: a call over the bound waits for a free slot.
func TestMaxInFlightWaits(t *testing.T) {
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, QueueWait: time.Minute})
	g := newGate(t)
	conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: g.url, MaxInFlight: 1, Timeout: time.Minute}
	first := callAsync(c, conn)
	g.wait(t, 1)
	second := callAsync(c, conn)
	select {
	case err := <-second:
		t.Fatalf("second call did not wait: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("the service saw %d calls while the bound was reached", n)
	}
	g.open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("waiting call: %v", err)
	}
}

// flaky is a loopback service answering status while failing is set, else {}.
type flaky struct {
	url     string
	mu      sync.Mutex
	status  int
	calls   int
	slowFor time.Duration
}

func newFlaky(t *testing.T, status int) *flaky {
	f := &flaky{status: status}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.calls++
		status, slow := f.status, f.slowFor
		f.mu.Unlock()
		if slow > 0 {
			select {
			case <-time.After(slow):
			case <-r.Context().Done():
			}
		}
		if status != 200 {
			w.WriteHeader(status)
			io.WriteString(w, `{"error":"boom"}`)
			return
		}
		io.WriteString(w, `{}`)
	})
	f.url = srv.URL
	return f
}

func (f *flaky) set(status int, slow time.Duration) {
	f.mu.Lock()
	f.status, f.slowFor = status, slow
	f.mu.Unlock()
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func do(c *webhook.Client, conn *webhook.Connection) error {
	_, err := c.Call(context.Background(), conn, &webhook.Request{})
	return err
}

func TestBreakerOpens(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		retries int
		reason  string
		opens   bool
	}{
		{"500", 500, 0, "Request failed with status code 500: boom", true},
		{"503 with retries counts once per call", 503, 2, "Request failed with status code 503: boom", true},
		{"404 is the service's answer", 404, 0, "Request failed with status code 404: boom", false},
		{"429 is the service's answer", 429, 0, "Request failed with status code 429: boom", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := webhook.NewClient(webhook.Options{AllowPrivate: true, Backoff: time.Millisecond, BreakerFailures: 3, BreakerOpen: time.Hour})
			f := newFlaky(t, tt.status)
			conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: f.url, Retries: tt.retries}
			for i := range 3 {
				if got := reason(do(c, conn)); got != tt.reason {
					t.Fatalf("call %d: %q, want %q", i+1, got, tt.reason)
				}
			}
			sent := f.count()
			if want := 3 * (tt.retries + 1); sent != want {
				t.Errorf("the service saw %d requests, want %d", sent, want)
			}
			err := do(c, conn)
			if !tt.opens {
				if got := reason(err); got != tt.reason {
					t.Errorf("4th call: %q, want %q", got, tt.reason)
				}
				return
			}
			want := "Circuit open: 3 failures in a row (last: " + tt.reason + "), next probe at "
			if got := reason(err); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " UTC") || !errors.Is(err, webhook.ErrCircuitOpen) {
				t.Errorf("4th call: %q, want %q…", got, want)
			}
			if f.count() != sent {
				t.Errorf("the open circuit let a call through")
			}
			// Other connections of the same service are not affected.
			f.set(200, 0)
			if err := do(c, &webhook.Connection{StoryID: "s", ID: "other", URL: f.url}); err != nil {
				t.Errorf("other connection: %v", err)
			}
		})
	}
}

func TestBreakerNetworkErrors(t *testing.T) {
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: 2, BreakerOpen: time.Hour})
	f := newFlaky(t, 200)
	f.set(200, 5*time.Second)
	timeouts := &webhook.Connection{StoryID: "s", ID: "slow", URL: f.url, Timeout: 50 * time.Millisecond}
	for range 2 {
		if got := reason(do(c, timeouts)); got != "Request timed out after 50ms" {
			t.Fatalf("reason %q", got)
		}
	}
	if got := reason(do(c, timeouts)); !strings.HasPrefix(got, "Circuit open: 2 failures in a row (last: Request timed out after 50ms)") {
		t.Errorf("after two timeouts: %q", got)
	}
	refused := &webhook.Connection{StoryID: "s", ID: "down", URL: closedURL(t)}
	for range 2 {
		do(c, refused)
	}
	if got := reason(do(c, refused)); !strings.HasPrefix(got, "Circuit open: 2 failures in a row (last: Connection refused)") {
		t.Errorf("after two refused connections: %q", got)
	}
}

func TestBreakerIgnoresCanceledCalls(t *testing.T) {
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: 1, BreakerOpen: time.Hour})
	f := newFlaky(t, 200)
	f.set(200, 5*time.Second)
	conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: f.url}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.Call(ctx, conn, &webhook.Request{})
		cancel()
		if err != context.DeadlineExceeded {
			t.Fatalf("err = %v, want the context's", err)
		}
	}
	f.set(200, 0)
	if err := do(c, conn); err != nil {
		t.Errorf("after calls the caller gave up on: %v", err)
	}
}

func TestBreakerHalfOpen(t *testing.T) {
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: 2, BreakerOpen: 100 * time.Millisecond, BreakerProbes: 1})
	f := newFlaky(t, 500)
	conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: f.url}
	open := func() {
		t.Helper()
		for range 2 {
			do(c, conn)
		}
		if err := do(c, conn); !errors.Is(err, webhook.ErrCircuitOpen) {
			t.Fatalf("circuit not open: %v", err)
		}
	}
	open()

	// A failed probe opens the circuit again.
	time.Sleep(150 * time.Millisecond)
	if got := reason(do(c, conn)); got != "Request failed with status code 500: boom" {
		t.Fatalf("probe: %q", got)
	}
	if got := reason(do(c, conn)); !strings.HasPrefix(got, "Circuit open: a probe failed (last: Request failed with status code 500: boom)") {
		t.Fatalf("after a failed probe: %q", got)
	}

	// While a probe is in flight, other calls fail fast.
	time.Sleep(150 * time.Millisecond)
	f.set(200, 300*time.Millisecond)
	probe := callAsync(c, conn)
	for f.count() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := reason(do(c, conn)); got != "Circuit half-open: probe calls are under way (last failure: Request failed with status code 500: boom)" {
		t.Errorf("during the probe: %q", got)
	}
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}

	// The probe's success closed the circuit: failures count from zero.
	f.set(500, 0)
	if got := reason(do(c, conn)); got != "Request failed with status code 500: boom" {
		t.Errorf("closed circuit, first failure: %q", got)
	}
	f.set(200, 0)
	if err := do(c, conn); err != nil {
		t.Errorf("closed circuit: %v", err)
	}
}

func TestBreakerOff(t *testing.T) {
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, BreakerFailures: -1, MaxInFlight: -1})
	f := newFlaky(t, 500)
	conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: f.url}
	for range 20 {
		if got := reason(do(c, conn)); got != "Request failed with status code 500: boom" {
			t.Fatalf("reason %q", got)
		}
	}
}

// closedURL is the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

type failing struct{}

func (failing) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 500, Body: io.NopCloser(strings.NewReader(`{"error":"boom"}`)), Header: http.Header{}, Request: r}, nil
}

// TestBreakerOffWithTransport: mocked calls (story tests) have no circuit
// unless one is asked for.
func TestBreakerOffWithTransport(t *testing.T) {
	c := webhook.NewClient(webhook.Options{Transport: failing{}})
	conn := &webhook.Connection{StoryID: "s", ID: "crm", URL: "https://crm.example.com/hook"}
	for range 2 * webhook.DefaultBreakerFailures {
		if got := reason(do(c, conn)); got != "Request failed with status code 500: boom" {
			t.Fatalf("reason %q", got)
		}
	}
	c = webhook.NewClient(webhook.Options{Transport: failing{}, BreakerFailures: 1, BreakerOpen: time.Hour})
	do(c, conn)
	if err := do(c, conn); !errors.Is(err, webhook.ErrCircuitOpen) {
		t.Errorf("asked-for circuit: %v", err)
	}
}
