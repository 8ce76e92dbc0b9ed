package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeAttacks tries issue #8's attacks, as a holder of the API token
// would, against a real serve process: each gets a clear error or a failed
// node, and the server serves on.
func TestServeAttacks(t *testing.T) {
	p := startServeEnv(t, []string{"SECRET_THING=do-not-leak-me"},
		"--data", t.TempDir(), "--stories", "../../examples/stories", "--max-attributes", "262144")
	hundred := strings.Repeat("0123456789", 10)
	story := func(msg string) string {
		return "id: attack\nstart: ask\nnodes:\n  ask:\n    type: question\n    responses: [{type: text, message: go}]\n    next: say\n" +
			"  say:\n    type: message\n    responses:\n      - type: text\n        message: '" + msg + "'\n    next: ask\n"
	}
	put := func(src string) (int, map[string]any) {
		code, m, err := call(p.url, "PUT", "/v1/stories/attack", src)
		if err != nil {
			t.Fatal(err)
		}
		return code, m
	}

	// 1 and 2: constant bombs are load errors, with their position.
	for _, bomb := range []string{
		`{{ len(repeat(repeat("a", 999999), 999999)) }}`,
		`{{ len(reduce(1..40000, #acc + "` + hundred + `", "")) }}`,
	} {
		code, m := put(story(bomb))
		if code != 422 || !strings.Contains(fmt.Sprint(m["lints"]), "budget") || !strings.Contains(fmt.Sprint(m["lints"]), "line:12") {
			t.Fatalf("bomb %s: %d %v", bomb, code, m)
		}
	}
	// ... and bombs fed by the chat fail the node, fast.
	code, m := put(story(`{{ len(repeat(input, 999999)) }}{{ len(reduce(1..40000, #acc + input, "")) }}`))
	if code != 201 {
		t.Fatalf("input bomb story: %d %v", code, m)
	}
	chat := mustCall(t, p.url, "POST", "/v1/chats", map[string]any{"storyId": "attack"}, 201)
	start := time.Now()
	m = mustCall(t, p.url, "POST", "/v1/chats/"+chat["chatId"].(string)+"/messages", map[string]any{"text": hundred}, 200)
	if !strings.Contains(fmt.Sprint(m["responses"]), "Sorry") {
		t.Fatalf("input bomb: %v", m)
	}
	t.Logf("input bomb answered in %v", time.Since(start))

	// 3: the server's environment is not the story's.
	for _, name := range []string{"STORYFLOW_API_TOKEN", "HOME", "SECRET_THING", "NOT_SET_ANYWHERE"} {
		for _, src := range []string{
			story("${" + name + "}"),
			"id: attack\nstart: hook\nnodes:\n  hook:\n    type: webhook\n    webhook: {url: \"https://example.com/${" + name + "}\", headers: {X-K: \"${" + name + "}\"}}\n",
		} {
			for _, route := range []string{"PUT /v1/stories/attack", "POST /v1/stories/validate"} {
				method, path, _ := strings.Cut(route, " ")
				code, m, err := call(p.url, method, path, src)
				body := fmt.Sprint(m)
				if err != nil || strings.Contains(body, serveToken) || strings.Contains(body, "do-not-leak-me") ||
					!strings.Contains(body, "environment variable "+name+" is not allowed in stories") || code/100 == 2 && method == "PUT" {
					t.Fatalf("%s with ${%s}: %d %v %v", route, name, code, body, err)
				}
			}
		}
	}

	// 4: one chat's userAttributes are bounded (413).
	big := map[string]any{"blob": strings.Repeat("x", 900<<10)}
	code, m, err := call(p.url, "POST", "/v1/chats", map[string]any{"storyId": "attack", "userAttributes": big})
	if err != nil || code != 413 || m["code"] != "attributes_too_large" {
		t.Fatalf("900 KB userAttributes: %d %v %v", code, m, err)
	}

	// 5: goto reaches only an offered node.
	order := mustCall(t, p.url, "POST", "/v1/chats", map[string]any{"storyId": "orders"}, 201)
	code, m, err = call(p.url, "POST", "/v1/chats/"+order["chatId"].(string)+"/messages", map[string]any{"goto": "place_order"})
	if err != nil || code != 409 || m["code"] != "goto_not_offered" {
		t.Fatalf("goto place_order: %d %v %v", code, m, err)
	}

	// 6: the smaller ones.
	if code, m, _ := call(p.url, "GET", "/v1/stories/attack?version=4294967297", nil); code != 400 {
		t.Fatalf("version 2^32+1: %d %v", code, m)
	}
	if code, m, _ := call(p.url, "POST", "/v1/chats", `{"storyId":"attack","storyId":"orders"}`); code != 400 || !strings.Contains(fmt.Sprint(m), "duplicate") {
		t.Fatalf("duplicate keys: %d %v", code, m)
	}
	if code, m, _ := call(p.url, "POST", "/v1/chats", `{"storyId":"attack","attributes":{"n":1e999}}`); code != 400 || strings.Contains(fmt.Sprint(m), "got a number") {
		t.Fatalf("1e999: %d %v", code, m)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/chats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: -1\r\n\r\n", serveToken)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	conn.Close()
	if res.StatusCode != 400 || strings.Contains(string(raw), serveToken) {
		t.Fatalf("Content-Length -1: %d %s", res.StatusCode, raw)
	}

	// Still serving, and nothing leaked into the log.
	mustCall(t, p.url, "GET", "/healthz", nil, 200)
	mustCall(t, p.url, "POST", "/v1/chats", map[string]any{"storyId": "attack"}, 201)
	if strings.Contains(p.logs.String(), "do-not-leak-me") {
		t.Fatalf("a secret reached the log:\n%s", p.logs)
	}
}

// A generated token is printed once, never logged.
func TestServeGeneratedTokenNotLogged(t *testing.T) {
	p := startServeEnv(t, []string{"STORYFLOW_API_TOKEN="}, "--data", t.TempDir())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "storyflow: API token: ") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := p.logs.String()
	_, rest, ok := strings.Cut(logs, "storyflow: API token: ")
	if !ok {
		t.Fatalf("no token printed:\n%s", logs)
	}
	tok, _, _ := strings.Cut(rest, "\n")
	if strings.Count(logs, tok) != 1 {
		t.Fatalf("the token shows %d times:\n%s", strings.Count(logs, tok), logs)
	}
}
