package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The binaries under test, built once by TestMain.
var (
	binDir     string
	storyflow  string
	backendBin string
)

const examples = "../../examples/stories/"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "storyflow-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	storyflow = filepath.Join(dir, "storyflow")
	if out, err := exec.Command("go", "build", "-o", storyflow, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build storyflow: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	stopBackend()
	return code
}

// result is what a run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// run runs storyflow with args and stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, storyflow, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run storyflow %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("storyflow %v timed out\nstdout:\n%s", args, r.stdout)
	}
	return r
}

// lines splits output into lines.
func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// wantLines checks that every want line occurs in out, in this order.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := lines(out)
	for _, w := range want {
		i := indexLine(rest, w)
		if i < 0 {
			t.Errorf("line %q missing (or out of order) in output:\n%s", w, out)
			return
		}
		rest = rest[i+1:]
	}
}

func indexLine(ls []string, w string) int {
	for i, l := range ls {
		if strings.TrimRight(l, " ") == w {
			return i
		}
	}
	return -1
}

// The example webhook backend, started once on 127.0.0.1:8081 because the
// support and orders examples name that address.
const backendAddr = "127.0.0.1:8081"

var (
	backendOnce sync.Once
	backendCmd  *exec.Cmd
	backendErr  error
)

// needBackend starts the example Go backend for the stories with webhooks.
func needBackend(t *testing.T) {
	t.Helper()
	backendOnce.Do(func() { backendErr = startBackend() })
	if backendErr != nil {
		t.Fatal(backendErr)
	}
}

func startBackend() error {
	backendBin = filepath.Join(binDir, "backend")
	if out, err := exec.Command("go", "build", "-o", backendBin, "../../examples/backends/go").CombinedOutput(); err != nil {
		return fmt.Errorf("build the example backend: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", backendAddr)
	if err != nil {
		return fmt.Errorf("port %s is taken (%v): the support and orders examples call the example backend there; stop whatever listens on it", backendAddr, err)
	}
	ln.Close()
	cmd := exec.Command(backendBin, "-addr", backendAddr, "-token", "dev-token")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the example backend: %w", err)
	}
	backendCmd = cmd
	for range 100 {
		resp, err := http.Get("http://" + backendAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the example backend did not come up on %s:\n%s", backendAddr, logs.String())
}

func stopBackend() {
	if backendCmd != nil && backendCmd.Process != nil {
		backendCmd.Process.Kill()
		backendCmd.Wait()
	}
}

// freePort returns a loopback address where nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"no command", nil, 2, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, "storyflow validate", ""},
		{"help lists chat", []string{"help"}, 0, "storyflow chat", ""},
		{"help of a command", []string{"help", "chat"}, 0, "-user-attr", ""},
		{"--help of a command", []string{"serve", "--help"}, 0, "-cors-origins", ""},
		{"help of no command", []string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{"version", []string{"version"}, 0, "storyflow ", ""},
		{"validate without files", []string{"validate"}, 2, "", "no files given"},
		{"validate unknown flag", []string{"validate", "--nope", "x.yaml"}, 2, "", "flag provided but not defined"},
		{"chat without file", []string{"chat"}, 2, "", "want exactly one story file"},
		{"chat bad attr", []string{"chat", "--attr", "novalue", examples + "leads.yaml"}, 2, "", "want name=value"},
		{"graph without file", []string{"graph"}, 2, "", "want exactly one story file"},
		{"graph bad format", []string{"graph", examples + "leads.yaml", "--format", "png"}, 2, "", `unknown format "png"`},
		{"schema with args", []string{"schema", "x"}, 2, "", "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.inStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.inStdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.inStderr, r.stderr)
			}
		})
	}
}

// TestVersion: storyflow version prints the module version that the
// binary's build information holds.
func TestVersion(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", storyflow).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/storyflow/storyflow" {
			want = f[2]
		}
	}
	if want == "" {
		t.Fatalf("no module line in go version -m:\n%s", out)
	}
	r := run(t, "", "version")
	if !strings.HasPrefix(r.stdout, "storyflow "+want+" ") || strings.Contains(r.stdout, " dev") {
		t.Fatalf("version %q, want the module version %q", r.stdout, want)
	}
}
