package api

import (
	"math"

	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/maypok86/otter/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/stories"
)

// Lint is a story problem as JSON shows it: the API's answers and
// storyflow validate --json.
type Lint struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Node     string `json:"node"`
	NodeType string `json:"nodeType,omitempty"`
	Message  string `json:"message"`
	// Severity is "error" or "warning".
	Severity string `json:"severity"`
}

// LintsOf returns lints as JSON shows them.
func LintsOf(ls []engine.Lint) []Lint {
	out := make([]Lint, 0, len(ls))
	for _, l := range ls {
		sev := "error"
		if l.Warning {
			sev = "warning"
		}
		out = append(out, Lint{File: l.File, Line: l.Line, Column: l.Column, Node: l.Node, NodeType: l.NodeType, Message: l.Message, Severity: sev})
	}
	return out
}

// storyHead is what lists read of a story file without loading it.
type storyHead struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

func peekStory(src []byte) storyHead {
	var h struct {
		ID   any `yaml:"id"`
		Name any `yaml:"name"`
	}
	_ = yaml.Unmarshal(src, &h)
	id, _ := h.ID.(string)
	name, _ := h.Name.(string)
	return storyHead{ID: id, Name: name}
}

// storyFile is the file name lints of an API story carry.
func storyFile(id string) string { return id + ".yaml" }

// requestContext bounds a request's store work; it ends early only when
// Shutdown gives up.
func (s *Server) requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

// load compiles a story source with the server's registry.
func (s *Server) load(file string, src []byte) (*engine.Story, []engine.Lint, error) {
	return stories.Load(file, src, stories.Options{Registry: s.reg, Env: s.env})
}

// invalidStory is the 422 answer of a story that does not load.
func invalidStory(err error) error {
	var le *engine.LintError
	if !errors.As(err, &le) {
		return err
	}
	n := 0
	first := ""
	for _, l := range le.Lints {
		if !l.Warning {
			if n == 0 {
				first = l.String()
			}
			n++
		}
	}
	msg := "story does not load: " + first
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "story_invalid", Message: oneLine(msg), Lints: LintsOf(le.Lints)}
}

// story returns story id at version (0: the latest), compiled once per
// version and cached.
func (s *Server) story(ctx context.Context, id string, version int) (*engine.Story, error) {
	if version > 0 {
		if st, ok := s.stories.get(id, version); ok {
			return st, nil
		}
	}
	rec, err := s.st.GetStory(ctx, id, version)
	if errors.Is(err, store.ErrNotFound) {
		if version > 0 {
			return nil, newError(http.StatusNotFound, "story_not_found", "story %q has no version %d", id, version)
		}
		return nil, notFound("story", id)
	}
	if err != nil {
		return nil, err
	}
	if st, ok := s.stories.get(id, rec.Version); ok {
		return st, nil
	}
	st, _, err := stories.Load(storyFile(id), rec.Source, stories.Options{Registry: s.reg, Recompile: true, Env: s.env})
	if err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Code: "story_load_failed",
			Message: oneLine(fmt.Sprintf("story %q version %d no longer loads: %v", id, rec.Version, firstLine(err))), Err: err}
	}
	st.Version = rec.Version
	s.stories.put(st)
	return st, nil
}

func firstLine(err error) string {
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}

func storyID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !stories.ValidID(id) {
		return "", badRequest("story id %q is not valid (want [a-z0-9][a-z0-9_-]{0,63})", id)
	}
	return id, nil
}

func versionParam(c *fiber.Ctx) (int, error) {
	v := c.Query("version")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, badRequest("version must be a whole number from 1 to %d, got %q", math.MaxInt32, v)
	}
	return n, nil
}

type putStoryAnswer struct {
	ID       string `json:"id"`
	Version  int    `json:"version"`
	Warnings []Lint `json:"warnings"`
}

// putStory: PUT /v1/stories/:id with a YAML body.
func (s *Server) putStory(c *fiber.Ctx) error {
	id, err := storyID(c)
	if err != nil {
		return err
	}
	src := bytes.Clone(c.Body())
	if len(bytes.TrimSpace(src)) == 0 {
		return badRequest("request body is empty; want a story in YAML")
	}
	if h := peekStory(src); h.ID != "" && h.ID != id {
		return newError(http.StatusBadRequest, "id_mismatch", "story id %q in the body does not match %q in the path", h.ID, id)
	}
	st, warns, err := s.load(storyFile(id), src)
	if err != nil {
		return invalidStory(err)
	}
	if st.ID != id {
		return newError(http.StatusBadRequest, "id_mismatch", "story id %q in the body does not match %q in the path", st.ID, id)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	version, created, err := s.st.PutStory(ctx, id, src)
	if err != nil {
		return fmt.Errorf("put story: %w", err)
	}
	st.Version = version
	s.stories.put(st)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.log.Info("story stored", "story", id, "version", version, "created", created, "warnings", len(warns))
	return c.Status(status).JSON(putStoryAnswer{ID: id, Version: version, Warnings: LintsOf(warns)})
}

type storyItem struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Version   int    `json:"version"`
	CreatedAt msTime `json:"createdAt"`
	UpdatedAt msTime `json:"updatedAt"`
}

