package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const serveToken = "serve-test-token"

// counterStory counts inputs: every message is counted exactly once.
const counterStory = `id: counter
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: Say something}]
    next: count
  count:
    type: set
    attributes:
      count: "{{ (attributes.count ?? 0) + 1 }}"
    next: ask
`

// logBuffer collects a process's output for failure messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) add(s string) {
	l.mu.Lock()
	l.b.WriteString(s + "\n")
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveProc is a running `storyflow serve`.
type serveProc struct {
	cmd  *exec.Cmd
	url  string
	logs *logBuffer
	done chan struct{}
	err  error // of Wait, once done
}

// startServe starts storyflow serve on a free loopback port and waits until
// it listens.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with more environment (later values win).
func startServeEnv(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(storyflow, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "STORYFLOW_API_TOKEN="+serveToken, "STORYFLOW_MONGO_URI="), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			if u, ok := strings.CutPrefix(line, "storyflow: serving on "); ok {
				ready <- u
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.url = <-ready:
	case <-p.done:
		t.Fatalf("storyflow serve exited: %v\n%s", p.err, p.logs)
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("storyflow serve did not start\n%s", p.logs)
	}
	return p
}

// kill sends SIGKILL (kill -9) and waits for the process to end.
func (p *serveProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// call sends a request with the token; body is sent as JSON unless it is a
// string.
func call(base, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+serveToken)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var m map[string]any
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &m); err != nil {
			return res.StatusCode, nil, fmt.Errorf("answer %s: %w", data, err)
		}
	}
	return res.StatusCode, m, nil
}

func mustCall(t *testing.T, base, method, path string, body any, status int) map[string]any {
	t.Helper()
	code, m, err := call(base, method, path, body)
	if err != nil || code != status {
		t.Fatalf("%s %s: %d %v %v (want %d)", method, path, code, m, err, status)
	}
	return m
}

// userInputs counts each user text in a chat's transcript.
func userInputs(chat map[string]any) map[string]int {
	out := map[string]int{}
	tr, _ := chat["transcript"].([]any)
	for _, e := range tr {
		if in, ok := e.(map[string]any)["input"].(map[string]any); ok {
			text, _ := in["text"].(string)
			out[text]++
		}
	}
	return out
}

func storiesDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "counter.yaml"), []byte(counterStory), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestServeDurability runs conversations, kills the server with SIGKILL
// while turns are in flight, restarts it on the same data directory and
// finds every acknowledged turn, in both --sync modes.
func TestServeDurability(t *testing.T) {
	for _, mode := range []string{"always", "10ms"} {
		t.Run(mode, func(t *testing.T) { testDurability(t, "--sync", mode) })
	}
}

func testDurability(t *testing.T, storeArgs ...string) {
	data := filepath.Join(t.TempDir(), "data")
	stories := storiesDir(t)
	srv := startServe(t, append([]string{"--data", data, "--stories", stories}, storeArgs...)...)

	const chats = 4
	ids := make([]string, chats)
	for i := range ids {
		ids[i] = mustCall(t, srv.url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string)
	}
	var mu sync.Mutex // guards acked
	acked := make([][]string, chats)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("c%d-%d", c, i)
				code, _, err := call(srv.url, "POST", "/v1/chats/"+ids[c]+"/messages", map[string]any{"text": text})
				if err != nil {
					return // the server is gone
				}
				if code != 200 {
					t.Errorf("message %s: status %d", text, code)
					return
				}
				mu.Lock()
				acked[c] = append(acked[c], text)
				mu.Unlock()
			}
		}()
	}
	// Kill once every chat has a few acknowledged turns, turns in flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		mu.Lock()
		for c := range chats {
			n += min(len(acked[c]), 20)
		}
		mu.Unlock()
		if n >= 20*chats || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	close(stop)
	wg.Wait()

	srv = startServe(t, append([]string{"--data", data}, storeArgs...)...)
	total := 0
	for c, id := range ids {
		chat := mustCall(t, srv.url, "GET", "/v1/chats/"+id, nil, 200)
		inputs := userInputs(chat)
		for _, text := range acked[c] {
			if inputs[text] != 1 {
				t.Errorf("chat %d: acknowledged %s is %d times in the transcript", c, text, inputs[text])
			}
		}
		count, _ := chat["attributes"].(map[string]any)["count"].(float64)
		if int(count) < len(acked[c]) || int(count) > len(acked[c])+1 {
			t.Errorf("chat %d: count %v after %d acknowledged turns", c, count, len(acked[c]))
		}
		total += len(acked[c])
	}
	if total < chats {
		t.Fatalf("only %d turns were acknowledged before the kill\n%s", total, srv.logs)
	}
	t.Logf("%d acknowledged turns in %d chats survived kill -9", total, chats)
	// The restarted server still takes turns.
	mustCall(t, srv.url, "POST", "/v1/chats/"+ids[0]+"/messages", map[string]any{"text": "after restart"}, 200)
}

// mongoURI returns MONGODB_TEST_URI with a fresh database name, and drops
// that database when the test ends. Without the variable the test is
// skipped, or fails in CI.
func mongoURI(t *testing.T) string {
	t.Helper()
	base := os.Getenv("MONGODB_TEST_URI")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("MONGODB_TEST_URI is not set (make test starts a FerretDB and sets it)")
		}
		t.Skip("MONGODB_TEST_URI is not set; make test starts a FerretDB and sets it")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("MONGODB_TEST_URI: %v", err)
	}
	var rb [4]byte
	rand.Read(rb[:])
	db := "storyflow_serve_" + hex.EncodeToString(rb[:])
	u.Path = "/" + db
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := mongo.Connect(options.Client().ApplyURI(base))
		if err != nil {
			return
		}
		defer client.Disconnect(ctx)
		client.Database(db).Drop(ctx)
	})
	return u.String()
}

