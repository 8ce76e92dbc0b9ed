package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Faults: a store that does not answer in time, a disk below its
// watermark. Requests then answer 503 store_unavailable or storage_full
// with Retry-After, and GET /readyz says which check fails; the server
// stays up and recovers by itself (operations.md, "Faults").

// DefaultStoreTimeout bounds one store operation of a request.
const DefaultStoreTimeout = 5 * time.Second

// readyPingTimeout bounds /readyz's store ping.
const readyPingTimeout = time.Second

// retryAfter is the Retry-After (seconds) of 503 answers by code.
var retryAfter = map[string]string{"storage_full": "30", "store_unavailable": "5"}

// errStoreTimeout is the cause of a store operation's deadline.
var errStoreTimeout = fmt.Errorf("%w: no answer within the store timeout", store.ErrUnavailable)

// boundedStore gives every store operation of a request at most timeout
// (the turn's own deadline is longer: it includes webhook calls); an
// operation that runs out of it fails with store.ErrUnavailable.
type boundedStore struct {
	st      store.Store
	out     store.Outbox // nil: the store keeps no events
	timeout time.Duration
	// inProcess: st is a store.InProcess (no deadline per operation).
	inProcess bool
	// failing is set when an operation finds the store unavailable and
	// cleared when one that reaches it gets an answer: meanwhile turns read
	// their chat from the store, not from a cache (GetChatForTurn).
	failing atomic.Bool
}

// bound starts an operation: done ends it, wrapping store.ErrUnavailable
// around a failure past the store timeout. The driver may give up on its
// socket a little before the context ends: a timeout while the request's
// own context is still alive is the store's too.
func (b *boundedStore) bound(parent context.Context) (ctx context.Context, done func(error) error) {
	return b.op(parent, true)
}

// op is bound; reaches tells whether the operation always reaches the
// store (not a cache), so that its answer shows the store answers.
// An in-process store (store.InProcess) gets the parent context as it is:
// no operation of it waits on one, and a deadline per operation cost a
// turn several allocations.
func (b *boundedStore) op(parent context.Context, reaches bool) (ctx context.Context, done func(error) error) {
	cancel := func() {}
	ctx = parent
	if !b.inProcess {
		ctx, cancel = context.WithTimeoutCause(parent, b.timeout, errStoreTimeout)
	}
	return ctx, func(err error) error {
		defer cancel()
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			var ne net.Error
			timedOut := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
			if errors.Is(context.Cause(ctx), errStoreTimeout) || timedOut && parent.Err() == nil {
				err = fmt.Errorf("%w (%w)", errStoreTimeout, err)
			}
		}
		switch {
		case err != nil && (errors.Is(err, store.ErrUnavailable) || storeUnavailable(err)):
			b.failing.Store(true)
		case reaches && parent.Err() == nil && !errors.Is(err, store.ErrFull):
			b.failing.Store(false)
		}
		return err
	}
}

// GetChatForTurn is the store's cached read for a turn (turnReader), or
// GetChat: for a store without one, and while the store is failing.
func (b *boundedStore) GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	r, ok := b.st.(turnReader)
	if !ok || b.failing.Load() {
		return b.GetChat(ctx, id)
	}
	ctx, done := b.op(ctx, false)
	c, err := r.GetChatForTurn(ctx, id)
	return c, done(err)
}

func (b *boundedStore) PutStory(ctx context.Context, id string, source []byte) (int, bool, error) {
	ctx, done := b.bound(ctx)
	v, created, err := b.st.PutStory(ctx, id, source)
	return v, created, done(err)
}

func (b *boundedStore) GetStory(ctx context.Context, id string, version int) (store.StoryRecord, error) {
	ctx, done := b.bound(ctx)
	r, err := b.st.GetStory(ctx, id, version)
	return r, done(err)
}

func (b *boundedStore) ListStories(ctx context.Context) ([]store.StoryRecord, error) {
	ctx, done := b.bound(ctx)
	rs, err := b.st.ListStories(ctx)
	return rs, done(err)
}

func (b *boundedStore) DeleteStory(ctx context.Context, id string) error {
	ctx, done := b.bound(ctx)
	return done(b.st.DeleteStory(ctx, id))
}

func (b *boundedStore) CreateChat(ctx context.Context, c *engine.Chat) error {
	ctx, done := b.bound(ctx)
	return done(b.st.CreateChat(ctx, c))
}

func (b *boundedStore) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	ctx, done := b.bound(ctx)
	c, err := b.st.GetChat(ctx, id)
	return c, done(err)
}

func (b *boundedStore) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	ctx, done := b.bound(ctx)
	return done(b.st.UpdateChat(ctx, c, reply))
}

func (b *boundedStore) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	ctx, done := b.bound(ctx)
	es, err := b.st.GetTranscript(ctx, chatID, afterSeq, limit)
	return es, done(err)
}

func (b *boundedStore) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	ctx, done := b.op(ctx, false) // the MongoDB store answers from its cache
	body, ok, err := b.st.GetReply(ctx, chatID, messageID)
	return body, ok, done(err)
}

