package api_test

import (
	"strings"
	"testing"
)

func TestPutStory(t *testing.T) {
	e := newEnv(t)
	r := e.do("PUT", "/v1/stories/counter", counterStory)
	want(t, r, 201, "")
	m := r.json(t)
	if m["id"] != "counter" || m["version"] != 1.0 {
		t.Fatalf("first put: %s", r.body)
	}
	if w, ok := m["warnings"].([]any); !ok || len(w) != 0 {
		t.Fatalf("warnings %s", r.body)
	}
	// The same source again: no new version.
	r = e.do("PUT", "/v1/stories/counter", counterStory)
	want(t, r, 200, "")
	if v := r.json(t)["version"]; v != 1.0 {
		t.Fatalf("same source: version %v", v)
	}
	r = e.do("PUT", "/v1/stories/counter", strings.Replace(counterStory, "Say something", "Say more", 1))
	want(t, r, 200, "")
	if v := r.json(t)["version"]; v != 2.0 {
		t.Fatalf("changed source: version %v", v)
	}
}

func TestPutStoryWarnings(t *testing.T) {
	e := newEnv(t)
	src := shortStory + `  orphan:
    type: end
`
	m := e.putStory("short", src)
	ws, _ := m["warnings"].([]any)
	if len(ws) != 1 {
		t.Fatalf("warnings: %v", m)
	}
	w := ws[0].(map[string]any)
	if w["node"] != "orphan" || w["severity"] != "warning" || w["line"] != 10.0 || w["file"] != "short.yaml" {
		t.Fatalf("warning: %v", w)
	}
}

func TestPutStoryErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"id mismatch", "/v1/stories/other", counterStory, 400, "id_mismatch"},
		{"bad id", "/v1/stories/Bad.Id", counterStory, 400, "invalid_request"},
		{"empty body", "/v1/stories/counter", "", 400, "invalid_request"},
		{"not yaml", "/v1/stories/counter", "id: [unclosed", 422, "story_invalid"},
		{"unknown field", "/v1/stories/counter", counterStory + "extra: 1\n", 422, "story_invalid"},
		{"bad next", "/v1/stories/counter", strings.Replace(counterStory, "next: ask", "next: nowhere", 1), 422, "story_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("PUT", tc.path, tc.body)
			want(t, r, tc.status, tc.code)
		})
	}
	// Lints carry file, line, column, node and message.
	r := e.do("PUT", "/v1/stories/counter", strings.Replace(counterStory, "next: ask", "next: nowhere", 1))
	lints, _ := r.json(t)["lints"].([]any)
	if len(lints) != 1 {
		t.Fatalf("lints: %s", r.body)
	}
	l := lints[0].(map[string]any)
	if l["file"] != "counter.yaml" || l["line"] != 16.0 || l["column"] != 11.0 || l["node"] != "count" ||
		!strings.Contains(l["message"].(string), "nowhere") || l["severity"] != "error" {
		t.Fatalf("lint: %v", l)
	}
	// Nothing was stored.
	want(t, e.do("GET", "/v1/stories/counter", nil), 404, "story_not_found")
}

func TestGetStory(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	v2 := strings.Replace(counterStory, "Say something", "Say more", 1)
	e.putStory("counter", v2)

	r := e.do("GET", "/v1/stories/counter", nil)
	want(t, r, 200, "")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Fatalf("content type %q", ct)
	}
	if string(r.body) != v2 || r.header.Get("X-Story-Version") != "2" {
		t.Fatalf("latest: %s %s", r.header.Get("X-Story-Version"), r.body)
	}
	r = e.do("GET", "/v1/stories/counter?version=1", nil)
	want(t, r, 200, "")
	if string(r.body) != counterStory {
		t.Fatalf("version 1: %s", r.body)
	}
	want(t, e.do("GET", "/v1/stories/counter?version=3", nil), 404, "story_not_found")
	want(t, e.do("GET", "/v1/stories/counter?version=x", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/stories/counter?version=0", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/stories/nope", nil), 404, "story_not_found")
}

