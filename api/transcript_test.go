package api_test

import (
	"fmt"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// TestChatTranscript: GET /v1/chats/:chatId returns the whole transcript,
// past the window a chat keeps inline, and pages with after and limit.
func TestChatTranscript(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	id := e.startChat("counter")["chatId"].(string)
	turns := engine.MaxTranscript // two entries each
	for i := range turns {
		want(t, e.do("POST", "/v1/chats/"+id+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)}), 200, "")
	}
	total := 1 + 2*turns
	// entries checks a page: seqs from..from+n-1, inputs where they belong.
	entries := func(path string, from, n int) map[string]any {
		t.Helper()
		r := e.do("GET", path, nil)
		want(t, r, 200, "")
		c := r.json(t)
		if c["seq"] != float64(total) {
			t.Fatalf("%s: seq %v, want %d", path, c["seq"], total)
		}
		tr := c["transcript"].([]any)
		if len(tr) != n {
			t.Fatalf("%s: %d entries, want %d", path, len(tr), n)
		}
		for i, x := range tr {
			en := x.(map[string]any)
			seq := from + i
			if en["seq"] != float64(seq) {
				t.Fatalf("%s: entry %d has seq %v, want %d", path, i, en["seq"], seq)
			}
			// Seq 1 is the greeting; then input (even seq), answer (odd).
			in, _ := en["input"].(map[string]any)
			if seq%2 == 0 && (in == nil || in["text"] != fmt.Sprintf("m%d", seq/2-1)) {
				t.Fatalf("%s: entry %d: %v", path, seq, en)
			}
		}
		return c
	}
	entries("/v1/chats/"+id, 1, total)
	entries("/v1/chats/"+id+"?limit=10", 1, 10)
	entries("/v1/chats/"+id+"?after=10&limit=10", 11, 10)
	entries(fmt.Sprintf("/v1/chats/%s?after=%d", id, total-3), total-2, 3)
	entries(fmt.Sprintf("/v1/chats/%s?after=%d", id, total), 0, 0)
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001", "limit=x"} {
		want(t, e.do("GET", "/v1/chats/"+id+"?"+q, nil), 400, "invalid_request")
	}
	want(t, e.do("GET", "/v1/chats/nope?limit=5", nil), 404, "")
}
