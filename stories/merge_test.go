package stories_test

import (
	"strings"
	"testing"

	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

func TestMergeKeys(t *testing.T) {
	reg := nodes.NewRegistry(nodes.Options{})
	src := `id: merge
start: a
x-defaults:
  ask: &ask
    type: question
    validate: email
    next: c
  text: &text {type: message}
nodes:
  a:
    <<: *ask
    responses: [{type: text, message: "Email?"}]
    next: b
  b:
    <<: [*text]
    responses: [{type: text, message: "Thanks"}]
  c: {type: end}
`
	s, warns, err := stories.Load("m.yaml", []byte(src), stories.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if s.Nodes["a"].Type != "question" || s.Nodes["b"].Type != "message" {
		t.Errorf("types %q %q", s.Nodes["a"].Type, s.Nodes["b"].Type)
	}
	// The node's own next wins over the merged one: c is unreachable.
	if len(warns) != 1 || warns[0].Node != "c" {
		t.Errorf("warnings %v", warns)
	}

	bad := "id: m\nstart: a\nnodes:\n  a:\n    <<: 5\n    type: end\n"
	_, _, err = stories.Load("m.yaml", []byte(bad), stories.Options{Registry: reg})
	if err == nil || !strings.Contains(err.Error(), "m.yaml:5:5: << must merge a mapping") {
		t.Errorf("bad merge: %v", err)
	}
}
