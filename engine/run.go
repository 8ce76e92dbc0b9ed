package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Turn is one run of nodes for a chat: what nodes read and write.
type Turn struct {
	Story *Story
	Chat  *Chat
	// Node is the node being run.
	Node *NodeInfo
	// Input is the input that started the turn (empty when the chat starts).
	Input  Input
	Output []Response
	// outNodes[i] is the node that sent Output[i].
	outNodes []string
	// calls are model calls noted for the entries of Output[at].
	calls  []notedCall
	Events []Event
	// Task is set by a handoff node.
	Task map[string]any
	// notes are the turn's Note calls, in order with Output.
	notes []note

	env Env
	// ownScopes tells that env.Scopes is the turn's own (see Set).
	ownScopes bool
	vm        vm.VM
	// changes of the running node's attributes (see checkAttributes),
	// and how much they changed JSONSize of the attributes; attrSize is
	// that size once attrSized.
	changes   []change
	delta     int
	attrSize  int
	attrSized bool
	// seq0 is the chat's Seq when the turn began.
	seq0 int64
	// steps is the turn's trace; route is the running node's (Pick).
	steps []Step
	route int
	// Room for the output of most turns, so that sending does not allocate.
	outBuf   [4]Response
	nodesBuf [4]string
	notesBuf [1]note
	stepsBuf [4]Step
}

// Send sends responses.
func (t *Turn) Send(rs ...Response) {
	t.Output = append(t.Output, rs...)
	id := ""
	if t.Node != nil {
		id = t.Node.ID
	}
	for range rs {
		t.outNodes = append(t.outNodes, id)
	}
}

type notedCall struct {
	at   int
	call *Call
}

// NoteCall records c on the transcript entry of the next response sent.
func (t *Turn) NoteCall(c *Call) {
	t.calls = append(t.calls, notedCall{at: len(t.Output), call: c})
}

type note struct {
	at   int // len(Output) when noted
	node string
	data map[string]any
}

// Note adds an entry From "node" to the transcript, after the responses
// sent so far: what the node wants kept of its run (see Entry.Data).
func (t *Turn) Note(data map[string]any) {
	id := ""
	if t.Node != nil {
		id = t.Node.ID
	}
	t.notes = append(t.notes, note{at: len(t.Output), node: id, data: data})
}

// Emit publishes an event when the turn is over.
func (t *Turn) Emit(name string, data map[string]any) {
	t.Events = append(t.Events, Event{Name: name, Data: data})
}

// SetAttribute sets (or with nil... keeps nil) a chat attribute. A node
// whose changes make the attributes larger than the limit fails, and its
// changes are undone.
func (t *Turn) SetAttribute(name string, v any) {
	t.record(name, v, true)
	t.Chat.Attributes[name] = v
}

// DeleteAttribute removes a chat attribute.
func (t *Turn) DeleteAttribute(name string) {
	t.record(name, nil, false)
	delete(t.Chat.Attributes, name)
}

// MergeAttributes merges attrs into the chat; a nil value removes the key.
func (t *Turn) MergeAttributes(attrs map[string]any) {
	for k, v := range attrs {
		t.record(k, v, v != nil)
		if v == nil {
			delete(t.Chat.Attributes, k)
		} else {
			t.Chat.Attributes[k] = v
		}
	}
}

// Set sets the values of node scope name for the rest of the turn:
// expressions then read name.key. The webhook node, for one, calls
// t.Set("webhook", map[string]any{"status": 200}) and routes read
// webhook.status. Expressions can name a scope only when a node type of the
// registry declares it (Spec.Scope); before a node of the turn sets it they
// read its defaults. values is kept, not copied.
func (t *Turn) Set(name string, values map[string]any) {
	if !t.ownScopes {
		m := make(map[string]any, len(t.env.Scopes)+1)
		maps.Copy(m, t.env.Scopes)
		t.env.Scopes, t.ownScopes = m, true
	}
	t.env.Scopes[name] = values
}

// Runner runs turns. The zero value is usable.
type Runner struct {
	// MaxSteps is how many nodes a turn may run (default 100).
	MaxSteps int
	// Sink receives each turn's events (optional).
	Sink EventSink
	// Apology is sent when a node fails with no branch (default below).
	Apology string
	Logger  *slog.Logger
	// Budget bounds expression evaluation (zero fields: the defaults).
	Budget Budget
	// AnyGoto lets a goto input reach any node, offered or not (the
	// designer's terminal chat).
	AnyGoto bool
	// MaxAttributes bounds a chat's attributes in bytes of JSON (default
	// DefaultMaxAttributes): a node that passes it fails.
	MaxAttributes int
	// Observer is told about node runs and turns (metrics); optional.
	Observer Observer
}

