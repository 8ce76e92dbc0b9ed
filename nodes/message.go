package nodes

import (
	"context"

	"github.com/storyflow/storyflow/engine"
)

// Message sends its responses and goes on to next; with no next the chat is completed.
type Message struct {
	Responses []*engine.ResponseTemplate
	Next      string
}

var _ engine.Node = (*Message)(nil)

func init() {
	builtin(engine.Spec{
		Type:    "message",
		Summary: "Sends responses, then goes on to next; with no next the chat is completed.",
		Fields:  []engine.Field{withRequired(responsesField), nextField},
	}, func(c *engine.Config) (engine.Node, error) {
		return &Message{Responses: c.Responses("responses"), Next: c.Ref("next", "next", "")}, nil
	})
}

func withRequired(f engine.Field) engine.Field {
	f.Required = true
	return f
}

// Run implements engine.Node.
func (n *Message) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	if err := t.SendTemplates(n.Responses); err != nil {
		return engine.Result{}, err
	}
	if n.Next == "" {
		return engine.Complete(), nil
	}
	return engine.Goto(n.Next), nil
}
