package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// build builds this directory's binary: storyflow with split.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "storyflow-split")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestCustomBinary(t *testing.T) {
	bin := build(t)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	// validate lints split like a built-in type.
	if out, code := run("validate", "story.yaml"); code != 0 {
		t.Fatalf("validate story.yaml: %d\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("id: bad\nstart: s\nnodes:\n  s:\n    type: split\n    branches:\n      - {name: a, weight: 0, next: nowhere}\n"), 0o644)
	if out, code := run("validate", bad); code != 1 || !strings.Contains(out, `node "nowhere" not found`) {
		t.Fatalf("validate bad split: %d\n%s", code, out)
	}
	// schema describes it; graph draws it.
	if out, code := run("schema"); code != 0 || !strings.Contains(out, `"split"`) {
		t.Fatalf("schema: %d, split missing", code)
	}
	if out, code := run("graph", "story.yaml", "--format", "mermaid"); code != 0 || !strings.Contains(out, "(split)") {
		t.Fatalf("graph: %d\n%s", code, out)
	}
	// serve runs it: a chat over HTTP takes a branch and records it.
	dir := t.TempDir()
	data, _ := os.ReadFile("story.yaml")
	os.WriteFile(filepath.Join(dir, "story.yaml"), data, 0o644)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--stories", dir, "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN=tok")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "storyflow: serving on "); ok {
				url <- u
			}
		}
	}()
	var base string
	select {
	case base = <-url:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	req, _ := http.NewRequest("POST", base+"/v1/chats", bytes.NewBufferString(`{"storyId":"onboarding-ab","userId":"u1"}`))
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var chat struct {
		Attributes map[string]any `json:"attributes"`
		Node       string         `json:"node"`
	}
	json.Unmarshal(body, &chat)
	if res.StatusCode != 201 || (chat.Attributes["variant"] != "tour" && chat.Attributes["variant"] != "short") {
		t.Fatalf("chat: %d %s", res.StatusCode, body)
	}
}
