package stories

import (
	"slices"

	"github.com/storyflow/storyflow/engine"
)

// warnGraph adds warnings for nodes unreachable from start and for cycles
// on which no node waits for input.
func (l *loader) warnGraph(s *engine.Story) {
	if s.Nodes[s.Start] == nil {
		return // a missing or unknown start is an error already
	}
	seen := map[string]bool{}
	var stack []string
	push := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			stack = append(stack, id)
		}
	}
	push(s.Start)
	push(s.OnError)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n := s.Nodes[id]; n != nil {
			for _, e := range n.Edges {
				push(e.To)
			}
		}
	}
	for _, id := range s.Order {
		if !seen[id] {
			n := s.Nodes[id]
			l.warn(n, "not reachable from start")
		}
	}
	for _, cyc := range silentCycles(s) {
		n := s.Nodes[cyc[0]]
		l.warn(n, "cycle with no question: "+joinCycle(cyc))
	}
}

func (l *loader) warn(n *engine.NodeInfo, msg string) {
	l.b.Lints = append(l.b.Lints, engine.Lint{
		File: l.b.File, Line: n.Line, Column: n.Column, Node: n.ID, NodeType: n.Type,
		Message: msg, Warning: true,
	})
}

func joinCycle(c []string) string {
	out := ""
	for _, id := range c {
		out += id + " -> "
	}
	return out + c[0]
}

// silentCycles finds strongly connected components (Tarjan, iterative) of the
// graph without waiting nodes (goto edges excluded: they need a click) that
// hold a cycle, each as its node ids in file order.
func silentCycles(s *engine.Story) [][]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	next := 0
	succ := func(id string) []string {
		n := s.Nodes[id]
		if n == nil || n.Waits {
			return nil
		}
		var ids []string
		for _, e := range n.Edges {
			if e.Kind == "goto" {
				continue
			}
			if m := s.Nodes[e.To]; m != nil && !m.Waits {
				ids = append(ids, e.To)
			}
		}
		return ids
	}
	type frame struct {
		id   string
		succ []string
		i    int
	}
	for _, root := range s.Order {
		if _, ok := index[root]; ok || s.Nodes[root].Waits {
			continue
		}
		frames := []frame{{id: root, succ: succ(root)}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(frames) > 0 {
			f := &frames[len(frames)-1]
			if f.i < len(f.succ) {
				w := f.succ[f.i]
				f.i++
				if _, ok := index[w]; !ok {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					frames = append(frames, frame{id: w, succ: succ(w)})
				} else if onStack[w] {
					low[f.id] = min(low[f.id], index[w])
				}
				continue
			}
			v := f.id
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				p := frames[len(frames)-1].id
				low[p] = min(low[p], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 || selfLoop(s, v) {
				out = append(out, inFileOrder(s, comp))
			}
		}
	}
	return out
}

func selfLoop(s *engine.Story, id string) bool {
	for _, e := range s.Nodes[id].Edges {
		if e.To == id && e.Kind != "goto" {
			return true
		}
	}
	return false
}

func inFileOrder(s *engine.Story, ids []string) []string {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b string) int {
		na, nb := s.Nodes[a], s.Nodes[b]
		if na.Line != nb.Line {
			return na.Line - nb.Line
		}
		return na.Column - nb.Column
	})
	return out
}
