package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// transcriptStory answers each input with `replies` text responses.
func transcriptStory(t *testing.T, replies int) *engine.Story {
	t.Helper()
	var rs []string
	for i := range replies {
		rs = append(rs, fmt.Sprintf("{type: text, message: r%d}", i))
	}
	src := fmt.Sprintf(`id: tr
start: ask
nodes:
  ask:
    type: question
    responses: [%s]
    save: said
    next: ask
`, strings.Join(rs, ", "))
	s, _, err := stories.Load("tr.yaml", []byte(src), stories.Options{Registry: nodes.NewRegistry(nodes.Options{})})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return s
}

// checkSeqs fails unless the transcript's entries are numbered from..to
// without gaps.
func checkSeqs(t *testing.T, what string, c *engine.Chat, from, to int64) {
	t.Helper()
	if int64(len(c.Transcript)) != to-from+1 {
		t.Fatalf("%s: %d entries, want seq %d..%d", what, len(c.Transcript), from, to)
	}
	for i, e := range c.Transcript {
		if e.Seq != from+int64(i) {
			t.Fatalf("%s: entry %d has seq %d, want %d", what, i, e.Seq, from+int64(i))
		}
	}
	if c.Seq != to {
		t.Errorf("%s: chat seq %d, want %d", what, c.Seq, to)
	}
}

func TestTranscriptWindow(t *testing.T) {
	r := &engine.Runner{Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	tests := []struct {
		name    string
		replies int // responses per turn
		turns   int
	}{
		{"short chat keeps everything", 1, 10},
		{"long chat keeps the window", 1, 200},
		{"a turn longer than the window keeps all its entries", engine.MaxTranscript + 20, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := transcriptStory(t, tc.replies)
			c := engine.NewChat(s, "c1", "", "", nil, nil)
			if _, err := r.Start(ctx, s, c); err != nil {
				t.Fatal(err)
			}
			checkSeqs(t, "after start", c, 1, int64(tc.replies))
			for i := range tc.turns {
				if _, err := r.Send(ctx, s, c, engine.Input{Text: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
			total := int64(tc.replies * (tc.turns + 1))
			total += int64(tc.turns) // inputs
			keep := max(int64(engine.MaxTranscript), int64(tc.replies+1))
			checkSeqs(t, "after turns", c, max(1, total-keep+1), total)
			last := c.Transcript[len(c.Transcript)-1]
			if last.From != "bot" || last.Response == nil {
				t.Errorf("last entry %+v, want the bot's last response", last)
			}
		})
	}
}
