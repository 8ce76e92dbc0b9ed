// Package api is storyflow's HTTP API (SPEC §4) on fiber: stories, chats,
// webhook connections (ChatBot.com's Webhooks API shapes) and health.
//
// A Server runs chat turns one at a time per chat, in arrival order, and
// across processes relies on the store's optimistic concurrency: a turn
// that loses a race is run again on the fresh chat.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/storyflow/storyflow/api/studio"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/webhook"
)

// Defaults of Config.
const (
	DefaultBodyLimit   = 1 << 20
	DefaultTurnTimeout = 5 * time.Minute
	// DefaultStoryCacheBytes bounds the compiled stories kept in memory.
	DefaultStoryCacheBytes = 128 << 20
	// DefaultMaxAttributes bounds a chat's attributes, and its userAttributes,
	// in bytes of JSON.
	DefaultMaxAttributes = 256 << 10
)

// Config configures a Server.
type Config struct {
	// Store keeps stories, chats and connections (required). The server
	// does not close it.
	Store store.Store
	// Token is the bearer token of the management and chat routes (required).
	Token string
	// AllowPrivateWebhooks lets webhooks reach loopback and private addresses.
	AllowPrivateWebhooks bool
	// MaxSteps is how many nodes a turn may run (default 100).
	MaxSteps int
	// BodyLimit is the largest request body in bytes (default 1 MiB).
	BodyLimit int
	// TurnTimeout bounds one chat turn, webhook calls and retries included
	// (default 5 minutes).
	TurnTimeout time.Duration
	// StoreTimeout bounds each store operation of a request (default
	// DefaultStoreTimeout); past it the request answers 503
	// store_unavailable.
	StoreTimeout time.Duration
	// StoryCacheBytes bounds the compiled stories kept in memory (default
	// DefaultStoryCacheBytes).
	StoryCacheBytes int64
	// StoryEnv lists the ${VAR} names stories may use (default
	// stories.DefaultEnv; see stories.Options.Env).
	StoryEnv []string
	// ExprBudget bounds expression evaluation (zero fields: the defaults).
	ExprBudget engine.Budget
	// MaxAttributes bounds a chat's attributes, and its userAttributes, in
	// bytes of JSON (default DefaultMaxAttributes).
	MaxAttributes int
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Register adds custom node types to the server's registry (optional).
	Register func(*engine.Registry) error
	// Webhooks is the webhook client (default: one built from
	// AllowPrivateWebhooks). The server's metrics observe it unless it has
	// an observer already.
	Webhooks *webhook.Client
	// CORSOrigins are the browser origins (scheme://host[:port], or "*")
	// that may use the widget route besides the server's own.
	CORSOrigins []string
	// Rates are the widget route's rate limits (zero fields: defaults).
	Rates RateLimits
	// SessionIdle is how long a widget or platform session keeps its chat
	// without a message (default 30 minutes).
	SessionIdle time.Duration
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For names the client (for rate limits and logs).
	TrustedProxies []string
	// Events delivers the outbox's events (optional): the server wakes it
	// after writes and sends test events with it. Events are written to the
	// outbox (when the store has one) with or without it.
	Events *events.Worker
}

// Server is the HTTP API.
type Server struct {
	st        store.Store
	rawStore  store.Store // Config.Store, for its optional interfaces
	app       *fiber.App
	reg       *engine.Registry
	runner    *engine.Runner
	client    *webhook.Client
	ownClient bool
	stories   *storyCache
	chats     *queue
	conns     *connections
	log       *slog.Logger
	token     string
	bodyLimit int
	timeout   time.Duration
	env       []string
	maxAttrs  int
	metrics   *metrics
	origins   map[string]bool
	rates     RateLimits
	idle      time.Duration
	// outbox is the store's outbox (nil: the store keeps no events).
	outbox       store.Outbox
	subscribers  subscribers
	events       *events.Worker
	allowPrivate bool
	storeTimeout time.Duration
	ready        *readiness

	// ctx is the parent of every turn: it ends only when Shutdown gives up
	// waiting, so turns in flight finish.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	watchers []*watcher
	// stopping is set by Shutdown; listeners are those Serve was given.
	stopping  bool
	listeners []net.Listener
}

