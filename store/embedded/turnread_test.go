package embedded_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store/embedded"
)

// TestGetChatForTurnLazy: when a chat's window is not cached (a reopened
// store, or a cache too small to hold it), a turn's read leaves its recent
// entries unread until Chat.Recent asks for them; turns that read them and
// turns that never do both leave the full transcript stored.
func TestGetChatForTurnLazy(t *testing.T) {
	for _, cacheBytes := range []int64{0, 1} {
		t.Run(fmt.Sprint("cache=", cacheBytes), func(t *testing.T) {
			dir := t.TempDir()
			opts := embedded.Options{CacheBytes: cacheBytes}
			s, err := embedded.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{}, UserAttributes: map[string]any{}}
			if err := s.CreateChat(ctx, c); err != nil {
				t.Fatal(err)
			}
			turn := func(c *engine.Chat, text string) {
				t.Helper()
				for _, from := range []string{"user", "bot"} {
					c.Seq++
					c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: from, Input: &engine.Input{Text: text}, Time: time.Unix(c.Seq, 0).UTC()})
				}
				if err := s.UpdateChat(ctx, c, nil); err != nil {
					t.Fatal(err)
				}
			}
			turn(c, "one")
			turn(c, "two")
			want, err := s.GetChat(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Transcript) != 4 {
				t.Fatalf("transcript has %d entries, want 4", len(want.Transcript))
			}
			s.Close()
			if s, err = embedded.Open(dir, opts); err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			// A turn that never reads its earlier entries.
			c, err = s.GetChatForTurn(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			if c.Earlier == nil || len(c.Transcript) != 0 || c.Seq != 4 {
				t.Fatalf("turn read: Earlier set %v, %d entries, seq %d; want set, 0, 4", c.Earlier != nil, len(c.Transcript), c.Seq)
			}
			turn(c, "three")

			// A turn that does.
			c, err = s.GetChatForTurn(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			if cacheBytes == 1 && c.Earlier == nil {
				t.Fatal("no cache, and the window came without Earlier")
			}
			turn(c, "four")
			got, err := c.Recent()
			if err != nil {
				t.Fatal(err)
			}
			if c.Earlier != nil || len(got) != 8 || got[0].Seq != 1 || got[7].Seq != 8 {
				t.Fatalf("Recent: %d entries (%v), Earlier still set %v; want seq 1 to 8", len(got), seqs(got), c.Earlier != nil)
			}

			full, err := s.GetChat(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			if full.Earlier != nil {
				t.Fatal("GetChat left Earlier set")
			}
			if !reflect.DeepEqual(seqs(full.Transcript), []int64{1, 2, 3, 4, 5, 6, 7, 8}) || full.Transcript[6].Input.Text != "four" {
				t.Fatalf("stored transcript %v", seqs(full.Transcript))
			}
			if !reflect.DeepEqual(full.Transcript[:4], want.Transcript) {
				t.Fatalf("earlier entries changed:\n%+v\nwant\n%+v", full.Transcript[:4], want.Transcript)
			}
		})
	}
}

func seqs(es []engine.Entry) []int64 {
	out := make([]int64, len(es))
	for i := range es {
		out[i] = es[i].Seq
	}
	return out
}
