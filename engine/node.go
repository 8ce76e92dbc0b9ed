// Package engine is storyflow's interpreter: it walks a story's node graph for
// one chat. It knows no node type, storage or server: those plug into it.
package engine

import "context"

// Node is a compiled node of a story. Run is called when the chat arrives at
// the node and returns where to go next.
type Node interface {
	Run(ctx context.Context, t *Turn) (Result, error)
}

// Resumer is a node that waits for user input (a question): Resume is called
// with the input when the chat waits at the node.
type Resumer interface {
	Resume(ctx context.Context, t *Turn) (Result, error)
}

// Result tells the interpreter what follows a node.
type Result struct {
	// Next is the node to run next; empty with no Wait or Status completes the chat.
	Next string
	// Wait ends the turn; the chat waits for input at this node.
	Wait bool
	// Status ends the turn with this status (StatusCompleted, StatusHandoff).
	Status Status
}

// Goto continues at node id.
func Goto(id string) Result { return Result{Next: id} }

// Wait ends the turn and waits for input at the current node.
func Wait() Result { return Result{Wait: true} }

// Complete completes the chat.
func Complete() Result { return Result{Status: StatusCompleted} }

// Handoff hands the chat to a human.
func Handoff() Result { return Result{Status: StatusHandoff} }

// Input is one user input: text, a postback value, or a goto.
type Input struct {
	Text     string `json:"text,omitempty"`
	Postback string `json:"postback,omitempty"`
	Goto     string `json:"goto,omitempty"`
}

// Value is what the input means to expressions: the text or the postback value.
func (in Input) Value() string {
	if in.Postback != "" {
		return in.Postback
	}
	return in.Text
}

// Event is published by emit nodes (and the server) to an EventSink.
type Event struct {
	Name string         `json:"event"`
	Data map[string]any `json:"data"`
}

// EventSink receives the events of a turn once it is over.
type EventSink interface {
	Publish(ctx context.Context, chat *Chat, events []Event) error
}
