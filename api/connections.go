package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/maypok86/otter/v2"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/webhook"
)

// Webhook connections at /v2/integrations/webhook, in the shapes of
// ChatBot.com's Webhooks API.

type authRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

type connectionRequest struct {
	StoryID *string           `json:"storyId"`
	Name    *string           `json:"name"`
	URL     *string           `json:"url"`
	Token   *string           `json:"token"`
	Headers map[string]string `json:"headers"`
	Auth    *authRequest      `json:"auth"`

	// MaxInFlight bounds the calls in flight (optional, 1..1000).
	MaxInFlight *int `json:"maxInFlight"`
}

// connection checks the request and returns the connection it describes.
// storyID is used when the request names none (updates).
func (r *connectionRequest) connection(storyID string) (store.Connection, error) {
	var c store.Connection
	if r.StoryID != nil {
		storyID = *r.StoryID
	}
	if storyID == "" {
		return c, badRequest("field storyId is required")
	}
	if !stories.ValidID(storyID) {
		return c, badRequest("storyId %q is not a valid story id", storyID)
	}
	c.StoryID = storyID
	size := func(field string, v *string, min, max int) error {
		if v == nil {
			if min > 0 {
				return badRequest("field %s is required", field)
			}
			return nil
		}
		if n := utf8.RuneCountInString(*v); n < 1 || n > max {
			return badRequest("field %s must be 1 to %d characters, got %d", field, max, n)
		}
		return nil
	}
	if err := size("name", r.Name, 1, 128); err != nil {
		return c, err
	}
	if err := size("url", r.URL, 1, 1024); err != nil {
		return c, err
	}
	if err := size("token", r.Token, 0, 1024); err != nil {
		return c, err
	}
	c.Name, c.URL = *r.Name, *r.URL
	if r.Token != nil {
		c.Token = *r.Token
	}
	if r.Headers != nil {
		if n := len(r.Headers); n < 1 || n > webhook.MaxHeaders {
			return c, badRequest("field headers must hold 1 to %d headers, got %d", webhook.MaxHeaders, n)
		}
		c.Headers = r.Headers
	}
	if r.Auth != nil {
		if err := size("auth.username", r.Auth.Username, 1, 1024); err != nil {
			return c, err
		}
		if err := size("auth.password", r.Auth.Password, 1, 1024); err != nil {
			return c, err
		}
		c.Auth = &store.BasicAuth{Username: *r.Auth.Username, Password: *r.Auth.Password}
	}
	if r.MaxInFlight != nil {
		if n := *r.MaxInFlight; n < 1 || n > webhook.MaxInFlightLimit {
			return c, badRequest("field maxInFlight must be 1 to %d, got %d", webhook.MaxInFlightLimit, n)
		}
		c.MaxInFlight = *r.MaxInFlight
	}
	wc := toWebhook(c)
	if ps := wc.Check(); len(ps) > 0 {
		p := ps[0]
		if field, name, ok := strings.Cut(p.Path, "."); ok && field == "headers" {
			return c, badRequest("header %s: %s", name, p.Message)
		}
		return c, badRequest("field %s %s", p.Path, p.Message)
	}
	return c, nil
}

func toWebhook(c store.Connection) webhook.Connection {
	wc := webhook.Connection{StoryID: c.StoryID, ID: c.ID, Name: c.Name, URL: c.URL, Token: c.Token, Headers: c.Headers,
		MaxInFlight: c.MaxInFlight}
	if c.Auth != nil {
		wc.Auth = &webhook.BasicAuth{Username: c.Auth.Username, Password: c.Auth.Password}
	}
	return wc
}

// apiTime is how the Webhooks API writes times: 2021-06-09T07:35:00.788Z.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type storyRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type apiStatus struct {
	Code int    `json:"code"`
	Type string `json:"type"`
}

type statusAnswer struct {
	ID        string    `json:"id,omitempty"`
	Timestamp string    `json:"timestamp"`
	Status    apiStatus `json:"status"`
}

// connectionItem is a connection in a list: error is a string or false.
type connectionItem struct {
	ID        string   `json:"id"`
	Story     storyRef `json:"story"`
	Name      string   `json:"name"`
	URL       string   `json:"url"`
	Error     any      `json:"error"`
	CreatedAt string   `json:"createdAt"`
	UpdatedAt string   `json:"updatedAt"`
}

