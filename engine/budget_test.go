package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/stories"
)

// budgetStory asks for input, then says msg and waits at ask again;
// onError is not set, so a failing node gets the apology.
func budgetStory(msg string) string {
	return "id: b\nstart: ask\nnodes:\n" +
		"  ask:\n    type: question\n    responses:\n      - type: text\n        message: go\n    next: say\n" +
		"  say:\n    type: message\n    responses:\n      - type: text\n        message: '" + msg + "'\n    next: ask\n"
}

func TestBudgetConstantBombIsLoadError(t *testing.T) {
	for _, tc := range []struct{ name, tmpl string }{
		{"repeat", `{{ len(repeat(repeat("a", 999999), 999999)) }}`},
		{"reduce", `{{ len(reduce(1..40000, #acc + "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", "")) }}`},
		{"replace", `{{ len(replace(repeat("a", 2000), "", repeat("b", 1000))) }}`},
		{"join", `{{ len(join(map(1..5000, repeat("x", 1000)))) }}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := stories.Load("b.yaml", []byte(budgetStory(tc.tmpl)), stories.Options{Registry: registry()})
			var le *engine.LintError
			if !errors.As(err, &le) {
				t.Fatalf("want a lint error, got %v", err)
			}
			l := le.Lints[0]
			if l.Line != 14 || !strings.Contains(l.Message, "budget") {
				t.Fatalf("lint = %s, want line 14 naming the budget", l)
			}
		})
	}
}

func TestBudgetFailsTheNodeNotTheServer(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct{ name, tmpl, want string }{
		{"repeat of input", `{{ len(repeat(input, 999999)) }}`, "memory budget"},
		{"quadratic reduce", `{{ len(reduce(1..40000, #acc + input, "")) }}`, "memory budget"},
		{"replace growth", `{{ len(replace(replace(input, "", input), "", input + input)) }}`, "memory budget"},
		{"loops", `{{ reduce(1..60000, reduce(1..60000, #acc + 1, 0) + #acc, 0) }}`, "memory budget"},
		{"time", `{{ reduce(1..30000, #acc + len(filter(userAttributes.list, # == input)), 0) }}`, "time budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := load(t, budgetStory(tc.tmpl))
			r := quietRunner()
			// Memory cases get time enough that a loaded machine does not
			// hit the time budget first.
			if tc.want == "memory budget" {
				r.Budget.Time = time.Minute
			}
			list := make([]any, 30000)
			for i := range list {
				list[i] = "x"
			}
			c := engine.NewChat(s, "c1", "u1", "", map[string]any{"list": list}, nil)
			if _, err := r.Start(context.Background(), s, c); err != nil {
				t.Fatal(err)
			}
			turn := send(t, r, s, c, engine.Input{Text: long})
			if got := messages(turn); len(got) != 1 || got[0] != engine.DefaultApology {
				t.Fatalf("output %q, want the apology", got)
			}
			if !strings.Contains(c.Error, tc.want) || c.Node != "ask" || !c.Waiting {
				t.Fatalf("chat error %q at %s (waiting %v), want %q at ask", c.Error, c.Node, c.Waiting, tc.want)
			}
		})
	}
}

func TestBudgetKeepsOrdinaryExpressions(t *testing.T) {
	s := load(t, budgetStory(`{{ repeat("ab", 2) + "-" + upper(input) + "-" + join(["x", "y"], ",") + "-" + string(userAttributes.n + 1) + "-" + replace(input, "i", "o") }}`))
	r := quietRunner()
	c := engine.NewChat(s, "c1", "u1", "", map[string]any{"n": 41}, nil)
	if _, err := r.Start(context.Background(), s, c); err != nil {
		t.Fatal(err)
	}
	turn := send(t, r, s, c, engine.Input{Text: "hi"})
	if got := messages(turn); len(got) != 2 || got[0] != "abab-HI-x,y-42-ho" {
		t.Fatalf("output %q (error %q)", got, c.Error)
	}
	// The time budget is the turn's: a new turn starts afresh.
	turn = send(t, r, s, c, engine.Input{Text: "hi"})
	if got := messages(turn); got[0] != "abab-HI-x,y-42-ho" {
		t.Fatalf("second turn %q", got)
	}
}

func TestBudgetIsConfigurable(t *testing.T) {
	s := load(t, budgetStory(`{{ len(repeat(input, 100)) }}`))
	r := quietRunner()
	r.Budget = engine.Budget{Memory: 1000}
	c := engine.NewChat(s, "c1", "u1", "", nil, nil)
	if _, err := r.Start(context.Background(), s, c); err != nil {
		t.Fatal(err)
	}
	if got := messages(send(t, r, s, c, engine.Input{Text: "12345"})); got[0] != "500" {
		t.Fatalf("under budget: %q", got)
	}
	if got := messages(send(t, r, s, c, engine.Input{Text: "12345678901"})); got[0] != engine.DefaultApology {
		t.Fatalf("over budget: %q", got)
	}
}

func TestBudgetTypeErrorsStayLoadErrors(t *testing.T) {
	_, _, err := stories.Load("b.yaml", []byte(budgetStory(`{{ "a" + 1 }}`)), stories.Options{Registry: registry()})
	if err == nil || !strings.Contains(err.Error(), "mismatched types") {
		t.Fatalf("got %v, want a type error at load", err)
	}
}
