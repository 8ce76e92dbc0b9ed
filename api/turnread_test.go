package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/storyflow/storyflow/store/embedded"
)

// TestTurnsReadEarlierEntries: with a chat cache that holds nothing, a
// turn reads a chat's recent entries only when it needs them (a goto must
// have been offered; an AI webhook sends the history), and then gets all
// of them.
func TestTurnsReadEarlierEntries(t *testing.T) {
	var mu sync.Mutex
	var got [][]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Messages []any }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("webhook body %s: %v", b, err)
		}
		mu.Lock()
		got = append(got, body.Messages)
		n := len(got)
		mu.Unlock()
		fmt.Fprintf(w, `{"content":"answer %d"}`, n)
	}))
	defer hook.Close()

	e := newEnvStore(t, embedded.Options{CacheBytes: 1})
	e.putStory("jump", strings.Replace(strings.Replace(counterStory, "id: counter", "id: jump", 1), "        message: Say something\n",
		"        message: Say something\n      - type: quickReplies\n        title: Or\n        buttons:\n          - {type: goto, title: Count, value: count}\n", 1))
	jump := "/v1/chats/" + e.startChat("jump")["chatId"].(string) + "/messages"
	want(t, e.do("POST", jump, map[string]any{"text": "one"}), 200, "")
	want(t, e.do("POST", jump, map[string]any{"goto": "ask"}), 409, "goto_not_offered")
	r := e.do("POST", jump, map[string]any{"goto": "count"})
	want(t, r, 200, "")
	if a := r.json(t)["attributes"].(map[string]any); a["count"] != 2.0 {
		t.Fatalf("goto: %s", r.body)
	}

	e.putStory("ai", fmt.Sprintf(`id: ai
start: ask
nodes:
  ask: {type: question, responses: [{type: text, message: "Ask me"}], next: ai}
  ai: {type: webhook, webhook: {url: %q}, format: messages, history: 5, next: ask}
`, hook.URL))
	path := "/v1/chats/" + e.startChat("ai")["chatId"].(string) + "/messages"
	for _, text := range []string{"first", "second", "third"} {
		want(t, e.do("POST", path, map[string]any{"text": text}), 200, "")
	}
	mu.Lock()
	defer mu.Unlock()
	wantLast := []any{
		map[string]any{"role": "assistant", "content": "Ask me"},
		map[string]any{"role": "user", "content": "first"},
		map[string]any{"role": "assistant", "content": "answer 1\nAsk me"},
		map[string]any{"role": "user", "content": "second"},
		map[string]any{"role": "assistant", "content": "answer 2\nAsk me"},
		map[string]any{"role": "user", "content": "third"},
	}
	if len(got) != 3 || !reflect.DeepEqual(got[2], wantLast[1:]) {
		t.Fatalf("history sent %v\nwant %v", got, wantLast[1:])
	}
}
