package split_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/examples/customnode/split"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"gopkg.in/yaml.v3"
)

func registry(t testing.TB) *engine.Registry {
	t.Helper()
	reg := nodes.NewRegistry(nodes.Options{})
	if err := split.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestRegisterTwice(t *testing.T) {
	reg := registry(t)
	err := split.Register(reg)
	if err == nil || !strings.Contains(err.Error(), `"split": already registered`) {
		t.Errorf("second Register: %v", err)
	}
}

// splitStory puts node (the lines under "  ab:") in a story with end nodes a and b.
func splitStory(node string) string {
	return "id: ab\nstart: ab\nnodes:\n  ab:\n    type: split\n" + node + "  a: {type: end}\n  b: {type: end}\n"
}

func lintText(ls []engine.Lint) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestLoadErrors(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct {
		name, node, want string
	}{
		{
			name: "zero weight",
			node: "    branches:\n      - {weight: 0, next: a}\n      - {weight: 30, next: b}\n",
			want: `ab.yaml:7:18: node "ab" (split): weight must be a positive integer up to 1000000, got 0`,
		},
		{
			name: "negative weight",
			node: "    branches:\n      - {weight: 70, next: a}\n      - {weight: -5, next: b}\n",
			want: `ab.yaml:8:18: node "ab" (split): weight must be a positive integer up to 1000000, got -5`,
		},
		{
			name: "weight too large",
			node: "    branches:\n      - weight: 2000000\n        next: a\n      - {weight: 1, next: b}\n",
			want: `ab.yaml:7:17: node "ab" (split): weight must be a positive integer up to 1000000, got 2000000`,
		},
		{
			name: "weight not an integer",
			node: "    branches:\n      - {weight: lots, next: a}\n      - {weight: 1.5, next: b}\n",
			want: `ab.yaml:7:18: node "ab" (split): field weight must be an integer, got "lots"` + "\n" +
				`ab.yaml:8:18: node "ab" (split): field weight must be an integer, got "1.5"`,
		},
		{
			name: "missing next",
			node: "    branches:\n      - {weight: 70, next: a}\n      - {weight: 30}\n",
			want: `ab.yaml:8:9: node "ab" (split): field next is required`,
		},
		{
			name: "missing weight",
			node: "    branches:\n      - next: a\n      - {weight: 30, next: b}\n",
			want: `ab.yaml:7:9: node "ab" (split): field weight is required`,
		},
		{
			name: "next names no node",
			node: "    branches:\n      - {weight: 70, next: a}\n      - {weight: 30, next: nope}\n",
			want: `ab.yaml:8:28: node "ab" (split): branch: node "nope" not found`,
		},
		{
			name: "unknown branch field",
			node: "    branches:\n      - {weight: 70, next: a, colour: red}\n      - {weight: 30, next: b}\n",
			want: `ab.yaml:7:31: node "ab" (split): field colour not recognised`,
		},
		{
			name: "no branches",
			node: "    attribute: variant\n",
			want: `ab.yaml:5:5: node "ab" (split): field branches is required`,
		},
		{
			name: "empty branches",
			node: "    branches: []\n",
			want: `ab.yaml:6:15: node "ab" (split): field branches needs at least one branch`,
		},
		{
			name: "branches not a list",
			node: "    branches: 5\n",
			want: `ab.yaml:6:15: node "ab" (split): field branches must be a list`,
		},
		{
			name: "bad attribute name",
			node: "    attribute: my variant\n    branches:\n      - {weight: 1, next: a}\n      - {weight: 1, next: b}\n",
			want: `ab.yaml:6:16: node "ab" (split): attribute name "my variant" must match [A-Za-z_][A-Za-z0-9_]{0,63}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := stories.Load("ab.yaml", []byte(splitStory(tc.node)), stories.Options{Registry: reg})
			var le *engine.LintError
			if !errors.As(err, &le) {
				t.Fatalf("want lint errors, got %v", err)
			}
			if got := strings.TrimSpace(lintText(le.Lints)); got != tc.want {
				t.Errorf("lints:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestOneBranchWarns(t *testing.T) {
	src := splitStory("    branches:\n      - {weight: 1, next: a}\n")
	_, warns, err := stories.Load("ab.yaml", []byte(src), stories.Options{Registry: registry(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := `ab.yaml:7:7: warning: node "ab" (split): a split with one branch always takes it` + "\n" +
		`ab.yaml:9:3: warning: node "b" (end): not reachable from start` + "\n"
	if got := lintText(warns); got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
}

// TestShares runs many users through the example story: the shares follow
// the weights, each user keeps their branch, and the attribute records it.
func TestShares(t *testing.T) {
	src, err := os.ReadFile("../story.yaml")
	if err != nil {
		t.Fatal(err)
	}
	story, warns, err := stories.Load("story.yaml", src, stories.Options{Registry: registry(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("story.yaml has warnings:\n%s", lintText(warns))
	}
	var runner engine.Runner
	ctx := context.Background()
	counts := map[string]int{}
	const users = 10000
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		var first string
		for visit := range 2 {
			chat := engine.NewChat(story, fmt.Sprintf("%s-%d", user, visit), user, "", nil, nil)
			if _, err := runner.Start(ctx, story, chat); err != nil {
				t.Fatal(err)
			}
			v, _ := chat.Attributes["variant"].(string)
			wantNode := map[string]string{"tour": "tour_wait", "short": "ask_email"}[v]
			if chat.Node != wantNode {
				t.Fatalf("%s: variant %q but chat waits at %q", user, v, chat.Node)
			}
			if visit == 0 {
				first = v
				counts[v]++
			} else if v != first {
				t.Fatalf("%s: variant %q on the first visit, %q on the second", user, first, v)
			}
		}
	}
	if len(counts) != 2 || counts["tour"]+counts["short"] != users {
		t.Fatalf("variants: %v", counts)
	}
	// 70% of 10000 has a standard deviation of about 46: allow 3 of them.
	if n := counts["tour"]; n < 6860 || n > 7140 {
		t.Errorf("tour taken by %d of %d users, want about 7000", n, users)
	}
}

func TestRunWithoutWeights(t *testing.T) {
	s := &split.Split{Branches: []split.Branch{{Name: "a", Next: "a"}}}
	if _, ok := s.Pick("u", "n"); ok {
		t.Error("Pick found a branch with no weights")
	}
	story := &engine.Story{ID: "x", Start: "n", Nodes: map[string]*engine.NodeInfo{"n": {ID: "n", Type: split.Type, Node: s}}}
	chat := engine.NewChat(story, "c", "", "", nil, nil)
	runner := engine.Runner{Logger: slog.New(slog.DiscardHandler)}
	turn, err := runner.Start(context.Background(), story, chat)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(chat.Error, "no branch with a positive weight") || len(turn.Output) != 1 {
		t.Errorf("chat error %q, output %v", chat.Error, turn.Output)
	}
}

// TestSchema checks that split shows up in the JSON Schema of a registry
// that has it, and that the schema accepts the example story.
func TestSchema(t *testing.T) {
	raw, err := stories.Schema(registry(t))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs struct {
			Node struct {
				Properties struct {
					Type struct {
						Enum []string `json:"enum"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"node"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Defs.Node.Properties.Type.Enum, split.Type) {
		t.Fatalf("node types in the schema: %v", s.Defs.Node.Properties.Type.Enum)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("story.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("story.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("../story.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src string
		ok        bool
	}{
		{"story.yaml", string(file), true},
		{"example", abStory, true},
		{"unknown branch field", splitStory("    branches:\n      - {weight: 1, next: a, colour: red}\n"), false},
		{"missing next", splitStory("    branches:\n      - {weight: 1}\n"), false},
		{"weight not an integer", splitStory("    branches:\n      - {weight: lots, next: a}\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := yaml.Unmarshal([]byte(tc.src), &v); err != nil {
				t.Fatal(err)
			}
			js, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(inst)
			if tc.ok && err != nil {
				t.Errorf("rejected: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("accepted")
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	reg := registry(b)
	story, _, err := stories.Load("pricing.yaml", []byte(abStory), stories.Options{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	n := story.Nodes["pick"].Node.(*split.Split)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := n.Pick("user-12345", "pick"); !ok {
			b.Fatal("no branch")
		}
	}
}

// TestScope: the nodes after a split read the branch taken as split.branch
// in the same turn (a node scope), with no attribute set.
func TestScope(t *testing.T) {
	src := `
id: s
start: pick
nodes:
  pick:
    type: split
    branches:
      - {name: A, weight: 1, next: say}
  say:
    type: message
    responses: [{type: text, message: "branch {{ split.branch }}"}]
`
	story, _, err := stories.Load("s.yaml", []byte(src), stories.Options{Registry: registry(t)})
	if err != nil {
		t.Fatal(err)
	}
	var r engine.Runner
	turn, err := r.Start(context.Background(), story, engine.NewChat(story, "c", "u", "", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(turn.Output) != 1 || turn.Output[0].Message != "branch A" {
		t.Errorf("output %+v, want the message \"branch A\"", turn.Output)
	}
}
