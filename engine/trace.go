package engine

// Step is one node that a turn ran: a chat's trace, kept on the transcript
// entry that began the turn (Entry.Steps), so that a stored chat can be
// replayed node by node (what a node noted is in its "node" entries).
type Step struct {
	Node string `json:"node"`
	// Next is the node the chat went on to; empty when the turn ended here.
	Next string `json:"next,omitempty"`
	// Route is which of the node's routes was taken (1-based, Turn.Pick);
	// 0 when none was.
	Route int `json:"route,omitempty"`
	// End tells how the turn ended at this node: wait, completed, handoff,
	// failed (too many nodes) or error (a failure with no branch).
	End string `json:"end,omitempty"`
	// Error is why the node failed.
	Error string `json:"error,omitempty"`
}

// maxTraceSteps bounds the steps kept per turn (a turn that runs more keeps its
// first ones).
const maxTraceSteps = 200

// step records that node id ran and what followed.
func (t *Turn) step(s Step) {
	s.Route, t.route = t.route, 0
	if len(t.steps) < maxTraceSteps {
		t.steps = append(t.steps, s)
	}
}

// Steps returns the nodes the turn ran so far.
func (t *Turn) Steps() []Step { return t.steps }