func (b *boundedStore) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	ctx, done := b.bound(ctx)
	cs, err := b.st.ListChats(ctx, f)
	return cs, done(err)
}

func (b *boundedStore) CreateConnection(ctx context.Context, c *store.Connection) error {
	ctx, done := b.bound(ctx)
	return done(b.st.CreateConnection(ctx, c))
}

func (b *boundedStore) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	ctx, done := b.bound(ctx)
	c, err := b.st.GetConnection(ctx, id)
	return c, done(err)
}

func (b *boundedStore) ListConnections(ctx context.Context, storyID string) ([]store.Connection, error) {
	ctx, done := b.bound(ctx)
	cs, err := b.st.ListConnections(ctx, storyID)
	return cs, done(err)
}

func (b *boundedStore) UpdateConnection(ctx context.Context, c *store.Connection) error {
	ctx, done := b.bound(ctx)
	return done(b.st.UpdateConnection(ctx, c))
}

func (b *boundedStore) DeleteConnection(ctx context.Context, id string) error {
	ctx, done := b.bound(ctx)
	return done(b.st.DeleteConnection(ctx, id))
}

func (b *boundedStore) SetConnectionError(ctx context.Context, id, msg string) error {
	ctx, done := b.bound(ctx)
	return done(b.st.SetConnectionError(ctx, id, msg))
}

// Close does nothing: the server does not close the store.
func (b *boundedStore) Close() error { return nil }

func (b *boundedStore) CreateChatEvents(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	ctx, done := b.bound(ctx)
	return done(b.out.CreateChatEvents(ctx, c, evs))
}

func (b *boundedStore) UpdateChatEvents(ctx context.Context, c *engine.Chat, reply *store.Reply, evs []store.Event) error {
	ctx, done := b.bound(ctx)
	return done(b.out.UpdateChatEvents(ctx, c, reply, evs))
}

func (b *boundedStore) EraseChat(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	ctx, done := b.bound(ctx)
	return done(b.out.EraseChat(ctx, c, evs))
}

func (b *boundedStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	ctx, done := b.bound(ctx)
	return done(b.out.AppendEvents(ctx, evs))
}

func (b *boundedStore) ClaimEvents(ctx context.Context, owner string, until time.Time, max int) ([]store.Event, error) {
	ctx, done := b.bound(ctx)
	evs, err := b.out.ClaimEvents(ctx, owner, until, max)
	return evs, done(err)
}

func (b *boundedStore) DeleteEvents(ctx context.Context, ids []string) error {
	ctx, done := b.bound(ctx)
	return done(b.out.DeleteEvents(ctx, ids))
}

func (b *boundedStore) CreateSubscription(ctx context.Context, sub *store.Subscription) error {
	ctx, done := b.bound(ctx)
	return done(b.out.CreateSubscription(ctx, sub))
}

func (b *boundedStore) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	ctx, done := b.bound(ctx)
	sub, err := b.out.GetSubscription(ctx, id)
	return sub, done(err)
}

func (b *boundedStore) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	ctx, done := b.bound(ctx)
	subs, err := b.out.ListSubscriptions(ctx)
	return subs, done(err)
}

func (b *boundedStore) DeleteSubscription(ctx context.Context, id string) error {
	ctx, done := b.bound(ctx)
	return done(b.out.DeleteSubscription(ctx, id))
}

func (b *boundedStore) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	ctx, done := b.bound(ctx)
	return done(b.out.AddDeliveries(ctx, ds))
}

func (b *boundedStore) ClaimDeliveries(ctx context.Context, owner string, now, until time.Time, max int) ([]store.Delivery, error) {
	ctx, done := b.bound(ctx)
	ds, err := b.out.ClaimDeliveries(ctx, owner, now, until, max)
	return ds, done(err)
}

func (b *boundedStore) SaveDelivery(ctx context.Context, owner string, d *store.Delivery) error {
	ctx, done := b.bound(ctx)
	return done(b.out.SaveDelivery(ctx, owner, d))
}

func (b *boundedStore) GetDelivery(ctx context.Context, id string) (store.Delivery, error) {
	ctx, done := b.bound(ctx)
	d, err := b.out.GetDelivery(ctx, id)
	return d, done(err)
}

func (b *boundedStore) ListDeliveries(ctx context.Context, subID string, limit int) ([]store.Delivery, error) {
	ctx, done := b.bound(ctx)
	ds, err := b.out.ListDeliveries(ctx, subID, limit)
	return ds, done(err)
}

func (b *boundedStore) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, done := b.bound(ctx)
	n, err := b.out.PruneDeliveries(ctx, before, limit)
	return n, done(err)
}

// EraseDeliveries has the request's context only: it may read every
// delivery (the embedded store) and must not stop half way.
func (b *boundedStore) EraseDeliveries(ctx context.Context, streams []string, erase func(*store.Event)) (int, error) {
	return b.out.EraseDeliveries(ctx, streams, erase)
}

