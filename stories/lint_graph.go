package stories

import (
	"fmt"
	"slices"
	"strings"

	"github.com/storyflow/storyflow/engine"
)

// warnGraph adds warnings for nodes unreachable from start and for cycles
// on which no node waits for input.
func (l *loader) warnGraph(s *engine.Story) {
	if s.Nodes[s.Start] == nil {
		return // a missing or unknown start is an error already
	}
	g := newGraph(s)
	seen := g.walk(s, func(*engine.NodeInfo) bool { return true })
	for i, n := range g.nodes {
		if !seen[i] {
			l.warn(n, "not reachable from start")
		}
	}
	for _, cyc := range g.silentCycles() {
		l.warn(g.nodes[cyc[0]], "cycle with no question: "+g.cycleText(cyc))
	}
	g.warnBeforeInput(s, l)
}

// inputNeeder is a node that would send a service nothing before the chat
// has user input (a webhook node of an AI format): NeedsInput says why, or
// is empty when the node is fine without input.
type inputNeeder interface {
	NeedsInput() string
}

// warnBeforeInput warns at each inputNeeder that can run before any user
// input: reachable from start (or onError) through nodes that do not wait.
func (g *graph) warnBeforeInput(s *engine.Story, l *loader) {
	g.walk(s, func(n *engine.NodeInfo) bool {
		if n.Waits {
			return false
		}
		if ni, ok := n.Node.(inputNeeder); ok {
			if msg := ni.NeedsInput(); msg != "" {
				l.warn(n, msg)
			}
		}
		return true
	})
}

// walk visits the nodes reachable from start and onError, each once, and
// follows a node's edges when visit returns true; it returns which nodes
// it visited.
func (g *graph) walk(s *engine.Story, visit func(*engine.NodeInfo) bool) []bool {
	seen := make([]bool, len(g.nodes))
	var stack []int
	push := func(id string) {
		if i, ok := g.index[id]; ok && !seen[i] {
			seen[i] = true
			stack = append(stack, i)
		}
	}
	push(s.Start)
	push(s.OnError)
	for len(stack) > 0 {
		n := g.nodes[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		if !visit(n) {
			continue
		}
		for _, e := range n.Edges {
			push(e.To)
		}
	}
	return seen
}

func (l *loader) warn(n *engine.NodeInfo, msg string) {
	l.b.Lints = append(l.b.Lints, engine.Lint{
		File: l.b.File, Line: n.Line, Column: n.Column, Node: n.ID, NodeType: n.Type,
		Message: msg, Warning: true,
	})
}

// graph is a story's nodes numbered in file order.
type graph struct {
	nodes []*engine.NodeInfo
	index map[string]int
}

func newGraph(s *engine.Story) *graph {
	g := &graph{index: make(map[string]int, len(s.Order))}
	for _, id := range s.Order {
		if n := s.Nodes[id]; n != nil {
			g.index[id] = len(g.nodes)
			g.nodes = append(g.nodes, n)
		}
	}
	return g
}

// cycleText names a cycle ("a -> b -> a"), its first nodes when it is long.
func (g *graph) cycleText(cyc []int) string {
	const most = 10
	ids := make([]string, 0, most+1)
	for _, i := range cyc[:min(len(cyc), most)] {
		ids = append(ids, g.nodes[i].ID)
	}
	if len(cyc) > most {
		return fmt.Sprintf("%s -> ... (%d nodes)", strings.Join(ids, " -> "), len(cyc))
	}
	return strings.Join(append(ids, ids[0]), " -> ")
}

// silentCycles finds strongly connected components (Tarjan, iterative) of the
// graph without waiting nodes (goto edges excluded: they need a click) that
// hold a cycle, each as its node numbers in file order.
func (g *graph) silentCycles() [][]int {
	n := len(g.nodes)
	succ := func(v int) []int {
		if g.nodes[v].Waits {
			return nil
		}
		var ws []int
		for _, e := range g.nodes[v].Edges {
			if e.Kind == "goto" {
				continue
			}
			if w, ok := g.index[e.To]; ok && !g.nodes[w].Waits {
				ws = append(ws, w)
			}
		}
		return ws
	}
	index := make([]int, n) // 0: not visited; else visit order + 1
	low := make([]int, n)
	onStack := make([]bool, n)
	var stack []int
	var out [][]int
	next := 1
	type frame struct {
		v, i int
		succ []int
	}
	var frames []frame
	for root := range n {
		if index[root] != 0 || g.nodes[root].Waits {
			continue
		}
		frames = append(frames[:0], frame{v: root, succ: succ(root)})
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(frames) > 0 {
			f := &frames[len(frames)-1]
			if f.i < len(f.succ) {
				w := f.succ[f.i]
				f.i++
				if index[w] == 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					frames = append(frames, frame{v: w, succ: succ(w)})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				p := frames[len(frames)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 || g.selfLoop(v) {
				slices.Sort(comp)
				out = append(out, comp)
			}
		}
	}
	return out
}

func (g *graph) selfLoop(v int) bool {
	for _, e := range g.nodes[v].Edges {
		if e.To == g.nodes[v].ID && e.Kind != "goto" {
			return true
		}
	}
	return false
}
