package nodes

import (
	"context"

	"github.com/storyflow/storyflow/engine"
)

// Set sets chat attributes to values (templates keep their type when they are
// exactly one {{ expr }}), then goes to next.
type Set struct {
	Attributes engine.Values
	Next       string
}

var _ engine.Node = (*Set)(nil)

func init() {
	builtin(engine.Spec{
		Type:    "set",
		Summary: "Sets chat attributes (values are templates), then goes on to next.",
		Fields: []engine.Field{
			{Name: "attributes", Kind: engine.KindValues, Required: true, Sets: true, Description: "attribute name to value; a null value removes the attribute"},
			withRequired(nextField),
		},
	}, func(c *engine.Config) (engine.Node, error) {
		return &Set{Attributes: c.Values("attributes"), Next: c.Ref("next", "next", "")}, nil
	})
}

// Run implements engine.Node.
func (n *Set) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	for i := range n.Attributes {
		v, err := t.EvalValue(&n.Attributes[i])
		if err != nil {
			return engine.Result{}, err
		}
		if v == nil {
			t.DeleteAttribute(n.Attributes[i].Name)
			continue
		}
		t.SetAttribute(n.Attributes[i].Name, v)
	}
	return engine.Goto(n.Next), nil
}
