package stories_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// FuzzLoad checks that Load never panics (its recover turns a panic into an
// "internal error" lint, which fails here), that every lint is placed and
// says something, that a story that loads can be chatted with, and that
// parsing in parts (big files) gives what parsing whole gives.
func FuzzLoad(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"../examples/stories/*.yaml", "testdata/broken/*.yaml", "testdata/warnings/*.yaml", "testdata/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, files...)
	}
	if len(seeds) < 20 {
		f.Fatalf("only %d seed stories", len(seeds))
	}
	for _, file := range seeds {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	reg := nodes.NewRegistry(nodes.Options{})
	runner := &engine.Runner{MaxSteps: 20, Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, warns, err := stories.Load("fuzz.yaml", src, stories.Options{Registry: reg, Getenv: testEnv})
		lints := warns
		if err != nil {
			var le *engine.LintError
			if !errors.As(err, &le) {
				t.Fatalf("error is %T, want *engine.LintError: %v", err, err)
			}
			if s != nil {
				t.Errorf("a story came with errors")
			}
			if len(le.Lints) == 0 {
				t.Errorf("LintError without lints")
			}
			lints = le.Lints
		} else if s == nil {
			t.Fatalf("no story and no error")
		}
		for _, l := range lints {
			if strings.HasPrefix(l.Message, "internal error") {
				t.Fatalf("Load panicked: %s", l)
			}
			if l.Line < 1 || l.Column < 1 || l.Message == "" || l.File != "fuzz.yaml" {
				t.Errorf("bad lint %#v", l)
			}
		}
		if s != nil {
			chatWith(t, runner, s)
		}
		// Parsing a big file in parts must change nothing.
		if stories.ParsedInParts(src) {
			checkSplitSame(t, "input", src)
		}
	})
}

// chatWith starts a chat and sends a few inputs, unless the story calls
// webhooks (no network in fuzzing).
func chatWith(t *testing.T, r *engine.Runner, s *engine.Story) {
	for _, n := range s.Nodes {
		if n.Type == "webhook" {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := engine.NewChat(s, "c", "u", "", map[string]any{"default_name": "Ann"}, nil)
	if _, err := r.Start(ctx, s, c); err != nil {
		t.Fatalf("start: %v", err)
	}
	inputs := []engine.Input{{Text: "ann@example.com"}, {Postback: "1"}, {Text: "42"}}
	for _, id := range s.Order {
		inputs = append(inputs, engine.Input{Goto: id})
	}
	for _, in := range inputs[:min(len(inputs), 6)] {
		if _, err := r.Send(ctx, s, c, in); err != nil && !errors.Is(err, engine.ErrChatClosed) && !errors.Is(err, engine.ErrGotoNotOffered) {
			t.Fatalf("send %+v: %v", in, err)
		}
	}
}
