package storytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/webhook"
)

// Options of a Runner.
type Options struct {
	// Register adds custom node types to the registry (optional).
	Register func(*engine.Registry) error
	// MaxSteps is how many nodes a turn may run (default 100).
	MaxSteps int
}

// Runner runs test files. Stories are loaded once per runner and their
// coverage adds up over every file that tests them.
type Runner struct {
	o       Options
	mocks   *transport
	stories map[string]*loaded
	order   []string
}

// loaded is a story under test and what its tests covered.
type loaded struct {
	story    *engine.Story
	warnings []engine.Lint
	cov      *Coverage
}

// NewRunner returns a runner.
func NewRunner(o Options) *Runner {
	return &Runner{o: o, mocks: &transport{}, stories: map[string]*loaded{}}
}

// Result is the outcome of one case.
type Result struct {
	File, Name string
	Line       int
	// Failures are the case's failed checks, each a few lines; none passed.
	Failures []string
}

// Passed tells whether the case passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// FileResult is the outcome of one test file.
type FileResult struct {
	File  string
	Story string
	// Err is why the file could not run (it does not parse, or its story
	// does not load); then Cases is empty.
	Err   error
	Cases []*Result
}

// Failed tells whether anything of the file failed.
func (f *FileResult) Failed() bool {
	if f.Err != nil {
		return true
	}
	for _, c := range f.Cases {
		if !c.Passed() {
			return true
		}
	}
	return false
}

// Write prints the outcome: each failed case (each case with verbose)
// with its failures, then a summary line.
func (f *FileResult) Write(w io.Writer, verbose bool) {
	if f.Err != nil {
		fmt.Fprintf(w, "FAIL %s\n    %s\n", f.File, strings.ReplaceAll(f.Err.Error(), "\n", "\n    "))
		return
	}
	failed := 0
	for _, c := range f.Cases {
		if c.Passed() {
			if verbose {
				fmt.Fprintf(w, "--- PASS %s:%d: %s\n", c.File, c.Line, c.Name)
			}
			continue
		}
		failed++
		fmt.Fprintf(w, "--- FAIL %s:%d: %s\n", c.File, c.Line, c.Name)
		for _, msg := range c.Failures {
			fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(msg, "\n", "\n    "))
		}
	}
	tests := fmt.Sprintf("%d tests", len(f.Cases))
	if len(f.Cases) == 1 {
		tests = "1 test"
	}
	if failed > 0 {
		fmt.Fprintf(w, "FAIL %s: %d of %s failed\n", f.File, failed, tests)
		return
	}
	fmt.Fprintf(w, "ok   %s: %s passed\n", f.File, tests)
}

// RunFile parses and runs one test file.
func (r *Runner) RunFile(ctx context.Context, path string) *FileResult {
	f, err := ParseFile(path)
	if err != nil {
		return &FileResult{File: path, Err: err}
	}
	return r.Run(ctx, f)
}

// Run runs the cases of a parsed file, one after another.
func (r *Runner) Run(ctx context.Context, f *File) *FileResult {
	fr := &FileResult{File: f.Path, Story: f.Story}
	st, err := r.load(f)
	if err != nil {
		fr.Err = err
		return fr
	}
	for _, c := range f.Cases {
		fr.Cases = append(fr.Cases, r.runCase(ctx, f, st, c))
	}
	return fr
}

