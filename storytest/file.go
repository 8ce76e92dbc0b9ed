// Package storytest runs story tests: YAML files of scripted conversations
// with a story, its webhooks answered by mocks (no network), checked turn by
// turn. It also turns a stored chat into a test case (Record).
//
// A test file sits next to its story: support.test.yaml tests support.yaml
// (or the file its story field names). See docs/designers.md, Story tests.
package storytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// Suffix ends the name of a test file: support.test.yaml tests support.yaml.
const Suffix = ".test.yaml"

// File is a parsed test file.
type File struct {
	Path string
	// Story is the story file's path (relative paths are relative to the test file).
	Story string
	// Env holds ${VAR} values for loading the story.
	Env   map[string]string
	Cases []*Case
}

// Case is one scripted conversation.
type Case struct {
	Name           string
	Line           int
	Attributes     map[string]any
	UserAttributes map[string]any
	// Webhooks maps a connection name to its mocked answers, in call order.
	Webhooks map[string]*Mocks
	Steps    []*Step
}

// Mocks are the answers of one connection. A single answer (not a list)
// answers every call; a list answers one call each, and a call past its
// end fails the test.
type Mocks struct {
	Answers []*Mock
	Repeat  bool
	Line    int
}

// Mock is one mocked webhook answer.
type Mock struct {
	Line   int
	Status int
	// Body is the answer's body: JSON of a YAML value, or a string as is.
	Body  []byte
	Delay time.Duration
}

// Step is one user input and what should follow. The first step may have
// no input: it then checks the turn that starts the chat.
type Step struct {
	Line   int
	Input  *engine.Input
	Expect *Expect
}

// Expect is what a turn should end with; unset parts are not checked.
type Expect struct {
	Line      int
	Responses []*ResponseExpect
	// HasResponses tells that responses was given (an empty list expects none).
	HasResponses bool
	Attributes   []AttrExpect
	Node         string
	NodeLine     int
	Status       string
	StatusLine   int
	// Events are the events the turn publishes (emit nodes), when given.
	Events    []*EventExpect
	HasEvents bool
}

// EventExpect matches one published event: its name, and the data fields
// given (others are not checked).
type EventExpect struct {
	Line int
	Name string
	Data map[string]any
}

// ResponseExpect matches one bot response.
type ResponseExpect struct {
	Line    int
	Type    string
	Text    *string
	Pattern *regexp.Regexp
	Buttons []string
}

// AttrExpect is an expected attribute value; nil expects no attribute.
type AttrExpect struct {
	Line  int
	Name  string
	Value any
}

// ParseError is a problem of a test file, with its position.
type ParseError struct {
	File         string
	Line, Column int
	Message      string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
}

// ParseFile reads and parses a test file.
func ParseFile(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	return Parse(path, src)
}

// Parse parses a test file; path names it in errors and places its story.
func Parse(path string, src []byte) (*File, error) {
	p := &parser{file: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 1
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, e := fmt.Sscanf(rest, "%d:", &line); e == nil && n == 1 {
				_, msg, _ = strings.Cut(rest, ": ")
			}
		}
		return nil, &ParseError{File: path, Line: line, Column: 1, Message: "yaml: " + msg}
	}
	if len(doc.Content) == 0 {
		return nil, &ParseError{File: path, Line: 1, Column: 1, Message: "test file is empty"}
	}
	f := p.file_(doc.Content[0])
	if p.err != nil {
		return nil, p.err
	}
	return f, nil
}

// DefaultStory is the story a test file tests when it names none:
// support.test.yaml → support.yaml.
func DefaultStory(path string) string {
	base := filepath.Base(path)
	if s, ok := strings.CutSuffix(base, Suffix); ok {
		return filepath.Join(filepath.Dir(path), s+".yaml")
	}
	return ""
}

type parser struct {
	file string
	err  *ParseError
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	if p.err == nil {
		p.err = &ParseError{File: p.file, Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)}
	}
}

// fields checks that n is a mapping of known fields and returns them.
func (p *parser) fields(n *yaml.Node, what string, known ...string) map[string]*yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s must be an object", what)
		return nil
	}
	m := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		ok := false
		for _, f := range known {
			ok = ok || f == k.Value
		}
		if !ok {
			msg := fmt.Sprintf("%s: field %s not recognised", what, k.Value)
			if s := engine.Suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			p.fail(k, "%s", msg)
			continue
		}
		if _, dup := m[k.Value]; dup {
			p.fail(k, "%s: field %s is set twice", what, k.Value)
		}
		m[k.Value] = v
	}
	return m
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) value(n *yaml.Node, what string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.fail(n, "%s: %v", what, err)
	}
	return plain(v)
}