var (
	_ store.Store  = (*boundedStore)(nil)
	_ store.Outbox = (*boundedStore)(nil)
	_ turnReader   = (*boundedStore)(nil)
)

// writable fails (storage_full) while the store refuses writes: a turn
// checks it before it runs, so that no webhook runs for a turn the store
// cannot record.
func (s *Server) writable() error {
	if w, ok := s.rawStore.(store.Writable); ok {
		return w.Writable()
	}
	return nil
}

// faultError maps the store's fault errors; nil for others.
func faultError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrFull):
		return &Error{Status: http.StatusServiceUnavailable, Code: "storage_full",
			Message: "the server's disk is full; writes are refused until space is freed, reads still work", Err: err}
	case errors.Is(err, store.ErrUnavailable), storeUnavailable(err):
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store cannot be reached; try again", Err: err}
	}
	return nil
}

// Readiness: GET /readyz.

// readyAnswer is GET /readyz's answer: each check "ok" or what fails.
type readyAnswer struct {
	// Status is ready or not_ready.
	Status string `json:"status"`
	// Error and Code (not_ready) are there when a check fails.
	Error  string            `json:"error,omitempty"`
	Code   string            `json:"code,omitempty"`
	Checks map[string]string `json:"checks"`
}

func init() {
	document(operation{Method: "GET", Path: "/readyz", Tag: "server", Public: true,
		Summary: "Readiness: the store answers, the disk is above its watermark, the story files are stored",
		Responses: []answer{{Status: 200, Body: readyAnswer{}, Description: "ready"},
			{Status: 503, Body: readyAnswer{}, Description: "not ready: the failing checks say why"}}})
}

// readyChecks are /readyz's checks, in order.
var readyChecks = []string{"store", "disk", "stories"}

// readiness runs the checks. The store ping's result is kept for a
// second (probes and scrapes come often); the others are read each time.
type readiness struct {
	s      *Server
	mu     sync.Mutex
	pinged time.Time
	ping   string // "" (ok) or the ping's failure
}

// check maps each check to "" (ok) or its failure.
func (r *readiness) check() map[string]string {
	res := map[string]string{"store": r.pingStore(), "disk": "", "stories": ""}
	if err := r.s.writable(); err != nil {
		res["disk"] = oneLine(err.Error())
	}
	if n := r.s.storiesWaiting(); n > 0 {
		res["stories"] = fmt.Sprintf("%d story files wait to be stored (the store refused them; retried every poll)", n)
	}
	return res
}

func (r *readiness) pingStore() string {
	p, ok := r.s.rawStore.(store.Pinger)
	if !ok {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pinged.IsZero() && time.Since(r.pinged) < time.Second {
		return r.ping
	}
	ctx, cancel := context.WithTimeout(r.s.ctx, min(readyPingTimeout, r.s.storeTimeout))
	defer cancel()
	r.ping = ""
	if err := p.Ping(ctx); err != nil {
		r.ping = oneLine(err.Error())
	}
	r.pinged = time.Now()
	return r.ping
}

// readyz: GET /readyz, 200 when every check passes, else 503 naming the
// failing checks.
func (s *Server) readyz(c *fiber.Ctx) error {
	res := s.ready.check()
	a := readyAnswer{Status: "ready", Checks: map[string]string{}}
	var failed []string
	for _, name := range readyChecks {
		if msg := res[name]; msg != "" {
			a.Checks[name] = msg
			failed = append(failed, name+": "+msg)
		} else {
			a.Checks[name] = "ok"
		}
	}
	if len(failed) == 0 {
		return c.JSON(a)
	}
	a.Status, a.Code, a.Error = "not_ready", "not_ready", "not ready: "+strings.Join(failed, "; ")
	s.metrics.unavailable.WithLabelValues("not_ready").Inc()
	return c.Status(http.StatusServiceUnavailable).JSON(a)
}

// storiesWaiting counts the story files of watched directories that the
// store has not taken yet.
func (s *Server) storiesWaiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.watchers {
		n += int(w.waiting.Load())
	}
	return n
}

// readyCollector exports the checks as storyflow_ready{check}.
type readyCollector struct {
	r    *readiness
	desc *prometheus.Desc
}

func (rc readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rc.desc }

func (rc readyCollector) Collect(ch chan<- prometheus.Metric) {
	res := rc.r.check()
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := 1.0
		if res[n] != "" {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(rc.desc, prometheus.GaugeValue, v, n)
	}
}

// watchFaults registers the readiness gauges and the 503 counter.
func (s *Server) watchFaults() {
	s.ready = &readiness{s: s}
	s.metrics.unavailable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_unavailable_total",
		Help: "503 answers by error code (storage_full, store_unavailable, not_ready, busy, timeout, shutting_down).",
	}, []string{"code"})
	s.metrics.reg.MustRegister(s.metrics.unavailable, readyCollector{r: s.ready, desc: prometheus.NewDesc("storyflow_ready",
		"Readiness checks (GET /readyz) by check (store, disk, stories): 1 passing, 0 failing.", []string{"check"}, nil)})
}
