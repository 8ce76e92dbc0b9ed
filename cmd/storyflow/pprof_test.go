package main_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServePprof: the hidden --pprof flag serves profiles and expvar's
// variables on a loopback address only, and is not in the help.
func TestServePprof(t *testing.T) {
	for _, addr := range []string{"10.1.2.3:6060", "0.0.0.0:6060", ":6060", "example.com:6060"} {
		r := run(t, "", "serve", "--pprof", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "--pprof") {
			t.Errorf("--pprof %s: exit %d, %s", addr, r.code, r.stderr)
		}
	}
	if r := run(t, "", "serve", "-h"); strings.Contains(r.stderr+r.stdout, "pprof") {
		t.Errorf("help names --pprof:\n%s", r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startServe(t, "--data", t.TempDir(), "--pprof="+addr)
	for path, want := range map[string]string{"/debug/vars": `"memstats"`, "/debug/pprof/": "goroutine"} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, no %s in %.200s", path, res.StatusCode, want, body)
		}
	}
}
