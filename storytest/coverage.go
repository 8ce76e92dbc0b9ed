package storytest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// Coverage is what the tests of a story exercised: the nodes that ran and
// the branches taken. Branches are routes, else, failure, a next beside
// them (no route held), and buttons: goto buttons and postback buttons
// clicked. When two branches of a node lead to the same node, taking one
// counts for both.
type Coverage struct {
	Story    *engine.Story
	Ran      map[string]bool
	Branches []Branch
	Taken    []bool
	tracking bool
}

// Branch is one way out of a node.
type Branch struct {
	Node string
	// Kind is route, else, failure, next, goto or postback.
	Kind string
	// To is the target node (a postback's value).
	To    string
	Label string
}

func (b Branch) String() string {
	switch b.Kind {
	case "route":
		return fmt.Sprintf("%s: route %s -> %s", b.Node, strconv.Quote(b.Label), b.To)
	case "goto":
		return fmt.Sprintf("%s: goto button %s -> %s", b.Node, strconv.Quote(b.Label), b.To)
	case "postback":
		return fmt.Sprintf("%s: postback button %s (%s)", b.Node, strconv.Quote(b.Label), b.To)
	}
	return fmt.Sprintf("%s: %s -> %s", b.Node, b.Kind, b.To)
}

func newCoverage(s *engine.Story) *Coverage {
	c := &Coverage{Story: s, Ran: map[string]bool{}}
	seen := map[Branch]bool{}
	add := func(b Branch) {
		if !seen[b] {
			seen[b] = true
			c.Branches = append(c.Branches, b)
		}
	}
	postbacks := postbackButtons(s.Source)
	for _, id := range s.Order {
		info := s.Nodes[id]
		branchy := false
		for _, e := range info.Edges {
			branchy = branchy || e.Kind == "route" || e.Kind == "else" || e.Kind == "failure"
		}
		for _, e := range info.Edges {
			switch e.Kind {
			case "route", "else", "failure", "goto":
				add(Branch{Node: id, Kind: e.Kind, To: e.To, Label: e.Label})
			case "next":
				if branchy {
					add(Branch{Node: id, Kind: "next", To: e.To})
				}
			}
		}
		for _, b := range postbacks[id] {
			add(b)
		}
	}
	c.Taken = make([]bool, len(c.Branches))
	return c
}

// postbackButtons finds the postback buttons of each node in a story's source.
func postbackButtons(src []byte) map[string][]Branch {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string][]Branch{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "nodes" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		ns := root.Content[i+1]
		for j := 0; j+1 < len(ns.Content); j += 2 {
			id := ns.Content[j].Value
			walk(ns.Content[j+1], func(m *yaml.Node) {
				var b struct{ Type, Title, Value string }
				if m.Decode(&b) == nil && b.Type == "postback" && !strings.Contains(b.Value, "{{") {
					out[id] = append(out[id], Branch{Node: id, Kind: "postback", To: b.Value, Label: b.Title})
				}
			})
		}
	}
	return out
}

func walk(n *yaml.Node, f func(*yaml.Node)) {
	if n.Kind == yaml.MappingNode {
		f(n)
	}
	for _, c := range n.Content {
		walk(c, f)
	}
}

// instrument wraps the story's nodes so that running them is recorded.
func (c *Coverage) instrument(s *engine.Story) {
	for id, info := range s.Nodes {
		t := &tracked{Node: info.Node, id: id, cov: c}
		if r, ok := info.Node.(engine.Resumer); ok {
			info.Node = &trackedResumer{tracked: t, r: r}
		} else {
			info.Node = t
		}
	}
}

type tracked struct {
	engine.Node
	id  string
	cov *Coverage
}

func (n *tracked) Run(ctx context.Context, t *engine.Turn) (engine.Result, error) {
	res, err := n.Node.Run(ctx, t)
	n.cov.ran(n.id, res, err)
	return res, err
}

type trackedResumer struct {
	*tracked
	r engine.Resumer
}

func (n *trackedResumer) Resume(ctx context.Context, t *engine.Turn) (engine.Result, error) {
	res, err := n.r.Resume(ctx, t)
	n.cov.ran(n.id, res, err)
	return res, err
}

func (c *Coverage) ran(id string, res engine.Result, err error) {
	if !c.tracking {
		return
	}
	c.Ran[id] = true
	if err != nil || res.Next == "" {
		return
	}
	for i, b := range c.Branches {
		if b.Node == id && b.To == res.Next && b.Kind != "goto" && b.Kind != "postback" {
			c.Taken[i] = true
		}
	}
}

// input records the button an input clicks: the latest one offering it.
func (c *Coverage) input(chat *engine.Chat, in engine.Input) {
	kind, value := "postback", in.Postback
	if in.Goto != "" {
		kind, value = "goto", in.Goto
	}
	if value == "" {
		return
	}
	for i := len(chat.Transcript) - 1; i >= 0; i-- {
		e := chat.Transcript[i]
		if e.Response == nil {
			continue
		}
		found := false
		for _, b := range buttonsOf(e.Response) {
			found = found || (b.Type == kind && b.Value == value)
		}
		if !found {
			continue
		}
		for k, br := range c.Branches {
			if br.Node == e.Node && br.Kind == kind && br.To == value {
				c.Taken[k] = true
			}
		}
		return
	}
}

// Counts returns how many nodes ran and branches were taken, of how many.
func (c *Coverage) Counts() (ran, nodes, taken, branches int) {
	for _, id := range c.Story.Order {
		if c.Ran[id] {
			ran++
		}
	}
	for _, t := range c.Taken {
		if t {
			taken++
		}
	}
	return ran, len(c.Story.Order), taken, len(c.Branches)
}

// Report writes the coverage: a summary line, then what was not exercised.
func (c *Coverage) Report(w io.Writer) {
	ran, nodes, taken, branches := c.Counts()
	fmt.Fprintf(w, "coverage of %s: nodes %d/%d (%s), branches %d/%d (%s)\n",
		c.Story.File, ran, nodes, percent(ran, nodes), taken, branches, percent(taken, branches))
	var notRun []string
	for _, id := range c.Story.Order {
		if !c.Ran[id] {
			notRun = append(notRun, id)
		}
	}
	if len(notRun) > 0 {
		fmt.Fprintf(w, "  nodes not run: %s\n", strings.Join(notRun, ", "))
	}
	var notTaken []string
	for i, b := range c.Branches {
		if !c.Taken[i] {
			notTaken = append(notTaken, b.String())
		}
	}
	if len(notTaken) > 0 {
		fmt.Fprintln(w, "  branches not taken:")
		for _, s := range notTaken {
			fmt.Fprintf(w, "    %s\n", s)
		}
	}
}

func percent(n, of int) string {
	if of == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(of))
}

// Coverage returns the coverage of each story the runner tested, in the
// order they were first tested.
func (r *Runner) Coverage() []*Coverage {
	out := make([]*Coverage, 0, len(r.order))
	for _, k := range r.order {
		out = append(out, r.stories[k].cov)
	}
	return slices.Clip(out)
}
