package engine_test

import (
	"testing"

	"github.com/storyflow/storyflow/engine"
)

func TestMissingAttributeComparesFalse(t *testing.T) {
	s := &engine.Story{ID: "s"}
	c := engine.NewChat(s, "c", "", "", nil, map[string]any{"seats": 12, "name": "b"})
	turn := engine.NewTurn(s, c, engine.Input{Text: "7"})
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{"attributes.missing > 10", false},
		{"attributes.missing < 10", false},
		{"10 <= attributes.missing", false},
		{"attributes.missing >= attributes.other", false},
		{"attributes.seats > 10", true},
		{"attributes.seats < 10", false},
		{"attributes.name >= 'a'", true},
		{"!(attributes.missing > 10)", true},
		{"attributes.missing == nil", true},
		{"input > '5'", true},
	} {
		p, err := engine.CompileExpr(tt.src, true)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		got, err := turn.True(p)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.src, got, err, tt.want)
		}
	}
	// Still an error: comparing values of types that do not compare.
	p, err := engine.CompileExpr("attributes.seats > 'x'", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := turn.True(p); err == nil {
		t.Error("int > string: no error")
	}
}