// listStories: GET /v1/stories.
func (s *Server) listStories(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext()
	defer cancel()
	recs, err := s.st.ListStories(ctx)
	if err != nil {
		return fmt.Errorf("list stories: %w", err)
	}
	out := make([]storyItem, 0, len(recs))
	for _, r := range recs {
		out = append(out, storyItem{ID: r.ID, Name: s.storyName(r), Version: r.Version, CreatedAt: msTime(r.CreatedAt), UpdatedAt: msTime(r.UpdatedAt)})
	}
	return c.JSON(out)
}

// storyName is a stored story's name, from the cache or its source.
func (s *Server) storyName(r store.StoryRecord) string {
	if st, ok := s.stories.get(r.ID, r.Version); ok {
		return st.Name
	}
	return peekStory(r.Source).Name
}

// getStory: GET /v1/stories/:id[?version=N] answers the YAML.
func (s *Server) getStory(c *fiber.Ctx) error {
	id, err := storyID(c)
	if err != nil {
		return err
	}
	version, err := versionParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	rec, err := s.st.GetStory(ctx, id, version)
	if errors.Is(err, store.ErrNotFound) {
		if version > 0 {
			return newError(http.StatusNotFound, "story_not_found", "story %q has no version %d", id, version)
		}
		return notFound("story", id)
	}
	if err != nil {
		return fmt.Errorf("get story: %w", err)
	}
	c.Set(fiber.HeaderContentType, "application/yaml; charset=utf-8")
	c.Set("X-Story-Version", strconv.Itoa(rec.Version))
	return c.Send(rec.Source)
}

// deleteStory: DELETE /v1/stories/:id. Chats on it keep their version.
func (s *Server) deleteStory(c *fiber.Ctx) error {
	id, err := storyID(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	if err := s.st.DeleteStory(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("story", id)
		}
		return fmt.Errorf("delete story: %w", err)
	}
	s.log.Info("story deleted", "story", id)
	return c.JSON(fiber.Map{"id": id, "deleted": true})
}

// validateStory: POST /v1/stories/validate with a YAML body; errors and
// warnings, each with a severity.
func (s *Server) validateStory(c *fiber.Ctx) error {
	src := bytes.Clone(c.Body())
	if len(bytes.TrimSpace(src)) == 0 {
		return badRequest("request body is empty; want a story in YAML")
	}
	file := "story.yaml"
	if h := peekStory(src); stories.ValidID(h.ID) {
		file = storyFile(h.ID)
	}
	_, warns, err := s.load(file, src)
	var lints []engine.Lint
	var le *engine.LintError
	switch {
	case errors.As(err, &le):
		lints = le.Lints
	case err != nil:
		return err
	default:
		lints = warns
	}
	return c.JSON(fiber.Map{"valid": err == nil, "lints": LintsOf(lints)})
}

// graphStory: GET /v1/stories/:id/graph?format=json|mermaid|dot[&version=N].
func (s *Server) graphStory(c *fiber.Ctx) error {
	id, err := storyID(c)
	if err != nil {
		return err
	}
	version, err := versionParam(c)
	if err != nil {
		return err
	}
	format := c.Query("format", "json")
	known := false
	for _, f := range stories.GraphFormats {
		known = known || f == format
	}
	if !known {
		return badRequest("format %q unknown (want %s)", format, strings.Join(stories.GraphFormats, ", "))
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	st, err := s.story(ctx, id, version)
	if err != nil {
		return err
	}
	out, err := stories.Graph(st, format)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	switch format {
	case "json":
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	case "dot":
		c.Set(fiber.HeaderContentType, "text/vnd.graphviz; charset=utf-8")
	default:
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	}
	c.Set("X-Story-Version", strconv.Itoa(st.Version))
	return c.SendString(out)
}

// storyCache keeps compiled stories by id and version, bounded in bytes:
// each weighs storyWeight times its source (a compiled story takes about
// that much memory: nodes, programs, templates).
type storyCache struct {
	c *otter.Cache[storyKey, *engine.Story]
}

// storyWeight is how many bytes of memory a byte of story source takes
// once compiled (TestStoryCacheBoundsMemory measured 5.5 for a story of
// message nodes with templates).
const storyWeight = 6

type storyKey struct {
	id      string
	version int
}

func newStoryCache(bytes int64) *storyCache {
	return &storyCache{c: otter.Must(&otter.Options[storyKey, *engine.Story]{
		MaximumWeight: uint64(bytes),
		Weigher: func(_ storyKey, st *engine.Story) uint32 {
			return uint32(min(int64(len(st.Source))*storyWeight+4096, math.MaxUint32))
		},
	})}
}

// CachedStoryBytes is what the compiled stories in the story cache weigh
// (an estimate of their memory, within --story-cache).
func (s *Server) CachedStoryBytes() int64 { return int64(s.stories.c.WeightedSize()) }

func (sc *storyCache) get(id string, version int) (*engine.Story, bool) {
	return sc.c.GetIfPresent(storyKey{id, version})
}

func (sc *storyCache) put(st *engine.Story) {
	sc.c.Set(storyKey{st.ID, st.Version}, st)
}
