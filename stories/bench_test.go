package stories_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// bigStory generates a story of n nodes (n a multiple of 4): groups of a
// message, a question, a condition and a set, with templates and
// expressions, every node reachable from start.
func bigStory(n int) []byte {
	var b strings.Builder
	b.WriteString("id: big\nname: Generated\nstart: m0\nattributes: {plan: free, n: 0}\nnodes:\n")
	groups := n / 4
	for g := range groups {
		next := fmt.Sprintf("m%d", g+1)
		if g == groups-1 {
			next = "m0"
		}
		fmt.Fprintf(&b, `  m%[1]d:
    name: Message %[1]d
    type: message
    responses:
      - type: text
        message: "Hi {{ userAttributes.name }}, this is step %[1]d of {{ attributes.n }}."
      - type: quickReplies
        title: Pick one
        buttons:
          - {type: postback, title: "Yes", value: "yes"}
          - {type: postback, title: "No", value: "no"}
          - {type: goto, title: Start over, value: m0}
    next: q%[1]d
  q%[1]d:
    type: question
    responses:
      - type: text
        message: How many items for step %[1]d?
    validate: %[3]s
    save: answer%[1]d
    retry:
      - type: text
        message: "Sorry, {{ input }} is not a valid answer."
    next: c%[1]d
  c%[1]d:
    type: condition
    routes:
      - when: attributes.answer%[1]d > 10 && attributes.plan == "pro"
        next: s%[1]d
      - when: len(input) > 3 or input matches "^[0-9]+$"
        next: s%[1]d
    else: %[2]s
  s%[1]d:
    type: set
    attributes:
      n: "{{ attributes.n + 1 }}"
      last: "step %[1]d for {{ userAttributes.name }}"
      plan: pro
    next: %[2]s
`, g, next, []string{"number", "len(input) > 0", "email", `"regex:^[0-9]+$"`}[g%4])
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

func BenchmarkLoad10000(b *testing.B) {
	src := bigStory(10000)
	o := stories.Options{Registry: nodes.NewRegistry(nodes.Options{}), Getenv: testEnv}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		s, _, err := stories.Load("big.yaml", src, o)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Nodes) != 10000 {
			b.Fatalf("%d nodes", len(s.Nodes))
		}
	}
}