// New returns a server; call Listen or Serve to serve it.
func New(cfg Config) (*Server, error) {
	origins, err := checkConfig(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		st: cfg.Store, chats: newQueue(), log: cfg.Logger, token: cfg.Token,
		bodyLimit: cfg.BodyLimit, timeout: cfg.TurnTimeout, client: cfg.Webhooks,
		metrics: newMetrics(), origins: origins, rates: cfg.Rates, idle: cfg.SessionIdle,
	}
	if s.rates.Session == 0 {
		s.rates.Session = DefaultSessionRate
	}
	if s.rates.IP == 0 {
		s.rates.IP = DefaultIPRate
	}
	if s.rates.Window <= 0 {
		s.rates.Window = DefaultRateWindow
	}
	if s.idle <= 0 {
		s.idle = DefaultSessionIdle
	}
	s.metrics.watchHandoff(cfg.Store)
	s.rawStore, s.storeTimeout = cfg.Store, cfg.StoreTimeout
	if g, ok := cfg.Store.(activeChatsGauge); ok {
		g.SetActiveChats(s.chats.active)
	}
	if s.storeTimeout <= 0 {
		s.storeTimeout = DefaultStoreTimeout
	}
	_, inProcess := cfg.Store.(store.InProcess)
	bounded := &boundedStore{st: cfg.Store, timeout: s.storeTimeout, inProcess: inProcess}
	if ob, ok := cfg.Store.(store.Outbox); ok {
		bounded.out, s.outbox = ob, bounded
	}
	s.st = &timedStore{Store: bounded, secs: &s.metrics.storeCache}
	s.watchFaults()
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTurnTimeout
	}
	if s.client == nil {
		s.client = webhook.NewClient(webhook.Options{AllowPrivate: cfg.AllowPrivateWebhooks, Observer: s.metrics})
		s.ownClient = true
	} else {
		s.client.SetObserver(s.metrics)
	}
	size := cfg.StoryCacheBytes
	if size <= 0 {
		size = DefaultStoryCacheBytes
	}
	s.stories = newStoryCache(size)
	s.env = cfg.StoryEnv
	s.maxAttrs = cfg.MaxAttributes
	if s.maxAttrs <= 0 {
		s.maxAttrs = DefaultMaxAttributes
	}
	s.events, s.allowPrivate = cfg.Events, cfg.AllowPrivateWebhooks
	s.conns = newConnections(s.st, s.log)
	s.reg = nodes.NewRegistry(nodes.Options{
		AllowPrivateWebhooks: cfg.AllowPrivateWebhooks,
		Webhooks:             s.client,
		Connections:          s.conns,
		WebhookErrors:        s.conns,
		Logger:               s.log,
	})
	if cfg.Register != nil {
		if err := cfg.Register(s.reg); err != nil {
			return nil, fmt.Errorf("register node types: %w", err)
		}
	}
	s.runner = &engine.Runner{MaxSteps: cfg.MaxSteps, Logger: s.log, Budget: cfg.ExprBudget, MaxAttributes: s.maxAttrs,
		Observer: s.metrics}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.app = s.newApp(cfg.TrustedProxies)
	s.routes()
	return s, nil
}

// checkConfig checks what New cannot default, and returns the allowed
// browser origins.
func checkConfig(cfg *Config) (map[string]bool, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: no store")
	}
	if cfg.Token == "" {
		return nil, errors.New("api: no token")
	}
	o, err := checkOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	for _, p := range cfg.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil && net.ParseIP(p) == nil {
			return nil, fmt.Errorf("api: trusted proxy %q is not an IP address or CIDR", p)
		}
	}
	return o, nil
}

