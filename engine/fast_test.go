package engine

import (
	"fmt"
	"reflect"
	"testing"
)

// TestFastPathMatchesVM: where an expression has a fast path, it gives the
// VM's result, and leaves to the VM every case that the VM fails on.
func TestFastPathMatchesVM(t *testing.T) {
	exprs := []struct {
		src  string
		fast bool // must have a fast path
	}{
		{`attributes.plan == "pro"`, true},
		{`attributes.plan != "pro"`, true},
		{`attributes["plan"] == "pro"`, true},
		{`"pro" == attributes.plan`, true},
		{`attributes.n > 2`, true},
		{`attributes.n >= 3.0`, true},
		{`attributes.n < attributes.price`, true},
		{`attributes.n <= -1`, true},
		{`attributes.n == 3.0`, true},
		{`attributes.word > "abc"`, true},
		{`attributes.word > 1`, true},
		{`attributes.missing == nil`, true},
		{`attributes.missing`, true},
		{`attributes.vip and attributes.n > 1`, true},
		{`attributes.vip && attributes.n > 1`, true},
		{`attributes.vip or attributes.word == "x"`, true},
		{`attributes.vip || attributes.word`, true},
		{`false && attributes.word > 1`, true},
		{`true || attributes.word`, true},
		{`not attributes.vip`, true},
		{`!attributes.word`, true},
		{`attributes.deep.a.b`, true},
		{`attributes.deep.a.b == 1`, true},
		{`attributes.missing.x`, true},
		{`attributes.missing.x == 1`, true},
		{`userAttributes.name ?? "there"`, true},
		{`attributes.missing ?? "d"`, true},
		{`attributes.missing.x ?? "d"`, true},
		{`input == "hi"`, true},
		{`input`, true},
		{`attributes.tags`, true},
		{`attributes.plan == "pro" && input != ""`, true},
		{`attributes.n + 1 > 3`, false},
		{`attributes.plan in ["pro", "team"]`, false},
		{`chat.id == "c1"`, false},
		{`attributes?.plan == "pro"`, false},
		{`len(attributes.tags) > 1`, false},
	}
	envs := []map[string]any{
		{"plan": "pro", "n": 3, "price": 2.5, "vip": true, "word": "abd", "tags": []any{"a"}, "deep": map[string]any{"a": map[string]any{"b": 1}}},
		{},
		{"plan": 1, "n": "3", "price": nil, "vip": "yes", "word": 7, "deep": map[string]any{"a": "flat"}},
		{"plan": "team", "n": 3.0, "price": int64(4), "vip": false, "word": "", "deep": nil},
	}
	inputs := []string{"hi", ""}
	for _, e := range exprs {
		for _, asBool := range []bool{false, true} {
			p, err := CompileExpr(e.src, asBool)
			if err != nil {
				if asBool {
					continue // not a condition
				}
				t.Fatalf("compile %s: %v", e.src, err)
			}
			if (p.fast != nil) != e.fast {
				t.Errorf("%s: fast path %v, want %v", e.src, p.fast != nil, e.fast)
			}
			for i, attrs := range envs {
				for _, in := range inputs {
					name := fmt.Sprintf("%s/asBool=%v/env%d/input=%q", e.src, asBool, i, in)
					turn := &Turn{}
					turn.env = Env{Attributes: attrs, UserAttributes: map[string]any{"name": "Ann"}, Input: in, boxedInput: in, Chat: ChatInfo{ID: "c1"}}
					got, gotErr := turn.Eval(p)
					want, wantErr := turn.vm.Run(p.prog, &turn.env)
					if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
						t.Errorf("%s: Eval = %#v, %v; VM = %#v, %v", name, got, gotErr, want, wantErr)
					}
				}
			}
		}
	}
}

func TestEnvHidesBoxedInput(t *testing.T) {
	if _, err := CompileExpr(`boxedInput == nil`, true); err == nil {
		t.Errorf("an unexported Env field is visible to expressions")
	}
}
