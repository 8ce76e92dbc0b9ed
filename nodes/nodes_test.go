package nodes_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

func load(t testing.TB, src string) *engine.Story {
	t.Helper()
	s, _, err := stories.Load("test.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(nodes.Options{})})
	if err != nil {
		t.Fatalf("load story: %v\n%s", err, src)
	}
	return s
}

// loadErr loads src and returns its errors, one a line.
func loadErr(t *testing.T, src string) string {
	t.Helper()
	_, _, err := stories.Load("test.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(nodes.Options{})})
	var le *engine.LintError
	if !errors.As(err, &le) {
		t.Fatalf("story loaded; want errors\n%s", src)
	}
	return le.Error()
}

// chat runs a story: it starts a chat and sends each input, returning the
// chat and the texts (message or title) of the last turn's responses.
type chat struct {
	t    *testing.T
	r    *engine.Runner
	s    *engine.Story
	c    *engine.Chat
	turn *engine.Turn
	sink *sink
}

type sink struct{ events []engine.Event }

func (s *sink) Publish(_ context.Context, _ *engine.Chat, evs []engine.Event) error {
	s.events = append(s.events, evs...)
	return nil
}

func startChat(t *testing.T, s *engine.Story, attrs map[string]any) *chat {
	t.Helper()
	k := &chat{t: t, s: s, sink: &sink{}}
	k.r = &engine.Runner{Sink: k.sink, Logger: slog.New(slog.DiscardHandler)}
	k.c = engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, attrs)
	var err error
	if k.turn, err = k.r.Start(context.Background(), s, k.c); err != nil {
		t.Fatalf("start: %v", err)
	}
	return k
}

func (k *chat) send(in engine.Input) *chat {
	k.t.Helper()
	var err error
	if k.turn, err = k.r.Send(context.Background(), k.s, k.c, in); err != nil {
		k.t.Fatalf("send %+v: %v", in, err)
	}
	return k
}

func (k *chat) say(text string) *chat { return k.send(engine.Input{Text: text}) }

// said returns the last turn's response texts.
func (k *chat) said() []string {
	var out []string
	for _, r := range k.turn.Output {
		if r.Message != "" {
			out = append(out, r.Message)
		} else {
			out = append(out, r.Title)
		}
	}
	return out
}

func question(validate string, retry bool) string {
	s := `id: q
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: Prompt}]
    save: answer
`
	if validate != "" {
		s += "    validate: " + validate + "\n"
	}
	if retry {
		s += "    retry: [{type: text, message: Retry}]\n"
	}
	return s + `    next: done
  done:
    type: end
    responses: [{type: text, message: Done}]
`
}

func TestQuestionValidate(t *testing.T) {
	tests := []struct {
		validate string
		input    string
		// want is the saved value; nil: the input is invalid.
		want any
	}{
		{"", "anything at all", "anything at all"},
		{"email", "ann@example.com", "ann@example.com"},
		{"email", "  ann@example.com ", "ann@example.com"},
		{"email", "ann.lee+bot@mail.example.co.uk", "ann.lee+bot@mail.example.co.uk"},
		{"email", "ann@example", nil},
		{"email", "ann example.com", nil},
		{"email", "Ann <ann@example.com>", nil},
		{"email", "@example.com", nil},
		{"email", "ann@example.", nil},
		{"number", "42", 42.0},
		{"number", " 3.5 ", 3.5},
		{"number", "-7", -7.0},
		{"number", "1e3", 1000.0},
		{"number", "forty", nil},
		{"number", "12abc", nil},
		{"number", "NaN", nil},
		{"number", "Inf", nil},
		{"number", "-infinity", nil},
		{"phone", "+49 30 1234567", "+49 30 1234567"},
		{"phone", "(030) 123-4567", "(030) 123-4567"},
		{"phone", "12345", nil},
		{"phone", "+1234567890123456", nil},
		{"phone", "++49 30 1234567", nil},
		{"phone", "call me", nil},
		{"url", "https://example.com/a?b=c", "https://example.com/a?b=c"},
		{"url", "http://localhost:8080", "http://localhost:8080"},
		{"url", "example.com", nil},
		{"url", "ftp://example.com", nil},
		{"url", "https://", nil},
		{`"regex:^[0-9]{5}$"`, "10115", "10115"},
		{`"regex:^[0-9]{5}$"`, "1011", nil},
		{`"regex:(?i)^(yes|no)$"`, "YES", "YES"},
		{`"regex:(?i)^(yes|no)$"`, "maybe", nil},
		{"len(input) >= 3", "abc", "abc"},
		{"len(input) >= 3", "ab", nil},
		{`input in ["red", "green"]`, "green", "green"},
		{`input in ["red", "green"]`, "blue", nil},
		{`attributes.max > 0 && len(input) <= attributes.max`, "abcd", "abcd"},
		{`attributes.max > 0 && len(input) <= attributes.max`, "abcdef", nil},
	}
	for _, tt := range tests {
		for _, retry := range []bool{false, true} {
			name := tt.validate + "/" + tt.input
			if retry {
				name += "/retry"
			}
			t.Run(name, func(t *testing.T) {
				k := startChat(t, load(t, question(tt.validate, retry)), map[string]any{"max": 5})
				if got := k.said(); !slices.Equal(got, []string{"Prompt"}) || !k.c.Waiting || k.c.Node != "ask" {
					t.Fatalf("start: said %q, waiting %v at %s", got, k.c.Waiting, k.c.Node)
				}
				k.say(tt.input)
				if tt.want == nil {
					want := "Prompt"
					if retry {
						want = "Retry"
					}
					if got := k.said(); !slices.Equal(got, []string{want}) {
						t.Errorf("invalid input: said %q, want %q", got, want)
					}
					if !k.c.Waiting || k.c.Node != "ask" || k.c.Status != engine.StatusActive {
						t.Errorf("invalid input: chat at %s (waiting %v, %s), want waiting at ask", k.c.Node, k.c.Waiting, k.c.Status)
					}
					if v, ok := k.c.Attributes["answer"]; ok {
						t.Errorf("invalid input saved: %#v", v)
					}
					return
				}
				if got := k.said(); !slices.Equal(got, []string{"Done"}) || k.c.Status != engine.StatusCompleted {
					t.Errorf("valid input: said %q, status %s", got, k.c.Status)
				}
				if got := k.c.Attributes["answer"]; !reflect.DeepEqual(got, tt.want) {
					t.Errorf("saved %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
				}
			})
		}
	}
}

func TestQuestionRetryThenValid(t *testing.T) {
	k := startChat(t, load(t, question("number", true)), nil)
	k.say("one")
	k.say("two")
	if got := k.said(); !slices.Equal(got, []string{"Retry"}) {
		t.Fatalf("second invalid input: said %q", got)
	}
	k.say("3")
	if k.c.Attributes["answer"] != 3.0 || k.c.Status != engine.StatusCompleted {
		t.Errorf("after retries: answer %#v, status %s", k.c.Attributes["answer"], k.c.Status)
	}
}

func TestQuestionPostbackAndNoSave(t *testing.T) {
	s := load(t, `id: q
start: ask
nodes:
  ask:
    type: question
    responses:
      - type: quickReplies
        title: Color?
        buttons: [{type: postback, title: Red, value: red}]
    validate: input == "red"
    next: done
  done:
    type: end
    responses: [{type: text, message: "{{ input }}"}]
`)
	k := startChat(t, s, nil)
	k.send(engine.Input{Text: "Red", Postback: "red"})
	if got := k.said(); !slices.Equal(got, []string{"red"}) {
		t.Errorf("said %q, want the postback value", got)
	}
	if len(k.c.Attributes) != 0 {
		t.Errorf("question without save changed attributes: %v", k.c.Attributes)
	}
}

const routeStory = `id: r
start: check
nodes:
  check:
    type: condition
    routes:
      - when: attributes.plan == "pro"
        next: pro
      - when: attributes.plan == "team" || attributes.seats > 10
        next: team
      - when: attributes.plan == "pro"
        next: never
    else: free
  pro:
    type: end
    responses: [{type: text, message: pro}]
  team:
    type: end
    responses: [{type: text, message: team}]
  never:
    type: end
    responses: [{type: text, message: never}]
  free:
    type: end
    responses: [{type: text, message: free}]
`

func TestCondition(t *testing.T) {
	s := load(t, routeStory)
	tests := []struct {
		name  string
		attrs map[string]any
		want  string
	}{
		{"first route", map[string]any{"plan": "pro"}, "pro"},
		{"second route", map[string]any{"plan": "team"}, "team"},
		{"second route by seats", map[string]any{"plan": "free", "seats": 20}, "team"},
		{"else", map[string]any{"plan": "free", "seats": 2}, "free"},
		{"missing attribute is nil", map[string]any{"seats": 1}, "free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := startChat(t, s, tt.attrs)
			if got := k.said(); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("went to %q, want %s", got, tt.want)
			}
		})
	}
	// Each route and else is an edge of the graph.
	var edges []string
	for _, e := range s.Nodes["check"].Edges {
		edges = append(edges, e.Kind+":"+e.To)
	}
	if want := []string{"route:pro", "route:team", "route:never", "else:free"}; !slices.Equal(edges, want) {
		t.Errorf("edges = %q, want %q", edges, want)
	}
}

