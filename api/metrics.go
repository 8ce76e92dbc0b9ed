package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/webhook"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (GET /metrics). It observes the engine and the webhook client through
// their observer interfaces and the store through timedStore.
type metrics struct {
	reg         *prometheus.Registry
	turns       *prometheus.CounterVec
	nodes       *prometheus.CounterVec
	nodeSeconds *prometheus.HistogramVec
	calls       *prometheus.HistogramVec
	callFails   *prometheus.CounterVec
	limited     *prometheus.CounterVec
	storeSecs   *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	unavailable *prometheus.CounterVec // faults.go

	nodeCache    sync.Map // node type -> *nodeChildren
	turnCache    children[prometheus.Counter]
	storeCache   children[prometheus.Observer]
	requestCache children[prometheus.Counter]
}

var (
	_ engine.Observer      = (*metrics)(nil)
	_ webhook.CallObserver = (*metrics)(nil)
)

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.turns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_turns_total",
		Help: "Chat turns by story and outcome (active, completed, handoff, failed, error).",
	}, []string{"story", "outcome"})
	m.nodes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_node_runs_total",
		Help: "Node runs by node type and result (ok, error).",
	}, []string{"type", "result"})
	m.nodeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "storyflow_node_run_seconds",
		Help:    "Time of one node run by node type.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30},
	}, []string{"type"})
	m.calls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "storyflow_webhook_call_seconds",
		Help:    "Webhook calls (retries included) by story, connection and result (ok, failed).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
	}, []string{"story", "connection", "result"})
	m.callFails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_webhook_failures_total",
		Help: "Failed webhook calls by story, connection and reason (timeout, refused, blocked, status_4xx, status_5xx, invalid_answer, too_large, canceled, network).",
	}, []string{"story", "connection", "reason"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_rate_limited_total",
		Help: "Requests refused with 429 by route and limit (ip, session).",
	}, []string{"route", "limit"})
	m.storeSecs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "storyflow_store_seconds",
		Help:    "Store operations by operation and result (ok, not_found, conflict, error).",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
	}, []string{"op", "result"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storyflow_http_requests_total",
		Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	m.turnCache.get = func(lvs ...string) prometheus.Counter { return m.turns.WithLabelValues(lvs...) }
	m.storeCache.get = func(lvs ...string) prometheus.Observer { return m.storeSecs.WithLabelValues(lvs...) }
	m.requestCache.get = func(lvs ...string) prometheus.Counter { return m.requests.WithLabelValues(lvs...) }
	m.reg.MustRegister(m.turns, m.nodes, m.nodeSeconds, m.calls, m.callFails, m.limited, m.storeSecs, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// children caches a vector's children by label values: WithLabelValues
// hashes every label on every call, a turn's hot path needs less. Label
// sets are bounded (see operations.md), so is the cache.
type children[T any] struct {
	m   sync.Map // [3]string -> T
	get func(lvs ...string) T
}

func (c *children[T]) with(a, b, d string) T {
	k := [3]string{a, b, d}
	if v, ok := c.m.Load(k); ok {
		return v.(T)
	}
	var v T
	switch {
	case d != "":
		v = c.get(a, b, d)
	case b != "":
		v = c.get(a, b)
	default:
		v = c.get(a)
	}
	c.m.Store(k, v)
	return v
}

// nodeChildren are a node type's series.
type nodeChildren struct {
	ok, failed prometheus.Counter
	seconds    prometheus.Observer
}

// NodeRan implements engine.Observer.
func (m *metrics) NodeRan(nodeType string, d time.Duration, err error) {
	v, ok := m.nodeCache.Load(nodeType)
	if !ok {
		v = &nodeChildren{ok: m.nodes.WithLabelValues(nodeType, "ok"), failed: m.nodes.WithLabelValues(nodeType, "error"),
			seconds: m.nodeSeconds.WithLabelValues(nodeType)}
		m.nodeCache.Store(nodeType, v)
	}
	n := v.(*nodeChildren)
	if err != nil {
		n.failed.Inc()
	} else {
		n.ok.Inc()
	}
	n.seconds.Observe(d.Seconds())
}

// TurnEnded implements engine.Observer.
func (m *metrics) TurnEnded(c *engine.Chat, err error) {
	outcome := string(c.Status)
	if err != nil {
		outcome = "error"
	}
	m.turnCache.with(c.StoryID, outcome, "").Inc()
}

// CallEnded implements webhook.CallObserver.
func (m *metrics) CallEnded(conn *webhook.Connection, d time.Duration, err error) {
	name := conn.Name
	if name == "" {
		name = conn.ID
	}
	res := "ok"
	if err != nil {
		res = "failed"
		m.callFails.WithLabelValues(conn.StoryID, name, webhook.FailureKind(err)).Inc()
	}
	m.calls.WithLabelValues(conn.StoryID, name, res).Observe(d.Seconds())
}

// handoffGauge counts the chats in handoff from the store, at most once
// per handoffEvery, paging through at most maxHandoffCount chats.
type handoffGauge struct {
	st store.Store

	mu    sync.Mutex
	at    time.Time
	count float64
}

const (
	handoffEvery    = 15 * time.Second
	maxHandoffCount = 100_000
)

func (h *handoffGauge) value() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && time.Since(h.at) < handoffEvery {
		return h.count
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, after := 0, ""
	for n < maxHandoffCount {
		chats, err := h.st.ListChats(ctx, store.ChatFilter{Status: engine.StatusHandoff, Limit: maxListed, After: after})
		if err != nil {
			return h.count // the last count stands; store errors show in storyflow_store_seconds
		}
		n += len(chats)
		if len(chats) < maxListed {
			break
		}
		after = chats[len(chats)-1].ID
	}
	h.at, h.count = time.Now(), float64(n)
	return h.count
}

func (m *metrics) watchHandoff(st store.Store) {
	h := &handoffGauge{st: st}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "storyflow_chats_in_handoff",
		Help: "Chats waiting for a human (counted from the store at most every 15s).",
	}, h.value))
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// timedStore measures the store's operations; the methods it does not
// name pass through untimed.
type timedStore struct {
	store.Store
	secs *children[prometheus.Observer]
}

