package nodes_test

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// benchSteps measures a step of one node type: a turn that runs a chain of
// steps nodes, each node's body (NEXT: the next node's id), then an end node. It reports ns/step
// and allocs/step: the turn's cost spread over its steps (a chain of 50
// makes the turn's own cost a small share).
func benchSteps(b *testing.B, body string) {
	const steps = 50
	var src strings.Builder
	src.WriteString("id: b\nstart: n0\nnodes:\n")
	for i := range steps {
		next := fmt.Sprintf("n%d", i+1)
		if i == steps-1 {
			next = "z"
		}
		fmt.Fprintf(&src, "  n%d:\n%s", i, strings.ReplaceAll(body, "NEXT", next))
	}
	src.WriteString("  z:\n    type: end\n")
	s := load(b, src.String())
	// GOGC as storyflow serve sets it (cli: gcPercent): with the test
	// binary's tiny heap, the default collects every few turns and the
	// figures are the collector's.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var r engine.Runner
	ctx := context.Background()
	c := engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, map[string]any{"plan": "pro"})
	b.ReportAllocs()
	allocs := testing.AllocsPerRun(10, func() {
		c.Node, c.Status, c.Transcript = s.Start, engine.StatusActive, c.Transcript[:0]
		if _, err := r.Start(ctx, s, c); err != nil {
			b.Fatal(err)
		}
	})
	for b.Loop() {
		c.Node, c.Status, c.Transcript = s.Start, engine.StatusActive, c.Transcript[:0]
		if _, err := r.Start(ctx, s, c); err != nil {
			b.Fatal(err)
		}
	}
	if c.Status != engine.StatusCompleted {
		b.Fatalf("chat ended %s at %s", c.Status, c.Node)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(steps+1)), "ns/step")
	b.ReportMetric(allocs/float64(steps+1), "allocs/step")
}

func BenchmarkMessageStep(b *testing.B) {
	benchSteps(b, `    type: message
    responses:
      - type: text
        message: Welcome to Acme support!
    next: NEXT
`)
}

func BenchmarkConditionStep(b *testing.B) {
	benchSteps(b, `    type: condition
    routes:
      - when: attributes.plan == "pro"
        next: NEXT
    else: z
`)
}

func BenchmarkSetStep(b *testing.B) {
	benchSteps(b, `    type: set
    attributes:
      source: bot
      greeting: "Hi {{ userAttributes.name }}"
    next: NEXT
`)
}

// BenchmarkSetTypedStep: a template that is one expression keeps its type.
func BenchmarkSetTypedStep(b *testing.B) {
	benchSteps(b, `    type: set
    attributes:
      source: bot
      pro: "{{ attributes.plan == 'pro' }}"
    next: NEXT
`)
}
