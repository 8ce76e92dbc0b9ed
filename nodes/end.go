package nodes

import (
	"context"

	"github.com/storyflow/storyflow/engine"
)

// End sends its responses and completes the chat.
type End struct {
	Responses []*engine.ResponseTemplate
}

var _ engine.Node = (*End)(nil)

func init() {
	builtin(engine.Spec{
		Type:    "end",
		Summary: "Sends responses and completes the chat.",
		Fields:  []engine.Field{responsesField},
	}, func(c *engine.Config) (engine.Node, error) {
		return &End{Responses: c.Responses("responses")}, nil
	})
}

// Run implements engine.Node.
func (n *End) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	if err := t.SendTemplates(n.Responses); err != nil {
		return engine.Result{}, err
	}
	return engine.Complete(), nil
}