// Observer watches a Runner: it is called on the turn's goroutine and must
// be quick.
type Observer interface {
	// NodeRan is called after each node run with its type and duration.
	NodeRan(nodeType string, d time.Duration, err error)
	// TurnEnded is called after each turn of Start and Send with the chat
	// as the turn left it, or the error that stopped the turn.
	TurnEnded(c *Chat, err error)
}

// DefaultApology is sent when a node fails and the story has no onError node.
const DefaultApology = "Sorry, something went wrong. Please try again."

// Errors of Send.
var (
	ErrChatClosed = errors.New("chat is closed")
	ErrNoNode     = errors.New("node not found")
	ErrEmptyInput = errors.New("input is empty")
	// ErrGotoNotOffered: a goto input names a node that no goto button or
	// quick reply of the chat's last bot turn offered.
	ErrGotoNotOffered = errors.New("goto not offered")
)

// Start runs the first turn of a new chat.
func (r *Runner) Start(ctx context.Context, s *Story, c *Chat) (*Turn, error) {
	t := newTurn(s, c, Input{})
	t.setBudget(r.Budget)
	err := r.run(ctx, t, c.Node, false)
	if r.Observer != nil {
		r.Observer.TurnEnded(c, err)
	}
	return t, err
}

// Send runs the turn that follows a user input.
func (r *Runner) Send(ctx context.Context, s *Story, c *Chat, in Input) (*Turn, error) {
	t, err := r.send(ctx, s, c, in)
	if r.Observer != nil {
		r.Observer.TurnEnded(c, err)
	}
	return t, err
}

func (r *Runner) send(ctx context.Context, s *Story, c *Chat, in Input) (*Turn, error) {
	switch c.Status {
	case StatusCompleted, StatusFailed:
		return nil, fmt.Errorf("%w: status %s", ErrChatClosed, c.Status)
	}
	if in.Goto == "" && in.Text == "" && in.Postback == "" {
		return nil, ErrEmptyInput
	}
	if in.Goto != "" {
		if _, ok := s.Nodes[in.Goto]; !ok {
			return nil, fmt.Errorf("goto %q: %w", in.Goto, ErrNoNode)
		}
		if !r.AnyGoto {
			ok, err := c.Offered(in.Goto)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("goto %q: %w", in.Goto, ErrGotoNotOffered)
			}
		}
	}
	t := newTurn(s, c, in)
	t.setBudget(r.Budget)
	c.addEntry(Entry{From: "user", Node: c.Node, Input: &in, Time: time.Now().UTC()})
	if c.Status == StatusHandoff {
		// A human has the chat: the input is kept, no node runs.
		r.finish(ctx, t)
		return t, nil
	}
	if in.Goto != "" {
		return t, r.run(ctx, t, in.Goto, false)
	}
	return t, r.run(ctx, t, c.Node, c.Waiting)
}

func newTurn(s *Story, c *Chat, in Input) *Turn {
	if c.Attributes == nil {
		c.Attributes = map[string]any{}
	}
	if c.UserAttributes == nil {
		c.UserAttributes = map[string]any{}
	}
	t := &Turn{Story: s, Chat: c, Input: in, seq0: c.Seq}
	t.Output, t.outNodes, t.notes, t.steps = t.outBuf[:0], t.nodesBuf[:0], t.notesBuf[:0], t.stepsBuf[:0]
	t.env = Env{
		Attributes: c.Attributes, UserAttributes: c.UserAttributes, Input: in.Value(),
		Chat:   ChatInfo{ID: c.ID, UserID: c.UserID, ExternalID: c.ExternalID, StoryID: c.StoryID},
		Scopes: s.Scopes, // copied on the first Set
	}
	t.env.boxedInput = t.env.Input
	t.setBudget(Budget{})
	return t
}

func (t *Turn) setBudget(b Budget) {
	t.env.meter = newMeter(b)
	t.vm.MemoryBudget = uint(t.env.meter.budget.Memory / 16)
}

