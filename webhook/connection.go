// Package webhook calls bot owners' HTTP services for webhook nodes (SPEC §3):
// connections, the shared SSRF-safe client, the request formats, signatures,
// answer decoding and the per-connection error record.
package webhook

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
)

// Limits of a connection (SPEC §3).
const (
	DefaultTimeout = 10 * time.Second
	MaxTimeout     = 120 * time.Second
	MaxRetries     = 5
	MaxHeaders     = 10
)

// Connection is where and how a webhook node calls: a connection of a
// story's webhooks: section, an inline one, or one made through the API.
type Connection struct {
	// StoryID is the story the connection belongs to.
	StoryID string
	// ID is sent as node.webhookId: the name in the story's webhooks:
	// section, the node id for an inline connection, or the API's id.
	ID string
	// Name is sent as node.webhookName.
	Name string
	// URL is called with POST (http or https, 1..1024 characters).
	URL string
	// Token, when set, signs requests (chatbot, messages, widget) or is the
	// service's key (messages and openai: a bearer token; anthropic:
	// x-api-key), and is sent on verification.
	Token string
	// Headers are added to every request (at most 10).
	Headers map[string]string
	// Auth, when set, is sent as HTTP basic auth.
	Auth *BasicAuth
	// Timeout bounds one attempt, answer body included (default: the
	// format's, 10s for chatbot; at most 120s).
	Timeout time.Duration
	// Retries is how many times a network error or a 5xx is retried (0..5).
	Retries int
	// MaxInFlight bounds the calls in flight to the connection
	// (1..MaxInFlightLimit; 0: the server's bound, 64 by default).
	MaxInFlight int
}

// BasicAuth is a connection's HTTP basic auth.
type BasicAuth struct {
	Username string
	Password string
}

// timeout returns the connection's timeout or the default.
func (c *Connection) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// reserved headers are set by storyflow and may not be configured.
var reserved = []string{"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection",
	"X-Storyflow-Timestamp", "X-Storyflow-Signature", "X-Storyflow-Message-Id"}

// Check returns the limits the connection breaks, with field paths
// ("url", "headers.X-Foo", "auth.username").
func (c *Connection) Check() []engine.Problem {
	var ps []engine.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, engine.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if n := utf8.RuneCountInString(c.URL); n < 1 || n > 1024 {
		if n == 0 {
			add("url", "is required")
		} else {
			add("url", "must be 1 to 1024 characters, got %d", n)
		}
	} else if u, err := url.Parse(c.URL); err != nil {
		add("url", "is not a URL: %v", unwrapURLError(err))
	} else if u.Scheme != "http" && u.Scheme != "https" {
		add("url", "must start with http:// or https://")
	} else if u.Host == "" || u.Hostname() == "" {
		add("url", "has no host")
	}
	if c.Token != "" && utf8.RuneCountInString(c.Token) > 1024 {
		add("token", "must be 1 to 1024 characters")
	}
	if len(c.Headers) > MaxHeaders {
		add("headers", "must hold at most %d headers, got %d", MaxHeaders, len(c.Headers))
	}
	for k, v := range c.Headers {
		switch {
		case !validHeaderName(k):
			add("headers."+k, "%q is not a valid header name", k)
		case isReserved(k):
			add("headers."+k, "header %s is set by storyflow", k)
		case strings.ContainsAny(v, "\r\n\x00"):
			add("headers."+k, "value must be one line")
		case utf8.RuneCountInString(v) > 1024:
			add("headers."+k, "value must be at most 1024 characters")
		}
	}
	if c.Auth != nil {
		if n := utf8.RuneCountInString(c.Auth.Username); n < 1 || n > 1024 {
			add("auth.username", "must be 1 to 1024 characters")
		}
		if n := utf8.RuneCountInString(c.Auth.Password); n < 1 || n > 1024 {
			add("auth.password", "must be 1 to 1024 characters")
		}
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		add("timeout", "must be more than 0 and at most %s, got %s", MaxTimeout, c.Timeout)
	}
	if c.Retries < 0 || c.Retries > MaxRetries {
		add("retries", "must be 0 to %d, got %d", MaxRetries, c.Retries)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > MaxInFlightLimit {
		add("max_in_flight", "must be 1 to %d, got %d", MaxInFlightLimit, c.MaxInFlight)
	}
	return ps
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func isReserved(name string) bool {
	for _, r := range reserved {
		if strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

// validHeaderName tells whether s is an RFC 7230 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Connections finds connections made through the API (the server's store).
type Connections interface {
	// Lookup returns story storyID's connection named name.
	Lookup(ctx context.Context, storyID, name string) (Connection, bool, error)
}

// Recorder keeps each connection's last failure: Record is called after
// every call with a one-line reason, or "" after a success.
type Recorder interface {
	Record(ctx context.Context, c *Connection, reason string)
}
