package nodes

import (
	"context"
	"regexp"

	"github.com/storyflow/storyflow/engine"
)

// Emit publishes an event with data (templates), then goes to next.
type Emit struct {
	Event string
	Data  engine.Values
	Next  string
}

var _ engine.Node = (*Emit)(nil)

var eventNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

func init() {
	builtin(engine.Spec{
		Type:    "emit",
		Summary: "Publishes an event (e.g. order.requested) with data, then goes on to next.",
		Fields: []engine.Field{
			{Name: "event", Kind: engine.KindString, Required: true, Description: "event name, dotted lower case, e.g. order.requested"},
			{Name: "data", Kind: engine.KindValues, Description: "event data: name to value template"},
			nextField,
		},
	}, func(c *engine.Config) (engine.Node, error) {
		n := &Emit{Event: c.String("event"), Data: c.Values("data"), Next: c.Ref("next", "next", "")}
		if c.Has("event") && !eventNameRe.MatchString(n.Event) {
			c.Errorf("event", "event name %q must be dotted lower case, like order.requested", n.Event)
		}
		return n, nil
	})
}

// Run implements engine.Node.
func (n *Emit) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	data, err := t.Map(n.Data)
	if err != nil {
		return engine.Result{}, err
	}
	t.Emit(n.Event, data)
	if n.Next == "" {
		return engine.Complete(), nil
	}
	return engine.Goto(n.Next), nil
}