// run walks the graph from node id; resume tells that the chat waited there.
func (r *Runner) run(ctx context.Context, t *Turn, id string, resume bool) error {
	max := r.MaxSteps
	if max <= 0 {
		max = 100
	}
	c := t.Chat
	waitedAt := ""
	if c.Waiting {
		waitedAt = c.Node
	}
	c.Waiting = false
	// The nodes run, for the loop a failed turn names: the trace holds
	// them unless a turn may run more nodes than it keeps.
	var trail []string
	keepTrail := max > maxTraceSteps
	for steps := 0; ; steps++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, ok := t.Story.Nodes[id]
		if !ok {
			return fmt.Errorf("node %q: %w", id, ErrNoNode)
		}
		if steps >= max {
			if !keepTrail {
				trail = make([]string, 0, len(t.steps)+1)
				for _, st := range t.steps {
					trail = append(trail, st.Node)
				}
			}
			c.Status = StatusFailed
			c.Node = id
			c.Error = fmt.Sprintf("turn ran more than %d nodes: %s", max, loopOf(append(trail, id)))
			t.step(Step{Node: id, End: "failed", Error: c.Error})
			r.finish(ctx, t)
			return nil
		}
		if keepTrail && len(trail) < 2*max {
			trail = append(trail, id)
		}
		t.Node = info
		c.Node = id
		var res Result
		var err error
		var began time.Time
		if r.Observer != nil {
			began = time.Now()
		}
		if rs, ok := info.Node.(Resumer); ok && resume {
			res, err = rs.Resume(ctx, t)
		} else {
			res, err = info.Node.Run(ctx, t)
		}
		if r.Observer != nil {
			r.Observer.NodeRan(info.Type, time.Since(began), err)
		}
		resume = false
		if err == nil {
			err = t.checkAttributes(r.MaxAttributes)
		}
		t.changes = t.changes[:0]
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.logger().Warn("node failed", "story", t.Story.ID, "chat", c.ID, "node", id, "type", info.Type, "err", err)
			c.Error = fmt.Sprintf("node %q (%s): %v", id, info.Type, err)
			if t.Story.OnError != "" && id != t.Story.OnError {
				t.step(Step{Node: id, Next: t.Story.OnError, Error: err.Error()})
				id = t.Story.OnError
				continue
			}
			t.step(Step{Node: id, End: "error", Error: err.Error()})
			apology := r.Apology
			if apology == "" {
				apology = DefaultApology
			}
			t.Send(Response{Type: TypeText, Delay: DefaultDelay, Message: apology})
			if waitedAt != "" {
				c.Node = waitedAt
			}
			c.Waiting = true
			r.finish(ctx, t)
			return nil
		}
		switch {
		case res.Wait:
			c.Waiting = true
			t.step(Step{Node: id, End: "wait"})
		case res.Status != "":
			c.Status = res.Status
			t.step(Step{Node: id, End: string(res.Status)})
		case res.Next == "":
			c.Status = StatusCompleted
			t.step(Step{Node: id, End: string(StatusCompleted)})
		default:
			t.step(Step{Node: id, Next: res.Next})
			id = res.Next
			continue
		}
		r.finish(ctx, t)
		return nil
	}
}

// finish records the turn's output in the chat and publishes its events.
func (r *Runner) finish(ctx context.Context, t *Turn) {
	c := t.Chat
	now := time.Now().UTC()
	// Entries outlive the turn (stores may keep them): they get a copy of
	// the responses in the turn's own buffer, or the slice itself once it
	// has outgrown it (nothing changes Output after the turn).
	rs := t.Output
	if len(rs) > 0 && &rs[0] == &t.outBuf[0] {
		rs = append([]Response(nil), rs...)
	}
	calls := t.calls
	notes := t.notes
	for i := range rs {
		for len(notes) > 0 && notes[0].at <= i {
			c.addEntry(Entry{From: "node", Node: notes[0].node, Data: notes[0].data, Time: now})
			notes = notes[1:]
		}
		e := Entry{From: "bot", Node: t.outNodes[i], Response: &rs[i], Time: now}
		for len(calls) > 0 && calls[0].at <= i {
			if calls[0].at == i {
				e.Call = calls[0].call
			}
			calls = calls[1:]
		}
		c.addEntry(e)
	}
	for _, n := range notes {
		c.addEntry(Entry{From: "node", Node: n.node, Data: n.data, Time: now})
	}
	// The trace goes on the turn's first entry: a copy of the turn's
	// buffer, or the slice itself once it has outgrown the buffer.
	if len(t.steps) > 0 {
		steps := t.steps
		if &steps[0] == &t.stepsBuf[0] {
			steps = append([]Step(nil), steps...)
		} else {
			t.steps = t.stepsBuf[:0]
		}
		for i := len(c.Transcript) - 1; i >= 0 && c.Transcript[i].Seq > t.seq0; i-- {
			if c.Transcript[i].Seq == t.seq0+1 {
				c.Transcript[i].Steps = steps
			}
		}
	}
	c.trimTranscript(t.seq0 + 1)
	c.UpdatedAt = now
	if r.Sink != nil && len(t.Events) > 0 {
		if err := r.Sink.Publish(ctx, c, t.Events); err != nil {
			r.logger().Error("publish events", "chat", c.ID, "err", err)
		}
	}
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// loopOf names the repeating part of a trail of node ids ("loop a -> b -> a"),
// or its last nodes when none repeats.
func loopOf(trail []string) string {
	last := trail[len(trail)-1]
	for i := len(trail) - 2; i >= 0; i-- {
		if trail[i] == last {
			return "loop " + strings.Join(trail[i:], " -> ")
		}
	}
	if len(trail) > 10 {
		return "no loop, ends ... -> " + strings.Join(trail[len(trail)-10:], " -> ")
	}
	return "no loop: " + strings.Join(trail, " -> ")
}