func (t *timedStore) observe(op string, began time.Time, err error) {
	res := "ok"
	switch {
	case errors.Is(err, store.ErrNotFound):
		res = "not_found"
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		res = "conflict"
	case err != nil:
		res = "error"
	}
	t.secs.with(op, res, "").Observe(time.Since(began).Seconds())
}

func (t *timedStore) GetStory(ctx context.Context, id string, version int) (store.StoryRecord, error) {
	began := time.Now()
	r, err := t.Store.GetStory(ctx, id, version)
	t.observe("get_story", began, err)
	return r, err
}

func (t *timedStore) CreateChat(ctx context.Context, c *engine.Chat) error {
	began := time.Now()
	err := t.Store.CreateChat(ctx, c)
	t.observe("create_chat", began, err)
	return err
}

func (t *timedStore) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	began := time.Now()
	c, err := t.Store.GetChat(ctx, id)
	t.observe("get_chat", began, err)
	return c, err
}

// GetChatForTurn passes a store's cached read for turns through (the
// MongoDB store's: a turn then costs no read); other stores' is GetChat.
// Without it the wrapper would hide the store's method from the turn.
func (t *timedStore) GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	r, ok := t.Store.(turnReader)
	if !ok {
		return t.GetChat(ctx, id)
	}
	began := time.Now()
	c, err := r.GetChatForTurn(ctx, id)
	t.observe("get_chat", began, err)
	return c, err
}

func (t *timedStore) UpdateChat(ctx context.Context, c *engine.Chat, reply *store.Reply) error {
	began := time.Now()
	err := t.Store.UpdateChat(ctx, c, reply)
	t.observe("update_chat", began, err)
	return err
}

func (t *timedStore) GetReply(ctx context.Context, chatID, messageID string) ([]byte, bool, error) {
	began := time.Now()
	b, ok, err := t.Store.GetReply(ctx, chatID, messageID)
	t.observe("get_reply", began, err)
	return b, ok, err
}

func (t *timedStore) ListChats(ctx context.Context, f store.ChatFilter) ([]*engine.Chat, error) {
	began := time.Now()
	cs, err := t.Store.ListChats(ctx, f)
	t.observe("list_chats", began, err)
	return cs, err
}

func (t *timedStore) GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error) {
	began := time.Now()
	es, err := t.Store.GetTranscript(ctx, chatID, afterSeq, limit)
	t.observe("get_transcript", began, err)
	return es, err
}
