// Package split is a custom storyflow node type, written the way a third
// party would: an A/B split that sends each chat down one of weighted
// branches and records the branch taken in an attribute.
//
//	pricing:
//	  type: split
//	  attribute: variant
//	  branches:
//	    - {name: A, weight: 70, next: offer_a}
//	    - {name: B, weight: 30, next: offer_b}
//
// The choice hashes the chat's user id and the node id, so it is sticky: a
// user who comes back lands in the same branch, and tests are deterministic.
package split

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"

	"github.com/storyflow/storyflow/engine"
)

// Type is the node type's name in story files.
const Type = "split"

// Field names.
const (
	fieldBranches  = "branches"
	fieldAttribute = "attribute"
	fieldWeight    = "weight"
	fieldNext      = "next"
	fieldName      = "name"
)

// MaxWeight bounds a branch's weight.
const MaxWeight = 1_000_000

// Spec describes the node type: loading, linting, the JSON Schema and the
// docs read it.
var Spec = engine.Spec{
	Type:    Type,
	Summary: "Sends the chat down one of weighted branches (A/B test); sticky per user.",
	Fields: []engine.Field{
		{
			Name: fieldBranches, Kind: engine.KindList, Required: true,
			Description: "the branches; each chat takes one, with odds weight/sum of weights",
			Fields: []engine.Field{
				{Name: fieldWeight, Kind: engine.KindInt, Required: true, Description: "relative weight, a positive integer"},
				{Name: fieldNext, Kind: engine.KindRef, Required: true, Description: "node the branch goes to"},
				{Name: fieldName, Kind: engine.KindString, Description: "value recorded in attribute (default: next)"},
			},
		},
		{Name: fieldAttribute, Kind: engine.KindString, Sets: true, Description: "attribute to record the branch taken in, e.g. variant"},
	},
	// The rest of the turn reads the branch taken as split.branch.
	Scope: &engine.Scope{Name: Type, Defaults: map[string]any{"branch": ""}},
}

// Split is a compiled split node.
type Split struct {
	// Attribute records the branch taken ("" records nothing).
	Attribute string
	Branches  []Branch
}

// Branch is one way out of a split.
type Branch struct {
	// Name is recorded in the split's attribute (default: Next).
	Name string
	// Weight is the branch's share: Weight / the sum of the weights.
	Weight int
	// Next is the node the branch goes to.
	Next string
}

var _ engine.Node = (*Split)(nil)

var attributeRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Register adds the split node type to r.
func Register(r *engine.Registry) error {
	if err := r.Register(Spec, New); err != nil {
		return fmt.Errorf("register split node: %w", err)
	}
	return nil
}

// New builds a split node from its config. The loader has already checked
// the fields against Spec (unknown and missing ones); New checks values.
func New(c *engine.Config) (engine.Node, error) {
	n := &Split{Attribute: c.String(fieldAttribute)}
	if c.Has(fieldAttribute) && !attributeRe.MatchString(n.Attribute) {
		c.Errorf(fieldAttribute, "attribute name %q must match [A-Za-z_][A-Za-z0-9_]{0,63}", n.Attribute)
	}
	items := c.List(fieldBranches)
	var total int
	for _, b := range items {
		// Int reports a weight that is no integer; its default 1 adds no second error.
		w := b.Int(fieldWeight, 1)
		if w < 1 || w > MaxWeight {
			b.Errorf(fieldWeight, "weight must be a positive integer up to %d, got %d", MaxWeight, w)
		} else {
			total += w
		}
		n.Branches = append(n.Branches, Branch{Name: b.String(fieldName), Weight: w})
	}
	// Refs after the weights, so that graph edges can show each branch's share.
	for i, b := range items {
		br := &n.Branches[i]
		label := ""
		if total > 0 && br.Weight > 0 {
			label = fmt.Sprintf("%d%%", (br.Weight*100+total/2)/total)
			if br.Name != "" {
				label = br.Name + " " + label
			}
		}
		// Ref checks that the node exists and records the edge.
		br.Next = b.Ref(fieldNext, "branch", label)
		if br.Name == "" {
			br.Name = br.Next
		}
	}
	switch {
	case c.Has(fieldBranches) && len(items) == 0 && !c.Failed():
		c.Errorf(fieldBranches, "field branches needs at least one branch")
	case len(items) == 1:
		c.Warnf(fieldBranches, "a split with one branch always takes it")
	}
	return n, nil
}

// Run implements engine.Node: it picks a branch and goes there. The rest
// of the turn's expressions read the branch as split.branch.
func (n *Split) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	b, ok := n.Pick(t.Chat.UserID, t.Node.ID)
	if !ok {
		return engine.Result{}, fmt.Errorf("split: no branch with a positive weight")
	}
	t.Set(Type, map[string]any{"branch": b.Name})
	if n.Attribute != "" {
		t.SetAttribute(n.Attribute, b.Name)
	}
	return engine.Goto(b.Next), nil
}

// Pick returns the branch of user at node: a hash of both, spread over the
// weights. ok is false when no branch has a positive weight.
func (n *Split) Pick(user, node string) (b Branch, ok bool) {
	var total uint64
	for _, b := range n.Branches {
		total += uint64(max(b.Weight, 0))
	}
	if total == 0 {
		return Branch{}, false
	}
	h := fnv.New64a()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(node))
	x := mix(h.Sum64()) % total
	for _, b := range n.Branches {
		w := uint64(max(b.Weight, 0))
		if x < w {
			return b, true
		}
		x -= w
	}
	return Branch{}, false // unreachable: x < total
}

// mix spreads the bits of a hash (MurmurHash3's finaliser), so that similar
// ids do not land in the same branch.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
