package nodes_test

import (
	"context"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// benchStep measures one Run of node id on a reused turn.
func benchStep(b *testing.B, src, id string) {
	s := load(b, src)
	c := engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, map[string]any{"plan": "pro"})
	t := engine.NewTurn(s, c, engine.Input{Text: "hi"})
	n := s.Nodes[id].Node
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		t.Reset()
		if _, err := n.Run(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
}

const benchTail = `  z:
    type: end
`

func BenchmarkMessageStep(b *testing.B) {
	benchStep(b, `id: b
start: a
nodes:
  a:
    type: message
    responses:
      - type: text
        message: Welcome to Acme support!
    next: z
`+benchTail, "a")
}

func BenchmarkConditionStep(b *testing.B) {
	benchStep(b, `id: b
start: a
nodes:
  a:
    type: condition
    routes:
      - when: attributes.plan == "pro"
        next: z
    else: z
`+benchTail, "a")
}

func BenchmarkSetStep(b *testing.B) {
	benchStep(b, `id: b
start: a
nodes:
  a:
    type: set
    attributes:
      source: bot
      greeting: "Hi {{ userAttributes.name }}"
    next: z
`+benchTail, "a")
}

// BenchmarkSetTypedStep: a template that is one expression keeps its type.
func BenchmarkSetTypedStep(b *testing.B) {
	benchStep(b, `id: b
start: a
nodes:
  a:
    type: set
    attributes:
      source: bot
      pro: "{{ attributes.plan == 'pro' }}"
    next: z
`+benchTail, "a")
}
