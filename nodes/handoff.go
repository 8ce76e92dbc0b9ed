package nodes

import (
	"context"

	"github.com/storyflow/storyflow/engine"
)

// Handoff sends its responses and hands the chat to a human: the chat's
// status becomes handoff and the turn carries a task (SPEC §6).
type Handoff struct {
	Responses []*engine.ResponseTemplate
	Task      engine.Values
}

var _ engine.Node = (*Handoff)(nil)

func init() {
	builtin(engine.Spec{
		Type:    "handoff",
		Summary: "Sends responses and hands the chat to a human (status handoff, a task is created).",
		Fields: []engine.Field{
			responsesField,
			{Name: "task", Kind: engine.KindValues, Description: "task fields: name to value template"},
		},
	}, func(c *engine.Config) (engine.Node, error) {
		return &Handoff{Responses: c.Responses("responses"), Task: c.Values("task")}, nil
	})
}

// Run implements engine.Node.
func (n *Handoff) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	if err := t.SendTemplates(n.Responses); err != nil {
		return engine.Result{}, err
	}
	task, err := t.Map(n.Task)
	if err != nil {
		return engine.Result{}, err
	}
	t.Task = task
	return engine.Handoff(), nil
}
