package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
)

// A request fasthttp cannot parse gets a 400 that quotes none of it.
func TestMalformedRequestEchoesNothing(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /v1/chats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: -1\r\n\r\n{}", token)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 400 || strings.Contains(string(body), token) || strings.Contains(string(body), "Authorization") ||
		!strings.Contains(string(body), `"code":"invalid_request"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
}

func TestRequestBodiesAreStrict(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	r := e.do("POST", "/v1/chats", `{"storyId":"counter","userId":"a","userId":"b"}`)
	want(t, r, 400, "invalid_request")
	if !strings.Contains(string(r.body), `duplicate name \"userId\"`) {
		t.Fatalf("duplicate: %s", r.body)
	}
	r = e.do("POST", "/v1/chats", `{"storyId":"counter","attributes":{"n":1,"n":2}}`)
	want(t, r, 400, "invalid_request")
	if !strings.Contains(string(r.body), `attributes.n`) {
		t.Fatalf("nested duplicate: %s", r.body)
	}
	id := e.startChat("counter")["chatId"].(string)
	r = e.do("POST", "/v1/chats/"+id+"/messages", `{"text":"a","text":"b"}`)
	want(t, r, 400, "invalid_request")
	r = e.do("PUT", "/v2/integrations/webhook/x", `{"timeout":1e999}`)
	if r.status != 400 || strings.Contains(string(r.body), "got a number") {
		t.Fatalf("1e999: %d %s", r.status, r.body)
	}
	want(t, e.do("GET", "/v1/stories/counter?version=4294967297", nil), 400, "invalid_request")
	want(t, e.do("GET", "/v1/stories/counter?version=1", nil), 200, "")
}

func TestAttributeLimits(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxAttributes = 10 << 10 })
	e.putStory("counter", counterStory)
	big := strings.Repeat("x", 11<<10)
	for _, field := range []string{"userAttributes", "attributes"} {
		r := e.do("POST", "/v1/chats", map[string]any{"storyId": "counter", field: map[string]any{"a": big}})
		want(t, r, 413, "attributes_too_large")
		if !strings.Contains(string(r.body), field) {
			t.Fatalf("413 does not name %s: %s", field, r.body)
		}
	}
	// A node that makes them too large fails; its change is undone.
	e.putStory("grow", strings.Replace(strings.Replace(counterStory, "id: counter", "id: grow", 1),
		`last: "{{ input }}"`, `last: "{{ repeat(input, 1000) }}"`, 1))
	id := e.startChat("grow")["chatId"].(string)
	r := e.do("POST", "/v1/chats/"+id+"/messages", map[string]any{"text": "0123456789ab"})
	want(t, r, 200, "")
	m := r.json(t)
	if _, ok := m["attributes"].(map[string]any)["last"]; ok || !strings.Contains(string(r.body), "Sorry") {
		t.Fatalf("growing past the limit: %s", r.body)
	}
	c := e.do("GET", "/v1/chats/"+id, nil).json(t)
	if !strings.Contains(fmt.Sprint(c["error"]), "over the limit") {
		t.Fatalf("chat error: %v", c["error"])
	}
	// Small input still works.
	want(t, e.do("POST", "/v1/chats/"+id+"/messages", map[string]any{"text": "ok"}), 200, "")
}

func TestStoryEnvironment(t *testing.T) {
	t.Setenv("STORY_GREETING", "hello-from-env")
	t.Setenv("SECRET_THING", "do-not-leak-me")
	e := newEnv(t)
	ok := "id: envy\nstart: hi\nnodes:\n  hi:\n    type: end\n    responses:\n      - type: text\n        message: ${STORY_GREETING}\n"
	want(t, e.do("PUT", "/v1/stories/envy", ok), 201, "")
	if r := e.startChat("envy"); !strings.Contains(fmt.Sprint(r["responses"]), "hello-from-env") {
		t.Fatalf("allowed variable: %v", r)
	}
	for _, name := range []string{"SECRET_THING", "STORYFLOW_API_TOKEN", "HOME", "NO_SUCH_VARIABLE_AT_ALL"} {
		src := strings.Replace(ok, "STORY_GREETING", name, 1)
		for _, path := range []string{"/v1/stories/envy", "/v1/stories/validate"} {
			method := "PUT"
			if strings.HasSuffix(path, "validate") {
				method = "POST"
			}
			r := e.do(method, path, src)
			body := string(r.body)
			if strings.Contains(body, "do-not-leak-me") || strings.Contains(body, os.Getenv("HOME")) ||
				!strings.Contains(body, "environment variable "+name+" is not allowed in stories") {
				t.Fatalf("%s %s with ${%s}: %d %s", method, path, name, r.status, body)
			}
		}
	}
	// A value never shows in a lint, even where it names a node.
	t.Setenv("STORY_NODE", "hidden-node-name")
	r := e.do("POST", "/v1/stories/validate", "id: envy\nstart: ${STORY_NODE}\nnodes:\n  hi:\n    type: end\n")
	if strings.Contains(string(r.body), "hidden-node-name") || !strings.Contains(string(r.body), "${STORY_NODE}") {
		t.Fatalf("lint quotes the value: %s", r.body)
	}
}

// Sixteen versions of a large story do not stay in memory beyond the story
// cache's bound.
func TestStoryCacheBoundsMemory(t *testing.T) {
	const bound = 32 << 20
	e := newEnv(t, func(c *api.Config) { c.StoryCacheBytes = bound })
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var b strings.Builder
	for v := 0; v < 16; v++ {
		b.Reset()
		fmt.Fprintf(&b, "id: large\nstart: n0\nx-version: %d\nnodes:\n", v)
		for i := 0; b.Len() < 900<<10; i++ {
			fmt.Fprintf(&b, "  n%d:\n    type: message\n    responses:\n      - type: text\n        message: \"Hello {{ userAttributes.name ?? 'you' }}, step %d\"\n    next: n%d\n", i, i, i+1)
		}
		src := b.String()
		last := strings.LastIndex(src, "    next: ")
		src = src[:last]
		want(t, e.do("PUT", "/v1/stories/large", src), map[bool]int{true: 201, false: 200}[v == 0], "")
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d MiB with 16 versions of a 0.9 MB story (bound %d MiB)", grown>>20, bound>>20)
	if grown > bound+24<<20 {
		t.Fatalf("heap grew by %d MiB, over the %d MiB bound plus 24 MiB", grown>>20, bound>>20)
	}
}
