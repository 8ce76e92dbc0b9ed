package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// chain50 is a story of 50 nodes in a row: message, condition and set in turn.
func chain50() string {
	var b strings.Builder
	b.WriteString("id: chain\nstart: n0\nnodes:\n")
	for i := range 50 {
		next := fmt.Sprintf("n%d", i+1)
		if i == 49 {
			next = "done"
		}
		fmt.Fprintf(&b, "  n%d:\n", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "    type: message\n    responses: [{type: text, message: Step %d}]\n    next: %s\n", i, next)
		case 1:
			fmt.Fprintf(&b, "    type: condition\n    routes: [{when: attributes.plan == \"pro\", next: %s}]\n    else: done\n", next)
		case 2:
			fmt.Fprintf(&b, "    type: set\n    attributes: {source: bot, greeting: \"Hi {{ userAttributes.name }}\"}\n    next: %s\n", next)
		}
	}
	b.WriteString("  done:\n    type: end\n")
	return b.String()
}

// BenchmarkTurn runs a whole turn over 50 nodes (and the end node) and
// reports the time per node.
func BenchmarkTurn(b *testing.B) {
	s := load(b, chain50())
	r := quietRunner()
	c := engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, map[string]any{"plan": "pro"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c.Node, c.Status, c.Transcript = s.Start, engine.StatusActive, c.Transcript[:0]
		if _, err := r.Start(ctx, s, c); err != nil {
			b.Fatal(err)
		}
	}
	if c.Status != engine.StatusCompleted || c.Node != "done" {
		b.Fatalf("chat ended %s at %s", c.Status, c.Node)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*51), "ns/step")
}
