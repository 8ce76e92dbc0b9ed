package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/storytest"
)

// crm answers like the example backend's CRM: Ann is a pro customer with
// two open orders, down@example.com makes it fail, anyone else is unknown.
func crm(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Attributes map[string]any `json:"attributes"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	switch req.Attributes["email"] {
	case "ann@example.com":
		w.Write([]byte(`{"responses":[{"type":"text","message":"Welcome back, Ann!"}],
			"attributes":{"customer":"yes","plan":"pro","customer_name":"Ann","open_orders":2,"lookup_error":null}}`))
	case "down@example.com":
		w.WriteHeader(500)
		w.Write([]byte(`{"error":"database down"}`))
	default:
		w.Write([]byte(`{"attributes":{"customer":"no","customer_name":null}}`))
	}
}

// TestRecordChat: chats with a real webhook backend are recorded as tests
// (GET /v1/chats/:id/test) that replay green with the mocks they hold.
func TestRecordChat(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(crm))
	defer backend.Close()
	src, err := os.ReadFile("../examples/stories/support.yaml")
	if err != nil {
		t.Fatal(err)
	}
	story := strings.Replace(string(src), "http://127.0.0.1:8081/crm", backend.URL+"/crm", 1)
	e := newEnv(t)
	e.putStory("support", story)

	for _, tt := range []struct {
		name   string
		start  map[string]any
		inputs []map[string]any
		want   []string // in the recorded YAML
	}{
		{
			name:  "customer",
			start: map[string]any{"storyId": "support", "userAttributes": map[string]any{"default_name": "Ann"}, "attributes": map[string]any{"channel": "web"}},
			inputs: []map[string]any{
				{"text": "not an email"}, {"text": "ann@example.com"}, {"postback": "orders"},
				{"postback": "yes"}, {"postback": "billing"}, {"postback": "no"},
			},
			want: []string{
				"default_name: Ann # redact", "text: ann@example.com # redact", "channel: web",
				"customer_name: Ann", "status: completed", "Welcome back, Ann!", "pattern: '^(?:Thanks for chatting", `postback: "yes"`,
			},
		},
		{
			name:   "unknown, then a human",
			start:  map[string]any{"storyId": "support"},
			inputs: []map[string]any{{"text": "zoe@example.com"}, {"postback": "retry"}, {"text": "zed@example.com"}, {"goto": "human"}},
			want:   []string{"customer: \"no\"", "text: I couldn't find zoe@example.com in our records. What would you like to do? # redact", "status: handoff"},
		},
		{
			name:   "CRM down",
			start:  map[string]any{"storyId": "support"},
			inputs: []map[string]any{{"text": "down@example.com"}},
			want:   []string{"status: 500", "error: 'Request failed with status code 500: database down'", "node: human"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v1/chats", tt.start)
			want(t, r, 201, "")
			id := r.json(t)["chatId"].(string)
			for _, in := range tt.inputs {
				want(t, e.do("POST", "/v1/chats/"+id+"/messages", in), 200, "")
			}
			r = e.do("GET", "/v1/chats/"+id+"/test", nil)
			want(t, r, 200, "")
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
				t.Errorf("content type %q", ct)
			}
			for _, w := range tt.want {
				if !bytes.Contains(r.body, []byte(w)) {
					t.Errorf("recorded test lacks %q:\n%s", w, r.body)
				}
			}
			// The recording replays green on the story, with no backend.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "support.yaml"), []byte(story), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "support.test.yaml")
			if err := os.WriteFile(path, r.body, 0o644); err != nil {
				t.Fatal(err)
			}
			runner := storytest.NewRunner(storytest.Options{})
			fr := runner.RunFile(context.Background(), path)
			if fr.Failed() || len(fr.Cases) != 1 {
				var out bytes.Buffer
				fr.Write(&out, true)
				t.Fatalf("recorded test does not replay:\n%s\n%s", out.String(), r.body)
			}
		})
	}
	want(t, e.do("GET", "/v1/chats/nope/test", nil), 404, "chat_not_found")
}

// TestWatchStoriesSkipsTests: a stories directory holds story tests
// (*.test.yaml) beside the stories; they are not loaded as stories.
func TestWatchStoriesSkipsTests(t *testing.T) {
	e := newEnv(t)
	loaded, failed, err := e.srv.WatchStories("../examples/stories", time.Hour)
	if err != nil || loaded != 3 || failed != 0 {
		t.Fatalf("loaded %d, failed %d, err %v; want the 3 example stories", loaded, failed, err)
	}
}