// connectionDetail is one connection: error is a string or null.
type connectionDetail struct {
	ID        string            `json:"id"`
	Story     storyRef          `json:"story"`
	Name      string            `json:"name"`
	URL       string            `json:"url"`
	Token     string            `json:"token,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Auth      *store.BasicAuth  `json:"auth,omitempty"`
	Error     *string           `json:"error" jsonschema:"nullable"`
	CreatedAt string            `json:"createdAt"`
	UpdatedAt string            `json:"updatedAt"`

	// MaxInFlight is the connection's bound on calls in flight (absent:
	// the server's).
	MaxInFlight int `json:"maxInFlight,omitempty"`
}

// storyNames returns the name of each story id (from the latest version).
type storyNames struct {
	s *Server
	m map[string]string
}

func (n *storyNames) name(ctx context.Context, id string) string {
	if name, ok := n.m[id]; ok {
		return name
	}
	name := ""
	if rec, err := n.s.st.GetStory(ctx, id, 0); err == nil {
		name = n.s.storyName(rec)
	}
	n.m[id] = name
	return name
}

var connIDRe = regexp.MustCompile(`^[0-9a-f]{24}$`)

// getConn returns the connection of the :id parameter.
func (s *Server) getConn(ctx context.Context, c *fiber.Ctx) (store.Connection, error) {
	id := c.Params("id")
	if !connIDRe.MatchString(id) {
		return store.Connection{}, notFound("connection", id)
	}
	conn, err := s.st.GetConnection(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return conn, notFound("connection", id)
	}
	if err != nil {
		return conn, fmt.Errorf("get connection: %w", err)
	}
	return conn, nil
}

// listConnections: GET /v2/integrations/webhook[?storyId=].
func (s *Server) listConnections(c *fiber.Ctx) error {
	storyID := c.Query("storyId")
	if storyID != "" && !stories.ValidID(storyID) {
		return badRequest("storyId %q is not a valid story id", storyID)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	list, err := s.st.ListConnections(ctx, storyID)
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	names := &storyNames{s: s, m: map[string]string{}}
	out := make([]connectionItem, 0, len(list))
	for _, cn := range list {
		item := connectionItem{ID: cn.ID, Story: storyRef{cn.StoryID, names.name(ctx, cn.StoryID)}, Name: cn.Name, URL: cn.URL,
			Error: false, CreatedAt: apiTime(cn.CreatedAt), UpdatedAt: apiTime(cn.UpdatedAt)}
		if cn.Error != "" {
			item.Error = cn.Error
		}
		out = append(out, item)
	}
	return c.JSON(out)
}

// getConnection: GET /v2/integrations/webhook/:id.
func (s *Server) getConnection(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext()
	defer cancel()
	cn, err := s.getConn(ctx, c)
	if err != nil {
		return err
	}
	names := &storyNames{s: s, m: map[string]string{}}
	d := connectionDetail{ID: cn.ID, Story: storyRef{cn.StoryID, names.name(ctx, cn.StoryID)}, Name: cn.Name, URL: cn.URL,
		Token: cn.Token, Headers: cn.Headers, Auth: cn.Auth, MaxInFlight: cn.MaxInFlight,
		CreatedAt: apiTime(cn.CreatedAt), UpdatedAt: apiTime(cn.UpdatedAt)}
	if cn.Error != "" {
		d.Error = &cn.Error
	}
	return c.JSON(d)
}

// verify sends the verification request; a refusal is a 400.
func (s *Server) verify(ctx context.Context, c store.Connection) error {
	wc := toWebhook(c)
	err := s.client.Verify(ctx, &wc)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	reason := err.Error()
	if r, ok := strings.CutPrefix(reason, "Verification failed: "); ok {
		reason = r
	}
	return &Error{Status: http.StatusBadRequest, Code: "verification_failed", Message: oneLine("verification failed: " + reason), Err: err}
}

// nameTaken refuses a second connection of one story with the same name:
// webhook nodes find connections by name.
func (s *Server) nameTaken(ctx context.Context, c store.Connection) error {
	list, err := s.st.ListConnections(ctx, c.StoryID)
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	for _, o := range list {
		if o.Name == c.Name && o.ID != c.ID {
			return newError(http.StatusConflict, "name_taken", "story %q already has a connection named %q (%s)", c.StoryID, c.Name, o.ID)
		}
	}
	return nil
}

// createConnection: POST /v2/integrations/webhook. The connection is
// saved only if its URL answers the verification request.
func (s *Server) createConnection(c *fiber.Ctx) error {
	var req connectionRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	cn, err := req.connection("")
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	if err := s.nameTaken(ctx, cn); err != nil {
		return err
	}
	if err := s.verify(ctx, cn); err != nil {
		return err
	}
	if err := s.st.CreateConnection(ctx, &cn); err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	s.conns.lists.InvalidateAll()
	s.log.Info("webhook connection created", "id", cn.ID, "story", cn.StoryID, "name", cn.Name)
	s.connectionsChanged()
	return c.Status(http.StatusCreated).JSON(statusAnswer{ID: cn.ID, Timestamp: apiTime(time.Now()), Status: apiStatus{201, "created"}})
}

// updateConnection: PUT /v2/integrations/webhook/:id replaces the
// connection; a new URL or token is verified first.
func (s *Server) updateConnection(c *fiber.Ctx) error {
	var req connectionRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	old, err := s.getConn(ctx, c)
	if err != nil {
		return err
	}
	cn, err := req.connection(old.StoryID)
	if err != nil {
		return err
	}
	cn.ID = old.ID
	if err := s.nameTaken(ctx, cn); err != nil {
		return err
	}
	changed := cn.URL != old.URL || cn.Token != old.Token
	if changed {
		if err := s.verify(ctx, cn); err != nil {
			return err
		}
	}
	if err := s.st.UpdateConnection(ctx, &cn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("connection", old.ID)
		}
		return fmt.Errorf("update connection: %w", err)
	}
	if changed && cn.Error != "" {
		// The last failure was of the old address.
		if err := s.st.SetConnectionError(ctx, cn.ID, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("update connection: %w", err)
		}
	}
	s.conns.forget(cn.ID)
	s.log.Info("webhook connection updated", "id", cn.ID, "story", cn.StoryID, "name", cn.Name, "verified", changed)
	s.connectionsChanged()
	return c.JSON(statusAnswer{Timestamp: apiTime(time.Now()), Status: apiStatus{200, "success"}})
}

// deleteConnection: DELETE /v2/integrations/webhook/:id.
func (s *Server) deleteConnection(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext()
	defer cancel()
	cn, err := s.getConn(ctx, c)
	if err != nil {
		return err
	}
	if err := s.st.DeleteConnection(ctx, cn.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("connection", cn.ID)
		}
		return fmt.Errorf("delete connection: %w", err)
	}
	s.conns.forget(cn.ID)
	s.log.Info("webhook connection deleted", "id", cn.ID, "story", cn.StoryID, "name", cn.Name)
	return c.JSON(statusAnswer{Timestamp: apiTime(time.Now()), Status: apiStatus{200, "success"}})
}

type testAnswer struct {
	// Status is the HTTP status of the answer (0: none came).
	Status int    `json:"status"`
	TimeMs int64  `json:"timeMs"`
	Body   string `json:"body"`
	// Error is the one-line reason of a failed call.
	Error string `json:"error,omitempty"`
	// Errors are what is wrong with the answer; empty when the call worked.
	Errors []webhook.Problem `json:"errors"`
}

// testConnection: POST /v2/integrations/webhook/:id/test sends a sample
// chatbot-format request and reports what came back.
func (s *Server) testConnection(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext()
	defer cancel()
	cn, err := s.getConn(ctx, c)
	if err != nil {
		return err
	}
	wc := toWebhook(cn)
	req := webhook.Request{
		Format: webhook.FormatChatbot, ChatID: store.NewID(), UserID: store.NewID(),
		StoryID: cn.StoryID, NodeID: "webhook_test", NodeName: "Webhook test",
		UserAttributes: map[string]any{"default_name": "Test User", "default_email": "test@example.com"},
		Attributes:     map[string]any{},
		Input:          "test",
		KeepBody:       true,
	}
	if st, err := s.story(ctx, cn.StoryID, 0); err == nil {
		req.StoryName = st.Name
		req.GotoOK = func(id string) bool { _, ok := st.Nodes[id]; return ok }
	}
	res, err := s.client.Call(ctx, &wc, &req)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	a := testAnswer{Errors: []webhook.Problem{}}
	if res != nil {
		a.Status, a.TimeMs, a.Body = res.Status, res.Duration.Milliseconds(), string(res.Body)
	}
	if err != nil {
		a.Error = err.Error()
		var we *webhook.Error
		if errors.As(err, &we) && len(we.Problems) > 0 {
			a.Errors = we.Problems
		} else {
			a.Errors = []webhook.Problem{{Message: err.Error()}}
		}
	}
	return c.JSON(a)
}

// connections lets webhook nodes use connections made through the API
// (webhook.Connections) and records their failures in the store
// (webhook.Recorder).
type connections struct {
	st  store.Store
	log *slog.Logger
	// lists caches each story's connections for connectionsFresh, so that
	// a webhook node naming an API connection does not read the store on
	// every call; this process's changes drop it at once.
	lists *otter.Cache[string, []store.Connection]

	mu sync.Mutex
	// errs holds, per API connection id, its error as last read from or
	// written to the store: a call writes only when the reason changes.
	errs map[string]string
}

var (
	_ webhook.Connections = (*connections)(nil)
	_ webhook.Recorder    = (*connections)(nil)
)

// Lookup implements webhook.Connections: story storyID's connection named
// name, or with id name.
func (cs *connections) Lookup(ctx context.Context, storyID, name string) (webhook.Connection, bool, error) {
	list, cached := cs.lists.GetIfPresent(storyID)
	if !cached {
		var err error
		if list, err = cs.st.ListConnections(ctx, storyID); err != nil {
			return webhook.Connection{}, false, err
		}
		cs.lists.Set(storyID, list)
	}
	found := -1
	for i := range list {
		if list[i].Name == name {
			found = i
			break
		}
	}
	if found < 0 {
		for i := range list {
			if list[i].ID == name {
				found = i
				break
			}
		}
	}
	if found < 0 {
		return webhook.Connection{}, false, nil
	}
	c := list[found]
	cs.mu.Lock()
	if _, ok := cs.errs[c.ID]; !ok || !cached {
		// A list from the store has the error another process may have
		// recorded; a cached one may be older than what Record keeps.
		cs.errs[c.ID] = c.Error
	}
	cs.mu.Unlock()
	return toWebhook(c), true, nil
}

// Record implements webhook.Recorder for connections found by Lookup.
func (cs *connections) Record(ctx context.Context, c *webhook.Connection, reason string) {
	cs.mu.Lock()
	old, ok := cs.errs[c.ID]
	if !ok || old == reason {
		cs.mu.Unlock()
		return
	}
	cs.errs[c.ID] = reason
	cs.mu.Unlock()
	if err := cs.st.SetConnectionError(ctx, c.ID, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		cs.logger().Warn("record webhook connection error", "id", c.ID, "err", err)
		cs.forget(c.ID)
	}
}

func (cs *connections) forget(id string) {
	cs.mu.Lock()
	delete(cs.errs, id)
	cs.mu.Unlock()
	cs.lists.InvalidateAll()
}

// connectionsFresh is how long a story's connection list is reused: a
// connection changed through another process (a MongoDB deployment) is
// used within this time.
const connectionsFresh = time.Second

// connectionListBytes bounds the memory of the cached connection lists.
const connectionListBytes = 4 << 20

func newConnections(st store.Store, log *slog.Logger) *connections {
	return &connections{st: st, log: log, errs: map[string]string{},
		lists: otter.Must(&otter.Options[string, []store.Connection]{
			MaximumWeight:    connectionListBytes,
			ExpiryCalculator: otter.ExpiryWriting[string, []store.Connection](connectionsFresh),
			Weigher: func(storyID string, list []store.Connection) uint32 {
				n := 64 + len(storyID)
				for i := range list {
					c := &list[i]
					n += 256 + len(c.ID) + len(c.StoryID) + len(c.Name) + len(c.URL) + len(c.Token) + len(c.Error)
					for k, v := range c.Headers {
						n += 32 + len(k) + len(v)
					}
					if c.Auth != nil {
						n += 32 + len(c.Auth.Username) + len(c.Auth.Password)
					}
				}
				return uint32(min(n, math.MaxUint32))
			},
		}),
	}
}

func (cs *connections) logger() *slog.Logger {
	if cs.log != nil {
		return cs.log
	}
	return slog.Default()
}
