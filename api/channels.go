package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/maypok86/otter/v2"

	"github.com/storyflow/storyflow/stories"
)

// Defaults of the widget route's rate limits.
const (
	DefaultSessionRate = 30  // requests per session and window
	DefaultIPRate      = 120 // requests per client IP and window
	DefaultRateWindow  = time.Minute
	// limiterBytes bounds each limiter's memory (keys and counters): the
	// keys the cache values least are forgotten beyond it.
	limiterBytes = 8 << 20
)

// RateLimits are the widget route's rate limits: at most Session requests
// per session_id and IP per client address in each Window. A negative
// limit turns it off.
type RateLimits struct {
	Session int
	IP      int
	Window  time.Duration
}

// checkOrigins normalises the configured CORS origins: "*" or
// scheme://host[:port].
func checkOrigins(origins []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, o := range origins {
		o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/"))
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				return nil, fmt.Errorf("cors origin %q: want scheme://host[:port] or *", o)
			}
		}
		m[o] = true
	}
	return m, nil
}

// originAllowed tells whether a browser page of origin may use the
// widget route: a configured origin, any with "*", or the server's own.
func (s *Server) originAllowed(c *fiber.Ctx, origin string) bool {
	origin = strings.ToLower(origin)
	return s.origins["*"] || s.origins[origin] || origin == strings.ToLower(c.BaseURL())
}

// channelRoutes registers the channel routes: the widget's (no token;
// origin check, CORS, rate limits) and the platform's (bearer token). They
// come before the /v1 group so that its token check does not run for them.
func (s *Server) channelRoutes(app *fiber.App) {
	app.Use("/v1/widget", s.checkOrigin, cors.New(cors.Config{
		AllowOriginsFunc: func(string) bool { return true }, // checkOrigin refused the others
		AllowMethods:     "POST, OPTIONS",
		AllowHeaders:     "Content-Type, X-CSRFToken",
		ExposeHeaders:    "Retry-After",
		MaxAge:           600,
	}))
	handlers := []fiber.Handler{limitWidgetBody}
	if s.rates.IP >= 0 {
		handlers = append(handlers, s.limit("ip", s.rates.IP, func(c *fiber.Ctx) string { return c.IP() }))
	}
	if s.rates.Session >= 0 {
		handlers = append(handlers, s.limit("session", s.rates.Session, func(c *fiber.Ctx) string {
			if sid := widgetSession(c.Body()); sid != "" {
				return c.Params("storyId") + "\x00" + sid
			}
			return ""
		}))
	}
	app.Post("/v1/widget/:storyId", append(handlers, s.widget)...)
	// Any other method: 405 here, not the /v1 group's 401.
	app.Use("/v1/widget", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, "POST, OPTIONS")
		return newError(http.StatusMethodNotAllowed, "method_not_allowed", "method %s is not allowed on %s (allowed: POST)", c.Method(), c.Path())
	})
	app.Post("/v1/platform/:storyId", s.auth, s.platform)
}

// maxWidgetBody bounds a widget request's body: a prompt is at most 1000
// characters, and the route is public.
const maxWidgetBody = 16 << 10

// limitWidgetBody refuses larger bodies before anything parses them.
func limitWidgetBody(c *fiber.Ctx) error {
	if n := len(c.Body()); n > maxWidgetBody {
		return newError(http.StatusRequestEntityTooLarge, "body_too_large", "request body is %d bytes; the widget route takes at most %d", n, maxWidgetBody)
	}
	return c.Next()
}

// checkOrigin refuses browser requests from origins not allowed (403).
func (s *Server) checkOrigin(c *fiber.Ctx) error {
	if o := c.Get(fiber.HeaderOrigin); o != "" && !s.originAllowed(c, o) {
		return newError(http.StatusForbidden, "origin_not_allowed", "origin %s may not use this route (serve --cors-origins)", o)
	}
	return c.Next()
}

// limit is a fixed-window rate limit of max requests per key (empty keys
// pass) and window; over it, 429 with Retry-After.
func (s *Server) limit(name string, max int, key func(*fiber.Ctx) string) fiber.Handler {
	return limiter.New(limiter.Config{
		Max:          max,
		Expiration:   s.rates.Window,
		Next:         func(c *fiber.Ctx) bool { return key(c) == "" },
		KeyGenerator: key,
		Storage:      newLimiterStorage(s.rates.Window),
		LimitReached: func(c *fiber.Ctx) error {
			s.metrics.limited.WithLabelValues(c.Route().Path, name).Inc()
			return newError(http.StatusTooManyRequests, "rate_limited", "too many requests for this %s; retry after %s s", name, c.GetRespHeader(fiber.HeaderRetryAfter))
		},
	})
}

// limiterStorage is a fiber.Storage bounded to limiterBytes, each key
// kept for the limiter's window.
type limiterStorage struct {
	c *otter.Cache[string, []byte]
}

var _ fiber.Storage = (*limiterStorage)(nil)

// limiterEntryBytes is what an entry costs beyond its key and value.
const limiterEntryBytes = 64

func newLimiterStorage(window time.Duration) *limiterStorage {
	return &limiterStorage{c: otter.Must(&otter.Options[string, []byte]{
		MaximumWeight: limiterBytes,
		Weigher:       func(k string, v []byte) uint32 { return uint32(len(k) + len(v) + limiterEntryBytes) },
		// A second beyond the window: the limiter rounds it up to seconds.
		ExpiryCalculator: otter.ExpiryWriting[string, []byte](window + time.Second),
	})}
}

func (l *limiterStorage) Get(key string) ([]byte, error) {
	v, _ := l.c.GetIfPresent(key)
	return v, nil
}

func (l *limiterStorage) Set(key string, val []byte, _ time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	l.c.Set(strings.Clone(key), append([]byte(nil), val...))
	return nil
}

func (l *limiterStorage) Delete(key string) error {
	l.c.Invalidate(key)
	return nil
}

func (l *limiterStorage) Reset() error {
	l.c.InvalidateAll()
	return nil
}

func (l *limiterStorage) Close() error { return nil }

// channelStory returns the :storyId of a channel route.
func channelStory(c *fiber.Ctx) (string, error) {
	id := c.Params("storyId")
	if !stories.ValidID(id) {
		return "", badRequest("story id %q is not valid (want [a-z0-9][a-z0-9_-]{0,63})", id)
	}
	return id, nil
}
