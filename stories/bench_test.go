package stories_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// bigStory generates a story of n nodes (n a multiple of 4): groups of a
// message, a question, a condition and a set, with templates in responses
// and values, a validator, a condition of its own in each group and a goto
// button, every node reachable from start.
func bigStory(n int) []byte {
	var b strings.Builder
	b.WriteString("id: big\nname: Generated\nstart: m0\nattributes: {plan: free, n: 0}\nnodes:\n")
	groups := n / 4
	validators := []string{"number", "email", "len(input) > 1", `"regex:^[0-9]+$"`}
	for g := range groups {
		next := fmt.Sprintf("m%d", g+1)
		if g == groups-1 {
			next = "m0"
		}
		fmt.Fprintf(&b, `  m%[1]d:
    type: message
    responses:
      - type: text
        message: "Step %[1]d, {{ userAttributes.name }}: you have {{ attributes.n }} points."
    next: q%[1]d
  q%[1]d:
    type: question
    responses:
      - type: quickReplies
        title: How many for step %[1]d?
        buttons: [{type: postback, title: "One", value: "1"}, {type: goto, title: Restart, value: m0}]
    validate: %[3]s
    save: a%[1]d
    next: c%[1]d
  c%[1]d:
    type: condition
    routes:
      - when: attributes.a%[1]d > %[1]d && attributes.plan == "pro"
        next: s%[1]d
    else: %[2]s
  s%[1]d:
    type: set
    attributes:
      n: "{{ attributes.n + 1 }}"
      last: "step %[1]d by {{ userAttributes.name }}"
    next: %[2]s
`, g, next, validators[g%4])
	}
	return []byte(b.String())
}

func TestBigStory(t *testing.T) {
	s, warns, err := stories.Load("big.yaml", bigStory(400), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 400 || len(warns) != 0 {
		t.Errorf("%d nodes, warnings %v; want 400 and none", len(s.Nodes), warns)
	}
}

func BenchmarkLoad10000(b *testing.B) { benchLoad(b) }

// BenchmarkLoad10000Whole is BenchmarkLoad10000 with the file parsed whole
// (not its nodes: section in parts on all cores), to show what the parallel
// split is worth (docs/operations.md).
func BenchmarkLoad10000Whole(b *testing.B) {
	defer stories.SetParallelMin(stories.SetParallelMin(1 << 62))
	benchLoad(b)
}

func benchLoad(b *testing.B) {
	src := bigStory(10000)
	o := stories.Options{Registry: nodes.NewRegistry(nodes.Options{}), Getenv: testEnv}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		s, _, err := stories.Load("big.yaml", src, o)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Nodes) != 10000 {
			b.Fatalf("%d nodes", len(s.Nodes))
		}
	}
	// The CPU time of a load (all goroutines, the GC's too) tells more than
	// the wall time on a machine shared with other work.
	if cpu >= 0 {
		b.ReportMetric(float64(processCPU()-cpu)/1e6/float64(b.N), "cpu-ms/op")
	}
}
