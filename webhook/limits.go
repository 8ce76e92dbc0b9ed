package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"
)

// Per-connection protection, so that one slow or failing service does not
// hold the chats of other connections: a bound on the calls in flight and
// a circuit breaker.
const (
	// DefaultMaxInFlight is the calls in flight per connection when
	// neither the connection nor the server sets one.
	DefaultMaxInFlight = 64
	// MaxInFlightLimit is the largest max_in_flight a connection may set.
	MaxInFlightLimit = 1000
	// DefaultQueueWait is how long a call waits for a free slot of its
	// connection (at most the connection's timeout) before it fails.
	DefaultQueueWait = time.Second
	// DefaultBreakerFailures is how many failed calls in a row open a
	// connection's circuit.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpen is how long an open circuit fails calls before
	// it lets probes through.
	DefaultBreakerOpen = 30 * time.Second
	// DefaultBreakerProbes is how many calls a half-open circuit lets
	// through; that many successes in a row close it.
	DefaultBreakerProbes = 3
	// limitsBytes bounds the memory of the per-connection states.
	limitsBytes = 16 << 20
	// stateBytes is the size of one state, keys excluded (a rough upper
	// bound: the semaphore, the breaker and its counts).
	stateBytes = 1024
)

// Errors of calls refused by the connection's protection (errors.Is).
var (
	ErrBusy        = errors.New("too many calls in flight")
	ErrCircuitOpen = errors.New("circuit open")
)

// limits holds the state of each connection, bounded in memory: the state
// of a connection not used for a while may be dropped (it then starts
// afresh, closed and empty).
type limits struct {
	states   *otter.Cache[limitKey, *connState]
	max      int // calls in flight per connection; < 0: no bound
	wait     time.Duration
	failures int // < 0: no breaker
	open     time.Duration
	probes   int
	log      *slog.Logger
}

// limitKey names a connection's state. The URL and the bound are part of
// it: a connection given a new address or bound starts afresh.
type limitKey struct {
	story, id, url string
	max            int
}

// connState is one connection's semaphore and breaker.
type connState struct {
	sem *semaphore.Weighted // nil: no bound
	max int
	cb  *gobreaker.TwoStepCircuitBreaker[struct{}] // nil: no breaker

	mu      sync.Mutex
	last    string // reason of the last failure counted
	run     int    // failures in a row that opened the circuit
	opening string // the reason given while the circuit is open
}

func newLimits(o Options) *limits {
	l := &limits{max: o.MaxInFlight, wait: o.QueueWait, failures: o.BreakerFailures,
		open: o.BreakerOpen, probes: o.BreakerProbes, log: o.Logger}
	if o.Transport != nil {
		// Mocked calls (story tests) stay deterministic unless asked.
		if l.max == 0 {
			l.max = -1
		}
		if l.failures == 0 {
			l.failures = -1
		}
	}
	if l.max == 0 {
		l.max = DefaultMaxInFlight
	}
	if l.wait <= 0 {
		l.wait = DefaultQueueWait
	}
	if l.failures == 0 {
		l.failures = DefaultBreakerFailures
	}
	if l.open <= 0 {
		l.open = DefaultBreakerOpen
	}
	if l.probes <= 0 {
		l.probes = DefaultBreakerProbes
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.states = otter.Must(&otter.Options[limitKey, *connState]{
		MaximumWeight: limitsBytes,
		Weigher: func(k limitKey, _ *connState) uint32 {
			return uint32(stateBytes + len(k.story) + len(k.id) + len(k.url))
		},
	})
	return l
}

// state returns conn's state, made on first use.
func (l *limits) state(conn *Connection) *connState {
	k := limitKey{story: conn.StoryID, id: conn.ID, url: conn.URL, max: conn.MaxInFlight}
	if st, ok := l.states.GetIfPresent(k); ok {
		return st
	}
	st, _ := l.states.ComputeIfAbsent(k, func() (*connState, bool) { return l.newState(conn), false })
	return st
}

func (l *limits) newState(conn *Connection) *connState {
	st := &connState{max: conn.MaxInFlight}
	if st.max <= 0 {
		st.max = l.max
	}
	if st.max > 0 {
		st.sem = semaphore.NewWeighted(int64(st.max))
	}
	if l.failures < 0 {
		return st
	}
	story, id := conn.StoryID, conn.ID
	st.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        story + "/" + id,
		MaxRequests: uint32(l.probes),
		Timeout:     l.open,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if int(c.ConsecutiveFailures) < l.failures {
				return false
			}
			st.mu.Lock()
			st.run = int(c.ConsecutiveFailures)
			st.mu.Unlock()
			return true
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errNeutral) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no call back into it.
			st.mu.Lock()
			defer st.mu.Unlock()
			switch to {
			case gobreaker.StateOpen:
				why := fmt.Sprintf("%d failures in a row", st.run)
				if from == gobreaker.StateHalfOpen {
					why = "a probe failed"
				}
				st.opening = fmt.Sprintf("Circuit open: %s (last: %s), next probe at %s",
					why, st.last, time.Now().Add(l.open).UTC().Format("15:04:05 UTC"))
				l.log.Warn("webhook circuit open", "story", story, "connection", id, "reason", st.opening)
			case gobreaker.StateClosed:
				l.log.Info("webhook circuit closed", "story", story, "connection", id)
			}
		},
	})
	return st
}