func TestConditionRuntimeError(t *testing.T) {
	s := load(t, routeStory)
	k := startChat(t, s, map[string]any{"plan": "free", "seats": "many"})
	if got := k.said(); !slices.Equal(got, []string{engine.DefaultApology}) {
		t.Errorf("said %q, want the apology", got)
	}
	if !strings.Contains(k.c.Error, "attributes.seats > 10") {
		t.Errorf("chat error %q does not name the expression", k.c.Error)
	}
}

func TestSet(t *testing.T) {
	s := load(t, `id: s
start: set
attributes: {old: 1, gone: x, keep: k}
nodes:
  set:
    type: set
    attributes:
      text: hello
      int: 42
      float: 2.5
      yes: true
      list: [a, 1]
      object: {a: 1}
      quoted: "42"
      typed: "{{ attributes.old + 1 }}"
      typedList: "{{ [attributes.old, 2] }}"
      rendered: "n={{ attributes.old }}"
      greeting: "Hi {{ userAttributes.name }}"
      empty: "{{ attributes.missing }}"
      gone: null
      old: 2
      seen: "{{ attributes.old }}"
    next: done
  done:
    type: end
`)
	k := startChat(t, s, nil)
	want := map[string]any{
		"text": "hello", "int": 42, "float": 2.5, "yes": true, "list": []any{"a", 1},
		"object": map[string]any{"a": 1}, "quoted": "42", "typed": 2, "typedList": []any{1, 2},
		"rendered": "n=1", "greeting": "Hi Ann", "old": 2, "seen": 2, "keep": "k",
	}
	if !reflect.DeepEqual(k.c.Attributes, want) {
		t.Errorf("attributes =\n%#v\nwant\n%#v", k.c.Attributes, want)
	}
	if k.c.Status != engine.StatusCompleted {
		t.Errorf("status = %s", k.c.Status)
	}
}