func (p *parser) object(n *yaml.Node, what string) map[string]any {
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s must be an object", what)
		return nil
	}
	m, _ := p.value(n, what).(map[string]any)
	return m
}

func (p *parser) file_(root *yaml.Node) *File {
	f := &File{Path: p.file, Story: DefaultStory(p.file)}
	m := p.fields(root, "test file", "story", "env", "tests")
	if m == nil {
		return nil
	}
	if n := m["story"]; n != nil {
		f.Story = filepath.Join(filepath.Dir(p.file), p.str(n, "story"))
	}
	if f.Story == "" {
		p.fail(root, "field story is required (the file name does not end in %s)", Suffix)
	}
	if n := m["env"]; n != nil {
		if err := n.Decode(&f.Env); err != nil {
			p.fail(n, "env must be a map of names to strings")
		}
	}
	n := m["tests"]
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		at := root
		if n != nil {
			at = n
		}
		p.fail(at, "field tests must be a list of test cases")
		return f
	}
	names := map[string]bool{}
	for _, c := range n.Content {
		tc := p.case_(c)
		if tc == nil {
			continue
		}
		if names[tc.Name] {
			p.fail(c, "test %q is defined twice", tc.Name)
		}
		names[tc.Name] = true
		f.Cases = append(f.Cases, tc)
	}
	return f
}

func (p *parser) case_(n *yaml.Node) *Case {
	m := p.fields(n, "test", "name", "attributes", "userAttributes", "webhooks", "steps")
	if m == nil {
		return nil
	}
	c := &Case{Line: n.Line, Webhooks: map[string]*Mocks{}}
	if v := m["name"]; v != nil {
		c.Name = p.str(v, "name")
	}
	if c.Name == "" {
		p.fail(n, "test: field name is required")
	}
	if v := m["attributes"]; v != nil {
		c.Attributes = p.object(v, "attributes")
	}
	if v := m["userAttributes"]; v != nil {
		c.UserAttributes = p.object(v, "userAttributes")
	}
	if v := m["webhooks"]; v != nil {
		if v.Kind != yaml.MappingNode {
			p.fail(v, "webhooks must map connection names to mocked answers")
		} else {
			for i := 0; i+1 < len(v.Content); i += 2 {
				c.Webhooks[v.Content[i].Value] = p.mocks(v.Content[i+1])
			}
		}
	}
	steps := m["steps"]
	if steps == nil || steps.Kind != yaml.SequenceNode || len(steps.Content) == 0 {
		at := n
		if steps != nil {
			at = steps
		}
		p.fail(at, "test %q: field steps must be a list of steps", c.Name)
		return c
	}
	for i, s := range steps.Content {
		st := p.step(s)
		if st != nil && st.Input == nil && i > 0 {
			p.fail(s, "step needs one of text, postback or goto (only the first step may check the start)")
		}
		c.Steps = append(c.Steps, st)
	}
	return c
}

func (p *parser) mocks(n *yaml.Node) *Mocks {
	ms := &Mocks{Line: n.Line}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, a := range n.Content {
			ms.Answers = append(ms.Answers, p.mock(a))
		}
		if len(ms.Answers) == 0 {
			p.fail(n, "webhook mocks: want at least one answer")
		}
	default:
		ms.Answers, ms.Repeat = []*Mock{p.mock(n)}, true
	}
	return ms
}

func (p *parser) mock(n *yaml.Node) *Mock {
	m := p.fields(n, "webhook answer", "status", "body", "delay")
	mk := &Mock{Line: n.Line, Status: 200}
	if m == nil {
		return mk
	}
	if v := m["status"]; v != nil {
		s, err := strconv.Atoi(v.Value)
		if err != nil || s < 100 || s > 599 {
			p.fail(v, "status must be an HTTP status code (100..599)")
		}
		mk.Status = s
	}
	if v := m["body"]; v != nil {
		if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			mk.Body = []byte(v.Value)
		} else {
			b, err := json.Marshal(p.value(v, "body"))
			if err != nil {
				p.fail(v, "body: %v", err)
			}
			mk.Body = b
		}
	}
	if v := m["delay"]; v != nil {
		d, err := time.ParseDuration(v.Value)
		if err != nil || d < 0 {
			p.fail(v, "delay must be a duration like 200ms")
		}
		mk.Delay = d
	}
	return mk
}

