package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestAttributeSizeFollowsChanges: after any run of steps of random
// attribute changes (the same name set twice in a step, deletes of what is
// not there, merges, steps undone for passing the limit), the size the
// turn keeps is JSONSize of the attributes.
func TestAttributeSizeFollowsChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b", "plan", "long_name", "n"}
	value := func() any {
		switch rng.IntN(5) {
		case 0:
			return strings.Repeat("x", rng.IntN(300))
		case 1:
			return float64(rng.IntN(100000))
		case 2:
			return map[string]any{"k": strings.Repeat("y", rng.IntN(50)), "n": 1.5}
		case 3:
			return []any{"a", true, nil}
		}
		return nil
	}
	undone := 0 // steps undone while the size was kept
	for run := range 200 {
		c := &Chat{Attributes: map[string]any{"seed": "v"}}
		tr := &Turn{Chat: c}
		for step := range 60 {
			ops := 1 + rng.IntN(5)
			if step%10 == 9 {
				ops = 30 // more than changedSize dedupes without a map
			}
			for range ops {
				switch name := names[rng.IntN(len(names))]; rng.IntN(4) {
				case 0, 1:
					tr.SetAttribute(name, value())
				case 2:
					tr.DeleteAttribute(name)
				default:
					tr.MergeAttributes(map[string]any{name: value(), names[rng.IntN(len(names))]: value()})
				}
			}
			sized := tr.attrSized
			err := tr.checkAttributes(400)
			if err != nil && !errors.Is(err, ErrAttributesTooLarge) {
				t.Fatal(err)
			}
			if err != nil && sized {
				undone++
			}
			if want := JSONSize(c.Attributes); tr.attrSized && tr.attrSize != want {
				t.Fatalf("run %d step %d: kept size %d, attributes are %d (%s)", run, step, tr.attrSize, want, fmt.Sprint(c.Attributes))
			}
			if got := JSONSize(c.Attributes); got > 400 && tr.attrSized {
				t.Fatalf("run %d step %d: attributes are %d bytes, over the limit", run, step, got)
			}
		}
	}
	if undone < 100 {
		t.Fatalf("only %d steps passed the limit with the size kept: the test does not test the undo", undone)
	}
}