func TestEmit(t *testing.T) {
	s := load(t, `id: e
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Size?"}]
    save: size
    next: order
  order:
    type: emit
    event: order.requested
    data:
      size: "{{ attributes.size }}"
      qty: 2
      note: "for {{ userAttributes.name }}"
      chat: "{{ chat.id }}"
`)
	k := startChat(t, s, nil)
	k.say("large")
	want := []engine.Event{{Name: "order.requested", Data: map[string]any{"size": "large", "qty": 2, "note": "for Ann", "chat": "c1"}}}
	if !reflect.DeepEqual(k.sink.events, want) {
		t.Errorf("events = %#v, want %#v", k.sink.events, want)
	}
	if k.c.Status != engine.StatusCompleted {
		t.Errorf("emit without next: status %s, want completed", k.c.Status)
	}
}

func TestHandoff(t *testing.T) {
	s := load(t, `id: h
start: human
attributes: {issue: billing}
nodes:
  human:
    type: handoff
    responses: [{type: text, message: "Connecting you, {{ userAttributes.name }}"}]
    task:
      title: "Help {{ userAttributes.name }} with {{ attributes.issue }}"
      priority: 2
`)
	k := startChat(t, s, nil)
	if k.c.Status != engine.StatusHandoff {
		t.Fatalf("status = %s, want handoff", k.c.Status)
	}
	if got := k.said(); !slices.Equal(got, []string{"Connecting you, Ann"}) {
		t.Errorf("said %q", got)
	}
	if want := map[string]any{"title": "Help Ann with billing", "priority": 2}; !reflect.DeepEqual(k.turn.Task, want) {
		t.Errorf("task = %#v, want %#v", k.turn.Task, want)
	}
	k.say("hello?")
	if len(k.turn.Output) != 0 {
		t.Errorf("bot answered during handoff: %q", k.said())
	}
}

