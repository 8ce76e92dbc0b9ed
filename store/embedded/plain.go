package embedded

import (
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/storyflow/storyflow/engine"
)

// The record cache also keeps each record's chat decoded, so that GetChat
// does not decode JSON on every turn. The cached chat must equal what
// decoding the record gives, so it is kept only for chats whose values
// survive a JSON round trip unchanged once normalized: strings in valid
// UTF-8, JSON numbers (integers become float64), bools, nil, []any and
// map[string]any of those, UTC times without monotonic reading. Any other
// value (a struct, []string, ...) and GetChat decodes the record.

// plainChat returns the chat that decoding c's record at rev gives
// (without transcript), or false if it cannot tell.
func plainChat(c *engine.Chat, rev int64) (*engine.Chat, bool) {
	if c.Task != nil {
		return nil, false
	}
	cc := *c
	for _, s := range []string{cc.ID, cc.StoryID, cc.Node, string(cc.Status), cc.UserID, cc.ExternalID, cc.Error} {
		if !utf8.ValidString(s) {
			return nil, false
		}
	}
	var ok bool
	if cc.CreatedAt, ok = plainTime(cc.CreatedAt); !ok {
		return nil, false
	}
	if cc.UpdatedAt, ok = plainTime(cc.UpdatedAt); !ok {
		return nil, false
	}
	if cc.Attributes, ok = plainMap(cc.Attributes); !ok {
		return nil, false
	}
	if cc.UserAttributes, ok = plainMap(cc.UserAttributes); !ok {
		return nil, false
	}
	cc.Rev, cc.Transcript, cc.Earlier = rev, nil, nil // Earlier is not stored
	return &cc, true
}

// cloneChat returns a copy of a plain chat that shares nothing mutable.
func cloneChat(c *engine.Chat) *engine.Chat {
	cc := *c
	cc.Attributes, _ = plainMap(c.Attributes)
	cc.UserAttributes, _ = plainMap(c.UserAttributes)
	return &cc
}

func plainTime(t time.Time) (time.Time, bool) {
	if t.Location() != time.UTC || t.Year() < 0 || t.Year() > 9999 {
		return t, false
	}
	return t.Round(0), true
}

// plainMap returns a deep copy of m in decoded form (nil stays nil).
func plainMap(m map[string]any) (map[string]any, bool) {
	if m == nil {
		return nil, true
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !utf8.ValidString(k) {
			return nil, false
		}
		pv, ok := plainValue(v)
		if !ok {
			return nil, false
		}
		out[k] = pv
	}
	return out, true
}

// plainValue returns a deep copy of v as json.Unmarshal into an any would
// give it back.
func plainValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool:
		return v, true
	case string:
		return v, utf8.ValidString(v)
	case float64:
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case int32:
		return float64(v), true
	case map[string]any:
		if v == nil {
			return nil, true
		}
		return plainMap(v)
	case []any:
		if v == nil {
			return nil, true
		}
		out := make([]any, len(v))
		for i, e := range v {
			pe, ok := plainValue(e)
			if !ok {
				return nil, false
			}
			out[i] = pe
		}
		return out, true
	}
	return nil, false
}

// plainBytes estimates the memory a plain chat holds (64-bit Go: a string
// or slice header, an interface, a map slot and so on).
func plainBytes(c *engine.Chat) int {
	n := int(unsafe.Sizeof(*c))
	for _, s := range []string{c.ID, c.StoryID, c.Node, string(c.Status), c.UserID, c.ExternalID, c.Error} {
		n += len(s)
	}
	return n + mapBytes(c.Attributes) + mapBytes(c.UserAttributes)
}

// mapBytes estimates the memory of a plain map: its header, a slot per
// entry (key and value headers, with the map's spare room) and what they
// point to.
func mapBytes(m map[string]any) int {
	if m == nil {
		return 0
	}
	n := 48
	for k, v := range m {
		n += 48 + len(k) + valueBytes(v)
	}
	return n
}

// valueBytes estimates what a plain value in an interface points to (16
// for any other value).
func valueBytes(v any) int {
	switch v := v.(type) {
	case nil, bool:
		return 0
	case string:
		return 16 + len(v)
	case float64:
		return 8
	case map[string]any:
		return mapBytes(v)
	case []any:
		n := 24 + 16*len(v)
		for _, e := range v {
			n += valueBytes(e)
		}
		return n
	}
	return 16
}
