package nodes_test

import (
	"context"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// benchStep measures the first turn of a chat that runs node id, then an
// end node: a turn's own cost (chat, turn) plus the node's.
func benchStep(b *testing.B, src, id string) {
	s := load(b, src)
	if s.Start != id {
		b.Fatalf("the story must start at %s", id)
	}
	var r engine.Runner
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c := engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, map[string]any{"plan": "pro"})
		if _, err := r.Start(ctx, s, c); err != nil {
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