func TestHandoffWithoutTask(t *testing.T) {
	k := startChat(t, load(t, "id: h\nstart: human\nnodes:\n  human:\n    type: handoff\n"), nil)
	if k.c.Status != engine.StatusHandoff || len(k.turn.Output) != 0 || len(k.turn.Task) != 0 {
		t.Errorf("status %s, output %v, task %v", k.c.Status, k.turn.Output, k.turn.Task)
	}
}

func TestEnd(t *testing.T) {
	k := startChat(t, load(t, `id: e
start: bye
nodes:
  bye:
    type: end
    responses:
      - {type: text, message: "Bye {{ userAttributes.name }}"}
      - {type: image, imageUrl: "https://x.test/bye.png", delay: 200}
`), nil)
	if k.c.Status != engine.StatusCompleted || !slices.Equal(k.said(), []string{"Bye Ann", ""}) {
		t.Fatalf("status %s, said %q", k.c.Status, k.said())
	}
	if r := k.turn.Output[1]; r.Type != "image" || r.ImageURL != "https://x.test/bye.png" || r.Delay != 200 {
		t.Errorf("image response = %+v", r)
	}
	if k.turn.Output[0].Delay != engine.DefaultDelay {
		t.Errorf("default delay = %d, want %d", k.turn.Output[0].Delay, engine.DefaultDelay)
	}
}

func TestMessageResponses(t *testing.T) {
	s := load(t, `id: m
start: show
nodes:
  show:
    type: message
    responses:
      - type: buttons
        title: "Links for {{ userAttributes.name }}"
        buttons:
          - {type: url, title: Site, value: "https://x.test/{{ chat.userId }}"}
          - {type: webview, title: Form, value: "https://x.test/form"}
          - {type: webview, title: Big, value: "https://x.test/big", height: full}
          - {type: phone, title: Call, value: "+4930123456"}
          - {type: goto, title: Menu, value: menu}
      - type: cards
        elements:
          - title: Pizza
            subtitle: "{{ attributes.size }}"
            imageUrl: https://x.test/p.png
            buttons: [{type: postback, title: Order, value: order}]
      - type: file
        fileUrl: https://x.test/menu.pdf
    next: menu
  menu:
    type: question
    responses: [{type: text, message: Menu}]
    next: menu
`)
	k := startChat(t, s, map[string]any{"size": "large"})
	out := k.turn.Output
	if len(out) != 4 {
		t.Fatalf("output = %+v", out)
	}
	want := engine.Response{Type: "buttons", Delay: 1000, Title: "Links for Ann", Buttons: []engine.Button{
		{Type: "url", Title: "Site", Value: "https://x.test/u1"},
		{Type: "webview", Title: "Form", Value: "https://x.test/form", Height: "compact"},
		{Type: "webview", Title: "Big", Value: "https://x.test/big", Height: "full"},
		{Type: "phone", Title: "Call", Value: "+4930123456"},
		{Type: "goto", Title: "Menu", Value: "menu"},
	}}
	if !reflect.DeepEqual(out[0], want) {
		t.Errorf("buttons =\n%+v\nwant\n%+v", out[0], want)
	}
	if c := out[1].Elements; len(c) != 1 || c[0].Subtitle != "large" || c[0].Buttons[0].Value != "order" {
		t.Errorf("cards = %+v", out[1])
	}
	if out[2].Type != "file" || out[2].FileURL != "https://x.test/menu.pdf" {
		t.Errorf("file = %+v", out[2])
	}
	if out[3].Message != "Menu" || k.c.Node != "menu" || !k.c.Waiting {
		t.Errorf("did not go on to next: %+v at %s", out[3], k.c.Node)
	}
	var edges []string
	for _, e := range s.Nodes["show"].Edges {
		edges = append(edges, e.Kind+":"+e.To)
	}
	if want := []string{"goto:menu", "next:menu"}; !slices.Equal(edges, want) {
		t.Errorf("edges = %q, want %q", edges, want)
	}
}

// TestRenderedLimits: a template that renders past a limit is cut to it.
func TestRenderedLimits(t *testing.T) {
	s := load(t, `id: m
start: a
nodes:
  a:
    type: end
    responses:
      - type: text
        message: "{{ attributes.long }}"
`)
	k := startChat(t, s, map[string]any{"long": strings.Repeat("é", 2000)})
	if n := len([]rune(k.turn.Output[0].Message)); n != 1024 {
		t.Errorf("rendered message has %d runes, want it cut to 1024", n)
	}
}

