package engine_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// testScopes are node scopes like the webhook node's.
var testScopes = map[string]any{"webhook": map[string]any{"status": 0}}

// testTurn returns a turn over a chat with a few attributes.
func testTurn(in engine.Input) *engine.Turn {
	s := &engine.Story{ID: "shop", Version: 3, Start: "a", Scopes: testScopes}
	c := engine.NewChat(s, "chat-1", "user-1", "ext-1",
		map[string]any{"name": "Ann"},
		map[string]any{"n": 3, "price": 2.5, "whole": 4.0, "vip": true, "tags": []any{"a", "b"}, "word": "abc", "plan": "pro"})
	return engine.NewTurn(s, c, in)
}

func TestTemplateRender(t *testing.T) {
	tests := []struct {
		name, src string
		in        engine.Input
		want      string
	}{
		{"literal", "Hello there", engine.Input{}, "Hello there"},
		{"empty", "", engine.Input{}, ""},
		{"braces alone", "a } b { c", engine.Input{}, "a } b { c"},
		{"string", "Hi {{ userAttributes.name }}!", engine.Input{}, "Hi Ann!"},
		{"int", "{{ attributes.n }} items", engine.Input{}, "3 items"},
		{"float", "{{ attributes.price }} each", engine.Input{}, "2.5 each"},
		{"whole float", "{{ attributes.whole }} left", engine.Input{}, "4 left"},
		{"bool", "vip: {{ attributes.vip }}", engine.Input{}, "vip: true"},
		{"nil", "[{{ attributes.missing }}]", engine.Input{}, "[]"},
		{"mixed", "{{ userAttributes.name }} has {{ attributes.n * 2 }} of {{ len(attributes.tags) }}", engine.Input{}, "Ann has 6 of 2"},
		{"arithmetic", "{{ attributes.n + 1 }}", engine.Input{}, "4"},
		{"input text", "you said {{ input }}", engine.Input{Text: "hi"}, "you said hi"},
		{"input postback", "you chose {{ input }}", engine.Input{Text: "ignored", Postback: "yes"}, "you chose yes"},
		{"chat", "{{ chat.id }} {{ chat.userId }} {{ chat.externalId }} {{ chat.storyId }}", engine.Input{}, "chat-1 user-1 ext-1 shop"},
		{"webhook status", "{{ webhook.status }}", engine.Input{}, "0"},
		{"multi-line", "Hi\n{{ userAttributes.name }}\n", engine.Input{}, "Hi\nAnn\n"},
		{"unicode", "Привет, {{ userAttributes.name }} 👋", engine.Input{}, "Привет, Ann 👋"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := engine.CompileTemplateWithScopes(tt.src, testScopes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := testTurn(tt.in).Render(tp)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestTemplateStatic(t *testing.T) {
	for src, want := range map[string]bool{"plain": true, "": true, "a {{ 1 }}": false, "{{ input }}": false} {
		if got := engine.MustTemplate(src).Static(); got != want {
			t.Errorf("Static(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestTemplateValue(t *testing.T) {
	tests := []struct {
		name, src string
		want      any
	}{
		{"literal stays text", "42", "42"},
		{"int keeps type", "{{ attributes.n }}", 3},
		{"sum keeps type", "{{ attributes.n + 1 }}", 4},
		{"float keeps type", "{{ attributes.price * 2 }}", 5.0},
		{"bool keeps type", "{{ attributes.vip }}", true},
		{"list keeps type", "{{ attributes.tags }}", []any{"a", "b"}},
		{"nil stays nil", "{{ attributes.missing }}", nil},
		{"spaces inside braces", "{{attributes.n}}", 3},
		{"text around makes text", "n={{ attributes.n }}", "n=3"},
		{"space around makes text", " {{ attributes.n }}", " 3"},
		{"two exprs make text", "{{ attributes.n }}{{ attributes.n }}", "33"},
		{"nil in text is empty", "x{{ attributes.missing }}", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testTurn(engine.Input{}).Value(engine.MustTemplate(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Value(%q) = %#v (%T), want %#v (%T)", tt.src, got, got, tt.want, tt.want)
			}
		})
	}
}

func TestTemplateCompileError(t *testing.T) {
	tests := []struct {
		name, src string
		// line (1-based), column and offset (0-based, runes) of the error
		line, col, off int
		msg            string
	}{
		{"unclosed", "Hi {{ name", 1, 3, 3, "template has {{ without }}"},
		{"syntax", "Hi {{ 1 + }}", 1, 9, 9, "template: unexpected token EOF"},
		{"bad operator", "{{ attributes.n = 1 }}", 1, 16, 16, `template: unexpected token Operator("=")`},
		{"second part", "{{ 1 }} and {{ 2 ! 3 }}", 1, 17, 17, `template: unexpected token Operator("!")`},
		{"after runes", "Привет {{ = }}", 1, 10, 10, `template: unexpected token Operator("=")`},
		{"second line", "Hi\nthere {{ 1 ! 2 }}", 2, 11, 14, `template: unexpected token Operator("!")`},
		{"empty expression", "a {{ }} b", 1, 4, 4, "template: expression is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.CompileTemplate(tt.src)
			var ee *engine.ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("CompileTemplate(%q) error = %v, want an *ExprError", tt.src, err)
			}
			if ee.Line != tt.line || ee.Column != tt.col || ee.Offset != tt.off || ee.Message != tt.msg {
				t.Errorf("error = %d:%d (offset %d) %q, want %d:%d (offset %d) %q",
					ee.Line, ee.Column, ee.Offset, ee.Message, tt.line, tt.col, tt.off, tt.msg)
			}
		})
	}
}

func TestTemplateRuntimeError(t *testing.T) {
	tp := engine.MustTemplate("n = {{ int(attributes.word) }}")
	_, err := testTurn(engine.Input{}).Render(tp)
	if err == nil || !strings.Contains(err.Error(), "int(attributes.word)") {
		t.Errorf("Render error = %v, want one naming the expression", err)
	}
}

func TestCompileExpr(t *testing.T) {
	tests := []struct {
		src    string
		asBool bool
		// off is the error's rune offset; -1: compiles
		off int
	}{
		{`attributes.plan == "pro"`, true, -1},
		{`input matches "^[0-9]+$"`, true, -1},
		{`len(input) > 3 && chat.storyId == "shop"`, true, -1},
		{`webhook.status >= 200 and webhook.status < 300`, true, -1},
		{`attributes.plan ==`, true, 17},
		{`attributes.plan = "pro"`, true, 16},
		{`"pro"`, true, 0},
		{`nosuch.field == 1`, true, 0},
		{`   `, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := engine.CompileWithScopes(tt.src, tt.asBool, testScopes)
			if tt.off < 0 {
				if err != nil {
					t.Fatalf("CompileExpr: %v", err)
				}
				return
			}
			var ee *engine.ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("CompileExpr(%q) error = %v, want an *ExprError", tt.src, err)
			}
			if ee.Offset != tt.off {
				t.Errorf("offset = %d, want %d (%s)", ee.Offset, tt.off, ee.Message)
			}
		})
	}
}

func TestEvalTrue(t *testing.T) {
	tests := []struct {
		src     string
		want    bool
		wantErr bool
	}{
		{`attributes.plan == "pro"`, true, false},
		{`attributes.plan == "free"`, false, false},
		{`attributes.missing == nil`, true, false},
		{`attributes.n > 2 and attributes.vip`, true, false},
		{`attributes.word > 1`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := engine.CompileExpr(tt.src, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := testTurn(engine.Input{}).True(p)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("True = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""}, {"s", "s"}, {true, "true"}, {7, "7"}, {int64(-8), "-8"}, {0.1, "0.1"}, {1e21, "1000000000000000000000"},
		{[]any{"a", 1}, "[a 1]"},
	}
	for _, tt := range tests {
		if got := engine.Text(tt.v); got != tt.want {
			t.Errorf("Text(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestTurnSet(t *testing.T) {
	status, err := engine.CompileWithScopes(`webhook.status`, false, testScopes)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := engine.CompileWithScopes(`webhook.status >= 200 and webhook.status < 300`, true, testScopes)
	if err != nil {
		t.Fatal(err)
	}
	turn := testTurn(engine.Input{})
	if v, err := turn.Eval(status); err != nil || v != 0 {
		t.Fatalf("before Set: webhook.status = %v, %v; want the default 0", v, err)
	}
	turn.Set("webhook", map[string]any{"status": 201})
	if v, err := turn.Eval(status); err != nil || v != 201 {
		t.Fatalf("after Set: webhook.status = %v, %v; want 201", v, err)
	}
	if got, err := turn.True(ok); err != nil || !got {
		t.Fatalf("after Set: %s = %v, %v; want true", ok.Source, got, err)
	}
	if v, err := testTurn(engine.Input{}).Eval(status); err != nil || v != 0 {
		t.Fatalf("another turn: webhook.status = %v, %v; want the default 0 (Set must not change the story's defaults)", v, err)
	}
	if _, err := engine.CompileExpr(`webhook.status == 200`, true); err == nil {
		t.Fatal("webhook.status compiled without the scope declared")
	}
}
