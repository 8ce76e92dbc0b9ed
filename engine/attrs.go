package engine

import (
	"fmt"
	"math"
	"strconv"
)

// DefaultMaxAttributes bounds a chat's attributes in bytes of JSON.
const DefaultMaxAttributes = 256 << 10

// ErrAttributesTooLarge: a chat's attributes would pass the size limit.
var ErrAttributesTooLarge = fmt.Errorf("attributes too large")

// change is one attribute change of the running node, to undo it.
type change struct {
	name    string
	old     any
	existed bool
}

// record notes a change of attribute name, to v when set (else it is
// removed), before it is made: what to undo and how the size changes.
func (t *Turn) record(name string, v any, set bool) {
	old, ok := t.Chat.Attributes[name]
	t.changes = append(t.changes, change{name, old, ok})
	if set {
		t.delta += len(name) + 4 + JSONSize(v)
	}
	if ok {
		t.delta -= len(name) + 4 + JSONSize(old)
	}
}

// checkAttributes undoes the running node's attribute changes when they
// make the attributes larger than max bytes of JSON. The size is walked
// once per turn, then kept up to date from the changes (record), so a step
// costs what it changed, not what the chat holds.
func (t *Turn) checkAttributes(max int) error {
	if len(t.changes) == 0 {
		return nil
	}
	defer func() { t.changes, t.delta = t.changes[:0], 0 }()
	if max <= 0 {
		max = DefaultMaxAttributes
	}
	n := t.attrSize + t.delta
	if !t.attrSized {
		n = JSONSize(t.Chat.Attributes)
	}
	if n <= max {
		t.attrSize, t.attrSized = n, true
		return nil
	}
	for i := len(t.changes) - 1; i >= 0; i-- {
		c := t.changes[i]
		if c.existed {
			t.Chat.Attributes[c.name] = c.old
		} else {
			delete(t.Chat.Attributes, c.name)
		}
	}
	return fmt.Errorf("%w: they would be %d bytes, over the limit of %d", ErrAttributesTooLarge, n, max)
}

// JSONSize is about how many bytes v takes as JSON (strings are counted
// without escapes). It walks v without allocating.
func JSONSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 4
	case string:
		return len(x) + 2
	case bool:
		return 5
	case int:
		return digits(int64(x))
	case int64:
		return digits(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return digits(int64(x))
		}
		return 24
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + JSONSize(e)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += JSONSize(e) + 1
		}
		return n
	case []string:
		n := 2
		for _, e := range x {
			n += len(e) + 3
		}
		return n
	case map[string]string:
		n := 2
		for k, e := range x {
			n += len(k) + len(e) + 6
		}
		return n
	}
	return len(fmt.Sprint(v))
}

func digits(x int64) int {
	if x >= 0 && x < 10 {
		return 1
	}
	return len(strconv.FormatInt(x, 10))
}