func TestListAndDeleteStories(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/stories", nil)
	want(t, r, 200, "")
	if string(r.body) != "[]" {
		t.Fatalf("empty list: %s", r.body)
	}
	e.putStory("short", shortStory)
	e.putStory("counter", counterStory)
	l := e.do("GET", "/v1/stories", nil).list(t)
	if len(l) != 2 || l[0]["id"] != "counter" || l[0]["name"] != "Counter" || l[0]["version"] != 1.0 || l[1]["id"] != "short" {
		t.Fatalf("list: %v", l)
	}
	if _, ok := l[0]["updatedAt"].(string); !ok {
		t.Fatalf("updatedAt: %v", l[0])
	}

	// A chat started before the delete keeps its version.
	chat := e.startChat("counter")
	want(t, e.do("DELETE", "/v1/stories/counter", nil), 200, "")
	want(t, e.do("DELETE", "/v1/stories/counter", nil), 404, "story_not_found")
	want(t, e.do("GET", "/v1/stories/counter", nil), 404, "story_not_found")
	if l := e.do("GET", "/v1/stories", nil).list(t); len(l) != 1 {
		t.Fatalf("after delete: %v", l)
	}
	want(t, e.do("POST", "/v1/chats", map[string]any{"storyId": "counter"}), 404, "story_not_found")
	r = e.do("POST", "/v1/chats/"+chat["chatId"].(string)+"/messages", map[string]any{"text": "hi"})
	want(t, r, 200, "")
	// Putting it again makes it live with the next version: 201.
	r = e.do("PUT", "/v1/stories/counter", counterStory)
	want(t, r, 201, "")
	if v := r.json(t)["version"]; v != 2.0 {
		t.Fatalf("version after delete: %v", v)
	}
}

func TestValidateStory(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, body string
		valid      bool
		severities []string
	}{
		{"valid", counterStory, true, nil},
		{"warning", shortStory + "  orphan:\n    type: end\n", true, []string{"warning"}},
		{"errors", strings.Replace(counterStory, "type: set", "type: nope", 1) + "  orphan:\n    type: end\n", false, []string{"error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/stories/validate", tc.body)
			want(t, r, 200, "")
			m := r.json(t)
			if m["valid"] != tc.valid {
				t.Fatalf("valid: %s", r.body)
			}
			lints, ok := m["lints"].([]any)
			if !ok || len(lints) < len(tc.severities) {
				t.Fatalf("lints: %s", r.body)
			}
			for i, sev := range tc.severities {
				if s := lints[i].(map[string]any)["severity"]; s != sev {
					t.Fatalf("lint %d severity %v, want %s: %s", i, s, sev, r.body)
				}
			}
		})
	}
	want(t, e.do("POST", "/v1/stories/validate", ""), 400, "invalid_request")
	// Validating stores nothing.
	want(t, e.do("GET", "/v1/stories/counter", nil), 404, "story_not_found")
}

func TestGraph(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	for _, tc := range []struct {
		query, ctype, contains string
	}{
		{"", "application/json", `"id":"count"`},
		{"?format=json", "application/json", `"to":"ask"`},
		{"?format=mermaid", "text/plain", "flowchart"},
		{"?format=dot", "text/vnd.graphviz", "digraph"},
		{"?format=dot&version=1", "text/vnd.graphviz", "digraph"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := e.do("GET", "/v1/stories/counter/graph"+tc.query, nil)
			want(t, r, 200, "")
			if !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("content type %q", r.header.Get("Content-Type"))
			}
			if !strings.Contains(strings.ReplaceAll(string(r.body), " ", ""), tc.contains) {
				t.Fatalf("graph lacks %q: %s", tc.contains, r.body)
			}
		})
	}
	want(t, e.do("GET", "/v1/stories/counter/graph?format=png", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/stories/counter/graph?version=9", nil), 404, "story_not_found")
	want(t, e.do("GET", "/v1/stories/nope/graph", nil), 404, "story_not_found")
}
