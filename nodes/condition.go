package nodes

import (
	"context"

	"github.com/storyflow/storyflow/engine"
)

// Condition goes to the first route whose condition holds, else to Else.
type Condition struct {
	Routes []engine.Route
	Else   string
}

var _ engine.Node = (*Condition)(nil)

func init() {
	builtin(engine.Spec{
		Type:    "condition",
		Summary: "Goes to the first route whose when holds; otherwise to else.",
		Fields: []engine.Field{
			{Name: "routes", Kind: engine.KindRoutes, Required: true, Description: "list of {when, next}", Fields: engine.RouteFields},
			{Name: "else", Kind: engine.KindRef, Required: true, Description: "node to go to when no route holds"},
		},
	}, func(c *engine.Config) (engine.Node, error) {
		n := &Condition{Routes: c.Routes("routes"), Else: c.Ref("else", "else", "else")}
		if c.Has("routes") && len(n.Routes) == 0 && !c.Failed() {
			c.Errorf("routes", "field routes needs at least one route")
		}
		return n, nil
	})
}

// Run implements engine.Node.
func (n *Condition) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	next, ok, err := t.Pick(n.Routes)
	if err != nil {
		return engine.Result{}, err
	}
	if !ok {
		next = n.Else
	}
	return engine.Goto(next), nil
}
