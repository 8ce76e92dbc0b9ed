// Package engine is storyflow's interpreter, and the API node types are
// written against. It walks a story's node graph for one chat; it knows no
// node type, storage, webhook or server: those plug into it, the built-in
// node types (package nodes) the same way as anyone's.
//
// # Writing a node type
//
// A node type is a Spec, a Constructor and a Node:
//
//   - The Spec names the type and describes its config Fields (name, Kind,
//     required, description). The story loader checks a node's YAML against
//     it (unknown and missing fields), and the JSON Schema, the docs and
//     the graph read it.
//   - The Constructor runs once per node when a story loads. It reads the
//     node's config through a *Config, by field name: String, Int, Bool,
//     Duration, Strings, StringMap, Object, List, Ref, Expr, Template,
//     Values, Routes, Responses and others. A bad value is reported as a
//     lint at its line and column and the getter returns a zero value; the
//     constructor's own checks go through Config.Errorf and Config.Warnf,
//     which the engine places at the field. Everything that can be checked
//     is checked here: a story that loads does not fail at chat time for a
//     reason visible in its file.
//   - The Node's Run is called each time a chat reaches the node, with the
//     Turn: the chat, the input, and what the node may do (Send responses,
//     SetAttribute, Emit events, Eval and Render what the constructor
//     compiled, Set node-scoped values). It returns a Result: Goto, Wait,
//     Complete or Handoff. A node that waits for input also implements
//     Resumer.
//
// Register the type in a Registry (Registry.Register: a duplicate name is
// an error), load stories with that registry (package stories) and run
// chats with a Runner. A custom binary registers its types with cli.Main.
//
// # Node scopes
//
// A node can hand values to the expressions of the rest of the turn without
// writing attributes: Turn.Set("webhook", map[string]any{"status": 200})
// lets routes read webhook.status. The type declares the scope in
// Spec.Scope, with the values expressions read before a node sets it.
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