func (p *parser) step(n *yaml.Node) *Step {
	m := p.fields(n, "step", "text", "postback", "goto", "expect")
	if m == nil {
		return nil
	}
	s := &Step{Line: n.Line}
	var in engine.Input
	count := 0
	for _, f := range []struct {
		name string
		dst  *string
	}{{"text", &in.Text}, {"postback", &in.Postback}, {"goto", &in.Goto}} {
		if v := m[f.name]; v != nil {
			*f.dst = p.str(v, f.name)
			if *f.dst == "" {
				p.fail(v, "%s must not be empty", f.name)
			}
			count++
		}
	}
	if count > 1 {
		p.fail(n, "step: want one of text, postback or goto, not %d", count)
	}
	if count == 1 {
		s.Input = &in
	}
	if v := m["expect"]; v != nil {
		s.Expect = p.expect(v)
	}
	return s
}

func (p *parser) expect(n *yaml.Node) *Expect {
	m := p.fields(n, "expect", "responses", "attributes", "node", "status", "events")
	if m == nil {
		return nil
	}
	e := &Expect{Line: n.Line}
	if v := m["responses"]; v != nil {
		e.HasResponses = true
		if v.Kind != yaml.SequenceNode {
			p.fail(v, "responses must be a list")
		} else {
			for _, r := range v.Content {
				e.Responses = append(e.Responses, p.response(r))
			}
		}
	}
	if v := m["attributes"]; v != nil {
		if v.Kind != yaml.MappingNode {
			p.fail(v, "attributes must be an object")
		} else {
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				e.Attributes = append(e.Attributes, AttrExpect{Line: k.Line, Name: k.Value, Value: p.value(val, "attribute "+k.Value)})
			}
		}
	}
	if v := m["events"]; v != nil {
		e.HasEvents = true
		if v.Kind != yaml.SequenceNode {
			p.fail(v, "events must be a list")
		} else {
			for _, ev := range v.Content {
				em := p.fields(ev, "event", "event", "data")
				if em == nil {
					continue
				}
				ee := &EventExpect{Line: ev.Line}
				if n := em["event"]; n != nil {
					ee.Name = p.str(n, "event")
				} else {
					p.fail(ev, "event: field event is required")
				}
				if n := em["data"]; n != nil {
					ee.Data = p.object(n, "data")
				}
				e.Events = append(e.Events, ee)
			}
		}
	}
	if v := m["node"]; v != nil {
		e.Node, e.NodeLine = p.str(v, "node"), v.Line
	}
	if v := m["status"]; v != nil {
		e.Status, e.StatusLine = p.str(v, "status"), v.Line
		switch engine.Status(e.Status) {
		case engine.StatusActive, engine.StatusCompleted, engine.StatusHandoff, engine.StatusFailed:
		default:
			p.fail(v, "status must be active, completed, handoff or failed")
		}
	}
	return e
}

func (p *parser) response(n *yaml.Node) *ResponseExpect {
	r := &ResponseExpect{Line: n.Line}
	if n.Kind == yaml.ScalarNode { // shorthand: the exact text
		s := n.Value
		r.Text = &s
		return r
	}
	m := p.fields(n, "response", "type", "text", "pattern", "buttons")
	if m == nil {
		return r
	}
	if v := m["type"]; v != nil {
		r.Type = p.str(v, "type")
		if !known(engine.ResponseTypes, r.Type) {
			msg := fmt.Sprintf("unknown response type %q", r.Type)
			if s := engine.Suggest(r.Type, engine.ResponseTypes); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			p.fail(v, "%s", msg)
		}
	}
	if v := m["text"]; v != nil {
		s := p.str(v, "text")
		r.Text = &s
	}
	if v := m["pattern"]; v != nil {
		re, err := regexp.Compile(p.str(v, "pattern"))
		if err != nil {
			p.fail(v, "pattern: %v", err)
		}
		r.Pattern = re
	}
	if v := m["buttons"]; v != nil {
		if err := v.Decode(&r.Buttons); err != nil {
			p.fail(v, "buttons must be a list of button titles")
		}
	}
	if r.Text != nil && r.Pattern != nil {
		p.fail(n, "response: want text or pattern, not both")
	}
	return r
}

func known(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// plain turns a decoded YAML value into what JSON decoding gives: numbers
// as float64, maps as map[string]any.
func plain(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	d := json.NewDecoder(bytes.NewReader(b))
	var out any
	if d.Decode(&out) != nil {
		return v
	}
	return out
}
