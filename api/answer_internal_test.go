package api

import (
	"bytes"
	"math"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// TestTurnAnswerEncode: the hand-written answer encoder writes what
// marshal writes.
func TestTurnAnswerEncode(t *testing.T) {
	tests := []turnAnswer{
		{},
		{ChatID: "c1", Status: engine.StatusActive, Node: "ask", Responses: []engine.Response{}, Attributes: map[string]any{}},
		{Status: engine.StatusCompleted, Node: "end", Responses: []engine.Response{
			{Type: "text", Message: "Hi <b> & \"you\"", Delay: 500},
			{Type: "quickReplies", Title: "Pick", Buttons: []engine.Button{{Type: "postback", Title: "A", Value: "a"}}},
		}, Attributes: map[string]any{"z": 1.5, "a": []any{"x", nil, true, map[string]any{"n": map[string]any(nil)}}, "i": 3}},
		{Node: "n", Attributes: map[string]any{"odd": struct{ X int }{7}}},
		{Node: "n", Attributes: map[string]any{"nan": math.NaN()}}, // marshal fails too
	}
	for _, a := range tests {
		got, err := a.encode()
		want, werr := marshal(a)
		if (err != nil) != (werr != nil) {
			t.Fatalf("encode error %v, marshal error %v", err, werr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encode\n got %s\nwant %s", got, want)
		}
	}
}
