package engine_test

import (
	"context"
	"log/slog"
	"reflect"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// TestTrace checks the steps kept on each turn's first entry: the nodes
// run, the route taken, how the turn ended.
func TestTrace(t *testing.T) {
	src := `id: tr
start: hello
nodes:
  hello:
    type: message
    responses: [{type: text, message: hi}]
    next: ask
  ask:
    type: question
    responses: [{type: text, message: "plan?"}]
    save: plan
    validate: input in ["free", "pro", "gold"]
    next: route
  route:
    type: condition
    routes:
      - when: attributes.plan == "free"
        next: ask
      - when: attributes.plan == "pro"
        next: done
    else: ask
  done:
    type: end
    responses: [{type: text, message: bye}]
`
	s, _, err := stories.Load("tr.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(nodes.Options{})})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	r := &engine.Runner{Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	c := engine.NewChat(s, "c1", "", "", nil, nil)
	if _, err := r.Start(ctx, s, c); err != nil {
		t.Fatal(err)
	}
	turns := []struct {
		input string
		want  []engine.Step
	}{
		{"", []engine.Step{{Node: "hello", Next: "ask"}, {Node: "ask", End: "wait"}}},
		{"nope", []engine.Step{{Node: "ask", End: "wait"}}},
		{"gold", []engine.Step{{Node: "ask", Next: "route"}, {Node: "route", Next: "ask"}, {Node: "ask", End: "wait"}}},
		{"pro", []engine.Step{{Node: "ask", Next: "route"}, {Node: "route", Next: "done", Route: 2}, {Node: "done", End: "completed"}}},
	}
	for i, tt := range turns {
		if tt.input != "" {
			if _, err := r.Send(ctx, s, c, engine.Input{Text: tt.input}); err != nil {
				t.Fatal(err)
			}
		}
		var first *engine.Entry
		for j := range c.Transcript {
			if c.Transcript[j].Steps != nil {
				first = &c.Transcript[j]
			}
		}
		if first == nil {
			t.Fatalf("turn %d: no entry has steps", i)
		}
		if !reflect.DeepEqual(first.Steps, tt.want) {
			t.Errorf("turn %d (%q): steps %+v, want %+v", i, tt.input, first.Steps, tt.want)
		}
		if tt.input != "" && (first.From != "user" || first.Input.Text != tt.input) {
			t.Errorf("turn %d: steps on %+v, want on the user's input", i, first)
		}
	}
}
