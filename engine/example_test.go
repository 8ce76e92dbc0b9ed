package engine_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/stories"
)

// Greet is a node type: it greets someone by a template and goes on.
type Greet struct {
	To   *engine.Template
	Next string // "" completes the chat
}

// greetSpec describes the type's config: loading, lints, the JSON Schema
// and the graph read it.
var greetSpec = engine.Spec{
	Type:    "greet",
	Summary: "Says hello to someone.",
	Fields: []engine.Field{
		{Name: "to", Kind: engine.KindTemplate, Required: true, Description: "who to greet"},
		{Name: "next", Kind: engine.KindRef, Description: "node after the greeting"},
	},
	// Later nodes of the turn read greet.name.
	Scope: &engine.Scope{Name: "greet", Defaults: map[string]any{"name": ""}},
}

// newGreet is the constructor: it reads the config through typed getters,
// which report a bad value at its line and column; its own checks go
// through Errorf with the field's name.
func newGreet(c *engine.Config) (engine.Node, error) {
	n := &Greet{To: c.Template("to"), Next: c.Ref("next", "next", "")}
	if n.To != nil && n.To.Static() && n.To.Source == "" {
		c.Errorf("to", "to must not be empty")
	}
	return n, nil
}

// Run sends the greeting and goes on.
func (n *Greet) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	name, err := t.Render(n.To)
	if err != nil {
		return engine.Result{}, err
	}
	t.Set("greet", map[string]any{"name": name})
	t.Send(engine.Response{Type: engine.TypeText, Message: "Hello, " + name + "!"})
	if n.Next == "" {
		return engine.Complete(), nil
	}
	return engine.Goto(n.Next), nil
}

// Example registers a node type, loads a story that uses it and runs a
// chat. A registry is a value: nodes.NewRegistry holds the built-in types,
// and a custom binary adds its own the same way (see package cli).
func Example() {
	reg := engine.NewRegistry()
	if err := reg.Register(greetSpec, newGreet); err != nil {
		panic(err)
	}
	src := `
id: hello
start: first
nodes:
  first: {type: greet, to: "{{ userAttributes.name }}", next: second}
  second: {type: greet, to: "the friend of {{ greet.name }}"}
`
	story, _, err := stories.Load("hello.yaml", []byte(src), stories.Options{Registry: reg})
	if err != nil {
		panic(err)
	}
	var runner engine.Runner
	chat := engine.NewChat(story, "chat-1", "user-1", "", map[string]any{"name": "Ann"}, nil)
	turn, err := runner.Start(context.Background(), story, chat)
	if err != nil {
		panic(err)
	}
	for _, r := range turn.Output {
		fmt.Println(r.Message)
	}
	fmt.Println(chat.Status)

	// A problem in the config is a lint with the file, line and column.
	_, _, err = stories.Load("bad.yaml", []byte(`
id: bad
start: first
nodes:
  first: {type: greet, to: "", next: nowhere}
`), stories.Options{Registry: reg})
	var le *engine.LintError
	if errors.As(err, &le) {
		for _, l := range le.Lints {
			fmt.Println(l)
		}
	}
	// Output:
	// Hello, Ann!
	// Hello, the friend of Ann!
	// completed
	// bad.yaml:5:28: node "first" (greet): to must not be empty
	// bad.yaml:5:38: node "first" (greet): next: node "nowhere" not found
}