func TestNodeConfigErrors(t *testing.T) {
	head := "id: s\nstart: a\nnodes:\n  z:\n    type: end\n  a:\n"
	tests := []struct {
		name, node, want string
	}{
		{"message without responses", "    type: message\n    next: z\n", "field responses is required"},
		{"message responses not a list", "    type: message\n    responses: hi\n", "field responses must be a list of responses"},
		{"message next not a string", "    type: message\n    responses: [{type: text, message: a}]\n    next: [z]\n", "field next must be a node id"},
		{"question without responses", "    type: question\n    next: z\n", "field responses is required"},
		{"question bad save", "    type: question\n    responses: [{type: text, message: a}]\n    save: my-attr\n    next: z\n", `attribute name "my-attr" must match`},
		{"question bad validator expr", "    type: question\n    responses: [{type: text, message: a}]\n    validate: emial\n    next: z\n", "expression: unknown name emial"},
		{"question bad regex", "    type: question\n    responses: [{type: text, message: a}]\n    validate: \"regex:a(\"\n    next: z\n", "validate: error parsing regexp"},
		{"question bad retry", "    type: question\n    responses: [{type: text, message: a}]\n    retry: [{type: text}]\n    next: z\n", "message: is required"},
		{"condition without routes", "    type: condition\n    else: z\n", "field routes is required"},
		{"condition empty routes", "    type: condition\n    routes: []\n    else: z\n", "field routes needs at least one route"},
		{"condition without else", "    type: condition\n    routes: [{when: 'true', next: z}]\n", "field else is required"},
		{"condition route without when", "    type: condition\n    routes: [{next: z}]\n    else: z\n", "field when is required"},
		{"condition route unknown field", "    type: condition\n    routes: [{when: 'true', next: z, then: z}]\n    else: z\n", "field then not recognised"},
		{"condition when not bool", "    type: condition\n    routes: [{when: '1 + 1', next: z}]\n    else: z\n", "expected bool"},
		{"set without attributes", "    type: set\n    next: z\n", "field attributes is required"},
		{"set attributes not a map", "    type: set\n    attributes: [a]\n    next: z\n", "field attributes must be a map"},
		{"set without next", "    type: set\n    attributes: {a: 1}\n", "field next is required"},
		{"set bad template", "    type: set\n    attributes: {a: '{{ 1 + }}'}\n    next: z\n", "template: unexpected token EOF"},
		{"emit without event", "    type: emit\n    next: z\n", "field event is required"},
		{"emit bad event name", "    type: emit\n    event: OrderRequested\n    next: z\n", `event name "OrderRequested" must be dotted lower case`},
		{"emit bad data template", "    type: emit\n    event: order.requested\n    data: {a: '{{ }}'}\n    next: z\n", "expression is empty"},
		{"handoff bad task", "    type: handoff\n    task: {a: '{{ ( }}'}\n", "template:"},
		{"end unknown field", "    type: end\n    next: z\n", "field next not recognised"},
		{"field set twice", "    type: end\n    responses: []\n    responses: []\n", "field responses is set twice"},
		{"name too long", "    type: end\n    name: " + strings.Repeat("n", 129) + "\n", "name must be 1 to 128 characters"},
		{"node not a mapping", "    - type: end\n", "a node must be a mapping with a type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadErr(t, head+tt.node)
			if !strings.Contains(got, tt.want) {
				t.Errorf("errors:\n%s\nwant one containing %q", got, tt.want)
			}
			if !strings.Contains(got, `test.yaml:`) {
				t.Errorf("errors not positioned: %s", got)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	r := nodes.NewRegistry(nodes.Options{})
	var names []string
	for _, s := range r.Specs() {
		names = append(names, s.Type)
		if s.Summary == "" {
			t.Errorf("node type %s has no summary", s.Type)
		}
		for _, f := range s.Fields {
			if f.Description == "" || f.Kind == "" {
				t.Errorf("%s.%s has no description or kind", s.Type, f.Name)
			}
		}
	}
	for _, want := range []string{"condition", "emit", "end", "handoff", "message", "question", "set"} {
		if !slices.Contains(names, want) {
			t.Errorf("built-in %s not registered (have %v)", want, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("specs not sorted: %v", names)
	}
	if err := nodes.Register(r, nodes.Options{}); err == nil {
		t.Errorf("registering the built-ins twice: no error")
	}
	if q, _, _ := r.Lookup("question"); !q.Waits {
		t.Errorf("question does not wait")
	}
}