// errNeutral is an outcome that counts neither as a success nor as a
// failure for the breaker (the caller gave up, or the call was refused
// before anything was sent).
var errNeutral = errors.New("neutral outcome")

// errDown is an outcome counted as a failure.
var errDown = errors.New("service down")

// pass is a call admitted by admit; finish must be called once.
type pass struct {
	st   *connState
	done func(error)
}

// admit lets a call to conn go, or refuses it with an *Error: the circuit
// is open, or all of the connection's slots stay taken for the queue wait
// (at most timeout). It returns ctx's error when ctx ends while waiting.
func (l *limits) admit(ctx context.Context, conn *Connection, timeout time.Duration) (pass, error) {
	st := l.state(conn)
	if st.cb != nil && st.cb.State() == gobreaker.StateOpen {
		return pass{}, st.refusal(gobreaker.ErrOpenState)
	}
	if st.sem != nil && !st.sem.TryAcquire(1) {
		wctx, cancel := context.WithTimeout(ctx, min(l.wait, timeout))
		err := st.sem.Acquire(wctx, 1)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return pass{}, ctx.Err()
			}
			return pass{}, &Error{Reason: fmt.Sprintf("Too many calls in flight to this connection (%d)", st.max), Err: ErrBusy}
		}
	}
	p := pass{st: st}
	if st.cb != nil {
		done, err := st.cb.Allow()
		if err != nil {
			st.release()
			return pass{}, st.refusal(err)
		}
		p.done = done
	}
	return p, nil
}

// refusal is the error of a call the breaker refused.
func (st *connState) refusal(err error) *Error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &Error{Reason: "Circuit half-open: probe calls are under way (last failure: " + st.last + ")", Err: ErrCircuitOpen}
	}
	return &Error{Reason: st.opening, Err: ErrCircuitOpen}
}

func (st *connState) release() {
	if st.sem != nil {
		st.sem.Release(1)
	}
}

// finish reports the outcome of an admitted call, its retries included:
// err is the call's error, nil after an answer came. A call counts against
// the circuit when no answer came (refused or reset connection, timeout,
// DNS or TLS failure) or the answer is a 5xx. A 4xx is the service's
// deliberate answer and an invalid body comes from a service that is up:
// both count as successes. A call the caller gave up on, or to an address
// the server refuses to call, counts as neither.
func (p pass) finish(ctx context.Context, err error) {
	if p.st == nil {
		return
	}
	p.st.release()
	if p.done == nil {
		return
	}
	var e *Error
	switch {
	case err == nil:
		p.done(nil)
	case ctx.Err() != nil || !errors.As(err, &e) || refusedAddress(e.Err):
		p.done(errNeutral)
	case e.down:
		p.st.mu.Lock()
		p.st.last = e.Reason
		p.st.mu.Unlock()
		p.done(errDown)
	default:
		p.done(nil) // the service answered: a refusal (4xx) or a bad answer
	}
}

func refusedAddress(err error) bool {
	if err == nil {
		return false
	}
	_, refused := isRefused(err)
	return refused
}
