package stories_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/stories"
)

// loaded is what Load tells of a file, to compare two ways of parsing.
type loaded struct {
	Lints []string
	Nodes []string // id line:col type edges
}

func loadSummary(src []byte, parallelMin int) loaded {
	old := stories.SetParallelMin(parallelMin)
	defer stories.SetParallelMin(old)
	s, warns, err := stories.Load("f.yaml", src, testOptions())
	var out loaded
	lints := warns
	if err != nil {
		lints = err.(*engine.LintError).Lints
	}
	for _, l := range lints {
		out.Lints = append(out.Lints, l.String())
	}
	if s != nil {
		for _, id := range s.Order {
			n := s.Nodes[id]
			out.Nodes = append(out.Nodes, fmt.Sprintf("%s %d:%d %s %v", id, n.Line, n.Column, n.Type, n.Edges))
		}
	}
	return out
}

// checkSplitSame loads src parsed whole and parsed in parts.
func checkSplitSame(t *testing.T, name string, src []byte) {
	t.Helper()
	whole := loadSummary(src, 1<<62)
	split := loadSummary(src, 0)
	if !reflect.DeepEqual(whole, split) {
		t.Errorf("%s: parsed in parts:\n%v\nparsed whole:\n%v", name, split, whole)
	}
}

func TestSplitParseSame(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("parsing in parts needs two cores")
	}
	var files []string
	for _, p := range []string{"../examples/stories/*.yaml", "testdata/broken/*.yaml", "testdata/warnings/*.yaml"} {
		fs, _ := filepath.Glob(p)
		files = append(files, fs...)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkSplitSame(t, f, src)
	}
	node := func(id, next string) string {
		return fmt.Sprintf("  %s:\n    type: message\n    responses:\n      - type: text\n        message: |\n          Hello from %s\n          {{ userAttributes.name }}\n    next: %s\n", id, id, next)
	}
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(node(fmt.Sprintf("n%d", i), fmt.Sprintf("n%d", (i+1)%n)))
		}
		return b.String()
	}
	head := "id: s\nstart: n0\n"
	// inParts: whether the file can be parsed in parts (else it is parsed whole).
	inParts := map[string]bool{
		"plain": true, "comment lines": true, "keys after nodes": true, "nodes first": true,
		"indented four": true, "crlf": true, "anchor inside a node": true, "duplicate node": true,
		"unknown field in part": true, "two nodes sections": true,
	}
	tests := map[string]string{
		"plain":                 head + "nodes:\n" + many(40),
		"comment lines":         head + "nodes: # the graph\n# a comment at column 0\n" + strings.ReplaceAll(many(40), "  n1", "  # note\n  n1") + "# end\n",
		"keys after nodes":      head + "nodes:\n" + many(40) + "attributes:\n  plan: free\nonError: n3\n",
		"nodes first":           "nodes:\n" + many(40) + head,
		"indented four":         head + strings.ReplaceAll("nodes:\n"+many(40), "\n  ", "\n    "),
		"crlf":                  strings.ReplaceAll(head+"nodes:\n"+many(40), "\n", "\r\n"),
		"anchor inside a node":  head + "nodes:\n" + many(20) + "  a:\n    type: end\n    responses: &r [{type: text, message: hi}]\n  b:\n    type: end\n    responses: *r\n" + many(20)[len(node("n0", "n1")):],
		"anchor across nodes":   head + "nodes:\n  a:\n    type: end\n    responses: &r [{type: text, message: hi}]\n" + many(40) + "  b:\n    type: end\n    responses: *r\n",
		"anchor in attributes":  head + "attributes: &a {x: 1}\nnodes:\n" + many(40) + "  c:\n    type: set\n    attributes: *a\n    next: n0\n",
		"two nodes sections":    head + "nodes:\n" + many(20) + "nodes:\n" + many(20),
		"flow nodes":            head + "nodes: {a: {type: end}}\n",
		"error in a part":       head + "nodes:\n" + many(30) + "  bad:\n    type: end\n   next: x\n" + many(10),
		"error in the rest":     "id: [s\nstart: n0\nnodes:\n" + many(40),
		"tab":                   head + "nodes:\n" + many(20) + "  t:\n\ttype: end\n" + many(20),
		"two documents":         head + "nodes:\n" + many(40) + "---\nid: other\n",
		"sequence of nodes":     head + "nodes:\n  - a\n  - b\n",
		"duplicate node":        head + "nodes:\n" + many(40) + node("n5", "n0"),
		"unknown field in part": head + "nodes:\n" + strings.Replace(many(40), "    next: n30\n", "    nxt: n30\n", 1),
	}
	for name, src := range tests {
		if got := stories.ParsedInParts([]byte(src)); got != inParts[name] {
			t.Errorf("%s: parsed in parts %v, want %v", name, got, inParts[name])
		}
		checkSplitSame(t, name, []byte(src))
	}
	if !stories.ParsedInParts(bigStory(400)) {
		t.Errorf("the generated story is not parsed in parts")
	}
	checkSplitSame(t, "big", bigStory(400))
}