// newApp returns the fiber app, its client IP taken from X-Forwarded-For
// behind the trusted proxies.
func (s *Server) newApp(trustedProxies []string) *fiber.App {
	fc := fiber.Config{
		AppName:               "storyflow",
		BodyLimit:             s.bodyLimit,
		ErrorHandler:          s.errorHandler,
		JSONEncoder:           marshal,
		DisableStartupMessage: true,
		// Route parameters outlive handlers (queue keys, goroutines).
		Immutable:    true,
		ReadTimeout:  30 * time.Second,
		IdleTimeout:  90 * time.Second,
		WriteTimeout: 30 * time.Second,
	}
	if len(trustedProxies) > 0 {
		fc.EnableTrustedProxyCheck = true
		fc.TrustedProxies = trustedProxies
		fc.ProxyHeader = fiber.HeaderXForwardedFor
		fc.EnableIPValidation = true
	}
	return fiber.New(fc)
}

// App returns the fiber app (for app.Test).
func (s *Server) App() *fiber.App { return s.app }

func (s *Server) routes() {
	app := s.app
	app.Use(s.observeRequests)
	app.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			s.log.Error("panic in handler", "method", c.Method(), "path", c.Path(), "panic", e)
		},
	}))
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.readyz)
	studio.Register(app)
	app.Get("/metrics", s.metrics.handler())
	app.Get("/openapi.json", s.openAPI)
	s.channelRoutes(app)

	v1 := app.Group("/v1", s.auth)
	v1.Post("/stories/validate", s.validateStory)
	v1.Get("/stories", s.listStories)
	v1.Put("/stories/:id", s.putStory)
	v1.Get("/stories/:id", s.getStory)
	v1.Delete("/stories/:id", s.deleteStory)
	v1.Get("/stories/:id/graph", s.graphStory)
	v1.Post("/chats", s.createChat)
	v1.Get("/chats", s.listChats)
	v1.Get("/chats/:chatId", s.getChat)
	v1.Post("/chats/:chatId/messages", s.postMessage)
	v1.Get("/chats/:chatId/test", s.chatTest)
	v1.Post("/chats/:chatId/agent-messages", s.postAgentMessage)
	v1.Post("/chats/:chatId/resume", s.resumeChat)
	v1.Get("/tasks", s.listTasks)
	v1.Patch("/tasks/:id", s.patchTask)
	v1.Post("/tasks/:id/complete", s.completeTask)
	v1.Delete("/tasks/:id", s.deleteTask)
	v1.Get("/contacts/:userId", s.getContact)
	v1.Put("/contacts/:userId", s.putContact)
	v1.Delete("/contacts/:userId", s.deleteContact)
	v1.Post("/event-webhooks", s.createSubscription)
	v1.Get("/event-webhooks", s.listSubscriptions)
	v1.Get("/event-webhooks/:id", s.getSubscription)
	v1.Delete("/event-webhooks/:id", s.deleteSubscription)
	v1.Get("/event-webhooks/:id/deliveries", s.listDeliveries)
	v1.Post("/event-webhooks/:id/deliveries/:deliveryId/replay", s.replayDelivery)
	v1.Post("/event-webhooks/:id/test", s.testSubscription)

	v2 := app.Group("/v2/integrations/webhook", s.auth)
	v2.Get("/", s.listConnections)
	v2.Post("/", s.createConnection)
	v2.Get("/:id", s.getConnection)
	v2.Put("/:id", s.updateConnection)
	v2.Delete("/:id", s.deleteConnection)
	v2.Post("/:id/test", s.testConnection)
}

// Serve serves on ln until Shutdown (also when Shutdown came first).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	err := s.app.Listener(lingerListener{ln})
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits for those in flight (turns
// included) until ctx ends; then turns still running are canceled. It stops
// story directory watchers. The store is left open for the caller to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	ws := s.watchers
	s.watchers = nil
	s.stopping = true
	lns := s.listeners
	s.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
	err := s.app.ShutdownWithContext(ctx)
	// A Serve that had not started serving yet when fiber shut down
	// returns once its listener is closed.
	for _, ln := range lns {
		ln.Close()
	}
	s.cancel()
	if s.ownClient {
		s.client.Close()
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// activeChatsGauge is a store that wants to know how many chats have a
// turn in flight (the embedded store, to wait for group commits only when
// other turns may join).
type activeChatsGauge interface {
	SetActiveChats(func() int64)
}