// load loads a file's story once (keyed by its path and env).
func (r *Runner) load(f *File) (*loaded, error) {
	key, _ := filepath.Abs(f.Story)
	envKey, _ := json.Marshal(f.Env)
	key += "\x00" + string(envKey)
	if st, ok := r.stories[key]; ok {
		return st, nil
	}
	client := webhook.NewClient(webhook.Options{Transport: r.mocks, Backoff: time.Millisecond})
	reg := nodes.NewRegistry(nodes.Options{Webhooks: client, Connections: apiConnections{}, Logger: discard})
	if r.o.Register != nil {
		if err := r.o.Register(reg); err != nil {
			return nil, fmt.Errorf("register node types: %w", err)
		}
	}
	getenv := func(name string) (string, bool) {
		if v, ok := f.Env[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
	// The story may use the names a server allows by default, and those
	// the test file sets.
	allowed := slices.Clone(stories.DefaultEnv)
	for k := range f.Env {
		allowed = append(allowed, k)
	}
	s, warnings, err := stories.LoadFile(f.Story, stories.Options{Registry: reg, Getenv: getenv, Env: allowed})
	if err != nil {
		return nil, fmt.Errorf("story %s does not load:\n%w", f.Story, err)
	}
	st := &loaded{story: s, warnings: warnings, cov: newCoverage(s)}
	st.cov.instrument(s)
	r.stories[key] = st
	r.order = append(r.order, key)
	return st, nil
}

// apiConnections stands in for the server's webhook connections: a story
// may name a connection made through the API; in a test it is mocked by
// that name like any other.
type apiConnections struct{}

func (apiConnections) Lookup(_ context.Context, storyID, name string) (webhook.Connection, bool, error) {
	return webhook.Connection{StoryID: storyID, ID: name, Name: name, URL: "https://" + storyID + ".mock.invalid/" + url.PathEscape(name)}, true, nil
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// caseRun is the state of one running case.
type caseRun struct {
	f    *File
	c    *Case
	res  *Result
	step int
	// calls counts each connection's calls; problems are mock failures of
	// the current step (a call nothing mocks).
	mu       sync.Mutex
	calls    map[string]int
	problems []string
}

func (r *Runner) runCase(ctx context.Context, f *File, st *loaded, c *Case) *Result {
	res := &Result{File: f.Path, Name: c.Name, Line: c.Line}
	cr := &caseRun{f: f, c: c, res: res, calls: map[string]int{}}
	r.mocks.set(cr)
	defer r.mocks.set(nil)
	runner := &engine.Runner{MaxSteps: r.o.MaxSteps, Logger: discard}
	chat := engine.NewChat(st.story, "test-chat", "test-user", "", c.UserAttributes, c.Attributes)
	st.cov.tracking = true
	defer func() { st.cov.tracking = false }()
	turn, err := runner.Start(ctx, st.story, chat)
	if err != nil {
		cr.failf(c.Line, "start: %v", err)
		return res
	}
	for i, s := range c.Steps {
		if s == nil || len(res.Failures) > 0 {
			break // later steps make no sense after a failure
		}
		cr.step = i + 1
		if s.Input == nil { // the first step: the start turn
			cr.check(s, turn, chat, "start", 0)
			continue
		}
		in := *s.Input
		what := inputString(in)
		if in.Goto != "" && !offered(chat, in.Goto) {
			cr.failf(s.Line, "step %d (%s): node %s was not offered by a goto button of the last turn", cr.step, what, in.Goto)
			break
		}
		st.cov.input(chat, in)
		seq0 := chat.Seq
		turn, err = runner.Send(ctx, st.story, chat, in)
		if err != nil {
			cr.failf(s.Line, "step %d (%s): %v", cr.step, what, err)
			break
		}
		cr.check(s, turn, chat, what, seq0)
	}
	return res
}

func (cr *caseRun) failf(line int, format string, args ...any) {
	cr.res.Failures = append(cr.res.Failures, fmt.Sprintf("%s:%d: ", cr.f.Path, line)+fmt.Sprintf(format, args...))
}

// webhookCalls describes the webhook calls of the chat's entries after seq0
// (the notes of webhook nodes), to explain a failed step.
func webhookCalls(c *engine.Chat, seq0 int64) []string {
	var out []string
	for _, e := range c.Transcript {
		if e.Seq <= seq0 || e.From != "node" || e.Data["webhook"] == nil {
			continue
		}
		s := fmt.Sprintf("  (node %s called webhook %v: status %v", e.Node, e.Data["webhook"], e.Data["status"])
		if msg, ok := e.Data["error"].(string); ok {
			s += ", " + msg
		}
		out = append(out, s+")")
	}
	return out
}

func inputString(in engine.Input) string {
	switch {
	case in.Goto != "":
		return "goto " + strconv.Quote(in.Goto)
	case in.Postback != "":
		return "postback " + strconv.Quote(in.Postback)
	}
	return "text " + strconv.Quote(in.Text)
}

// offered tells whether the chat's last bot turn offered a goto to id.
func offered(c *engine.Chat, id string) bool {
	for i := len(c.Transcript) - 1; i >= 0; i-- {
		e := c.Transcript[i]
		if e.From == "user" {
			break
		}
		if e.Response == nil {
			continue
		}
		for _, b := range buttonsOf(e.Response) {
			if b.Type == "goto" && b.Value == id {
				return true
			}
		}
	}
	return false
}

func buttonsOf(r *engine.Response) []engine.Button {
	bs := r.Buttons
	for _, c := range r.Elements {
		bs = append(bs[:len(bs):len(bs)], c.Buttons...)
	}
	return bs
}

// check compares a turn with a step's expectations.
func (cr *caseRun) check(s *Step, t *engine.Turn, chat *engine.Chat, what string, seq0 int64) {
	before := len(cr.res.Failures)
	defer func() {
		if len(cr.res.Failures) > before {
			cr.res.Failures = append(cr.res.Failures, webhookCalls(chat, seq0)...)
		}
	}()
	cr.mu.Lock()
	problems := cr.problems
	cr.problems = nil
	cr.mu.Unlock()
	head := fmt.Sprintf("step %d (%s)", cr.step, what)
	for i, p := range problems {
		if !slices.Contains(problems[:i], p) { // a retried call asks again
			cr.failf(s.Line, "%s: %s", head, p)
		}
	}
	e := s.Expect
	if e == nil {
		return
	}
	if e.HasResponses {
		cr.checkResponses(e, t.Output, head)
	}
	if e.HasEvents {
		cr.checkEvents(e, t.Events, head)
	}
	for _, a := range e.Attributes {
		got, ok := chat.Attributes[a.Name]
		got = plain(got)
		if a.Value == nil {
			if ok {
				cr.failf(a.Line, "%s: attribute %s:\n    expected: not set\n    got:      %s", head, a.Name, jsonText(got))
			}
			continue
		}
		if !ok || !reflect.DeepEqual(got, a.Value) {
			g := "not set"
			if ok {
				g = jsonText(got)
			}
			cr.failf(a.Line, "%s: attribute %s:\n    expected: %s\n    got:      %s", head, a.Name, jsonText(a.Value), g)
		}
	}
	if e.Node != "" && chat.Node != e.Node {
		cr.failf(e.NodeLine, "%s: node:\n    expected: %s\n    got:      %s", head, e.Node, chat.Node)
	}
	if e.Status != "" && string(chat.Status) != e.Status {
		got := string(chat.Status)
		if chat.Error != "" {
			got += " (" + chat.Error + ")"
		}
		cr.failf(e.StatusLine, "%s: status:\n    expected: %s\n    got:      %s", head, e.Status, got)
	}
}

func (cr *caseRun) checkResponses(e *Expect, got []engine.Response, head string) {
	n := max(len(e.Responses), len(got))
	for i := 0; i < n; i++ {
		var want *ResponseExpect
		if i < len(e.Responses) {
			want = e.Responses[i]
		}
		switch {
		case want == nil:
			cr.failf(e.Line, "%s: response %d:\n    expected: no more responses\n    got:      %s", head, i+1, describe(&got[i]))
		case i >= len(got):
			cr.failf(want.Line, "%s: response %d:\n    expected: %s\n    got:      no more responses", head, i+1, want.describe())
		case !want.match(&got[i]):
			cr.failf(want.Line, "%s: response %d:\n    expected: %s\n    got:      %s", head, i+1, want.describe(), describe(&got[i]))
		}
	}
}

func (cr *caseRun) checkEvents(e *Expect, got []engine.Event, head string) {
	for i := 0; i < max(len(e.Events), len(got)); i++ {
		switch {
		case i >= len(e.Events):
			cr.failf(e.Line, "%s: event %d:\n    expected: no more events\n    got:      %s %s", head, i+1, got[i].Name, jsonText(got[i].Data))
			continue
		case i >= len(got):
			cr.failf(e.Events[i].Line, "%s: event %d:\n    expected: %s\n    got:      no more events", head, i+1, e.Events[i].Name)
			continue
		}
		want, data := e.Events[i], plain(got[i].Data)
		m, _ := data.(map[string]any)
		ok := want.Name == got[i].Name
		for k, v := range want.Data {
			ok = ok && reflect.DeepEqual(m[k], v)
		}
		if !ok {
			cr.failf(want.Line, "%s: event %d:\n    expected: %s %s\n    got:      %s %s", head, i+1, want.Name, jsonText(want.Data), got[i].Name, jsonText(data))
		}
	}
}

// Text is what a response expectation's text and pattern are matched
// against: a text's message, an image's URL, the title of quick replies or
// buttons, the card titles (one a line).
func Text(r *engine.Response) string {
	switch r.Type {
	case engine.TypeText:
		return r.Message
	case engine.TypeImage:
		return r.ImageURL
	case engine.TypeCards:
		var ts []string
		for _, c := range r.Elements {
			ts = append(ts, c.Title)
		}
		return strings.Join(ts, "\n")
	case engine.TypeRandomText:
		return strings.Join(r.Messages, "\n")
	}
	if r.Title != "" {
		return r.Title
	}
	return webhook.ResponseText(r)
}

func (w *ResponseExpect) match(r *engine.Response) bool {
	if w.Type != "" && w.Type != r.Type {
		return false
	}
	text := Text(r)
	if w.Text != nil && *w.Text != text {
		return false
	}
	if w.Pattern != nil && !w.Pattern.MatchString(text) {
		return false
	}
	if w.Buttons != nil {
		bs := buttonsOf(r)
		if len(bs) != len(w.Buttons) {
			return false
		}
		for i, b := range bs {
			if b.Title != w.Buttons[i] {
				return false
			}
		}
	}
	return true
}

func (w *ResponseExpect) describe() string {
	var b strings.Builder
	if w.Type != "" {
		b.WriteString(w.Type)
	} else {
		b.WriteString("any response")
	}
	switch {
	case w.Text != nil:
		b.WriteString(" " + strconv.Quote(*w.Text))
	case w.Pattern != nil:
		b.WriteString(" matching " + strconv.Quote(w.Pattern.String()))
	}
	if w.Buttons != nil {
		b.WriteString(" [" + strings.Join(w.Buttons, ", ") + "]")
	}
	return b.String()
}

func describe(r *engine.Response) string {
	s := r.Type + " " + strconv.Quote(Text(r))
	if bs := buttonsOf(r); len(bs) > 0 {
		ts := make([]string, len(bs))
		for i, b := range bs {
			ts[i] = b.Title
		}
		s += " [" + strings.Join(ts, ", ") + "]"
	}
	return s
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// transport answers webhook calls with the running case's mocks: no call
// leaves the process.
type transport struct {
	mu  sync.Mutex
	run *caseRun
}

var _ http.RoundTripper = (*transport)(nil)

func (t *transport) set(cr *caseRun) {
	t.mu.Lock()
	t.run = cr
	t.mu.Unlock()
}

// errNotMocked fails a call that no mock answers (the node takes its
// failure branch; the test fails too).
var errNotMocked = errors.New("not mocked")

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	t.mu.Lock()
	cr := t.run
	t.mu.Unlock()
	conn := webhook.CallConnection(req)
	if cr == nil || conn == nil {
		return nil, errNotMocked
	}
	m, problem := cr.answer(conn)
	if m == nil {
		cr.mu.Lock()
		cr.problems = append(cr.problems, problem)
		cr.mu.Unlock()
		return nil, errNotMocked
	}
	if m.Delay > 0 {
		timer := time.NewTimer(m.Delay)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
	return &http.Response{
		StatusCode: m.Status, Status: fmt.Sprintf("%d %s", m.Status, http.StatusText(m.Status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(m.Body)),
		ContentLength: int64(len(m.Body)), Request: req,
	}, nil
}

// answer returns the next mocked answer of conn, or why there is none.
func (cr *caseRun) answer(conn *webhook.Connection) (*Mock, string) {
	ms, name := cr.c.Webhooks[conn.Name], conn.Name
	if ms == nil {
		ms, name = cr.c.Webhooks[conn.ID], conn.ID
	}
	if ms == nil {
		return nil, fmt.Sprintf("webhook %s was called but the test mocks no answer for it (add webhooks: {%s: {body: ...}})", conn.Name, conn.Name)
	}
	cr.mu.Lock()
	n := cr.calls[name]
	cr.calls[name] = n + 1
	cr.mu.Unlock()
	if ms.Repeat {
		return ms.Answers[0], ""
	}
	if n >= len(ms.Answers) {
		answers := "1 answer"
		if len(ms.Answers) != 1 {
			answers = fmt.Sprintf("%d answers", len(ms.Answers))
		}
		return nil, fmt.Sprintf("webhook %s was called %d times but the test mocks %s (line %d)", name, n+1, answers, ms.Line)
	}
	return ms.Answers[n], ""
}