// TestServeTwoProcessesOneMongo sends 100 concurrent messages to one chat,
// split across two servers sharing one MongoDB: each is counted once.
func TestServeTwoProcessesOneMongo(t *testing.T) {
	uri := mongoURI(t)
	stories := storiesDir(t)
	a := startServe(t, "--mongo", uri, "--stories", stories, "--data", t.TempDir(), "--log-level", "debug")
	b := startServe(t, "--mongo", uri, "--stories", stories, "--data", t.TempDir(), "--log-level", "debug")

	id := mustCall(t, a.url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string)
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, m, err := call(srv.url, "POST", "/v1/chats/"+id+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)})
			if err != nil || code != 200 {
				t.Errorf("message %d: %d %v %v", i, code, m, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("logs of A:\n%s\nlogs of B:\n%s", a.logs, b.logs)
	}
	races := strings.Count(a.logs.String()+b.logs.String(), "lost a race")
	t.Logf("turns run again after losing a race with the other process: %d", races)
	for _, srv := range []*serveProc{a, b} {
		chat := mustCall(t, srv.url, "GET", "/v1/chats/"+id, nil, 200)
		if c := chat["attributes"].(map[string]any)["count"]; c != float64(n) {
			t.Fatalf("count %v, want %d", c, n)
		}
		inputs := userInputs(chat)
		for i := range n {
			if k := inputs[fmt.Sprintf("m%d", i)]; k != 1 {
				t.Fatalf("m%d is %d times in the transcript", i, k)
			}
		}
	}
}

// TestServeFlags covers start-up failures and the generated token.
func TestServeFlags(t *testing.T) {
	r := run(t, "", "serve", "extra")
	if r.code != 2 || !strings.Contains(r.stderr, "unexpected arguments") {
		t.Fatalf("extra argument: %d %s", r.code, r.stderr)
	}
	r = run(t, "", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--stories", filepath.Join(t.TempDir(), "nope"))
	if r.code != 1 || !strings.Contains(r.stderr, "load stories") {
		t.Fatalf("missing stories dir: %d %s", r.code, r.stderr)
	}
	r = run(t, "", "serve", "--log-level", "loud")
	if r.code != 2 {
		t.Fatalf("bad log level: %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"--sync", "sometimes"}, {"--sync", "0s"}, {"--sync", "-5ms"}, {"--delivery-retention", "-1h0m0s"},
		{"--cache-bytes", "0"}, {"--cache-bytes", "64MB"}, {"--cache-bytes", "-1"}, {"--cache-bytes", "99999999999GiB"},
	} {
		r = run(t, "", append([]string{"serve", "--data", t.TempDir()}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, strings.TrimLeft(args[0], "-")) || !strings.Contains(r.stderr, args[1]) {
			t.Errorf("%s %s: exit %d, %s", args[0], args[1], r.code, r.stderr)
		}
	}

	// Without a token one is generated and printed once; it works.
	cmd := exec.Command(storyflow, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN=", "STORYFLOW_MONGO_URI=")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
		}
	}()
	sc := bufio.NewScanner(stderr)
	var base, tok string
	for (base == "" || tok == "") && sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "storyflow: serving on "); ok {
			base = u
		}
		if v, ok := strings.CutPrefix(line, "storyflow: API token: "); ok {
			tok = v
		}
	}
	if base == "" || len(tok) < 32 {
		t.Fatalf("url %q, token %q", base, tok)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{tok, 200}, {serveToken, 401}} {
		req, _ := http.NewRequest("GET", base+"/v1/stories", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Fatalf("token %q: status %d, want %d", tc.token, res.StatusCode, tc.want)
		}
	}
	// SIGTERM stops it cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestServeLockedData: a second server on a data directory in use says
// that another storyflow holds it.
func TestServeLockedData(t *testing.T) {
	dir := t.TempDir()
	startServe(t, "--data", dir)
	cmd := exec.Command(storyflow, "serve", "--addr", "127.0.0.1:0", "--data", dir)
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN="+serveToken, "STORYFLOW_MONGO_URI=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second server: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is in use by another storyflow process") {
		t.Fatalf("second server says:\n%s", out)
	}
}

// TestServeJSONLogs: --log-format json writes one JSON object per line,
// with millisecond timestamps, request logs without the token.
func TestServeJSONLogs(t *testing.T) {
	p := startServe(t, "--data", t.TempDir(), "--log-format", "json")
	if code, _, err := call(p.url, "GET", "/v1/stories", nil); err != nil || code != 200 {
		t.Fatalf("list stories: %d %v", code, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), `"msg":"request"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no request log:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tsRe := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, l := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		if strings.HasPrefix(l, "storyflow: ") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if ts, _ := m["time"].(string); !tsRe.MatchString(ts) {
			t.Fatalf("time %q is not UTC with milliseconds", ts)
		}
	}
	if strings.Contains(p.logs.String(), serveToken) {
		t.Fatalf("the token is in the logs:\n%s", p.logs)
	}
}
