package main_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// load sends messages with message ids to chats until stopped: a message
// that is not acknowledged (200) is sent again with the same id. It
// records the acknowledged texts per chat and the other answers by status
// and code.
type load struct {
	url   string
	chats []string

	mu      sync.Mutex
	acked   [][]string
	answers map[string]int // "503 storage_full" -> count
	slowest map[string]time.Duration
	errs    []string

	ok   atomic.Int64 // acknowledged turns
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, url string, chats int) *load {
	t.Helper()
	l := &load{url: url, acked: make([][]string, chats), answers: map[string]int{}, slowest: map[string]time.Duration{}, stop: make(chan struct{})}
	for range chats {
		l.chats = append(l.chats, mustCall(t, url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string))
	}
	for c := range chats {
		l.wg.Add(1)
		go l.run(c)
	}
	return l
}

func (l *load) run(c int) {
	defer l.wg.Done()
	for i := 0; ; i++ {
		text := fmt.Sprintf("c%d-%d", c, i)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			began := time.Now()
			code, m, err := call(l.url, "POST", "/v1/chats/"+l.chats[c]+"/messages", map[string]any{"text": text, "messageId": text})
			took := time.Since(began)
			l.mu.Lock()
			if err != nil {
				l.errs = append(l.errs, err.Error())
				l.mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if code == 200 {
				l.acked[c] = append(l.acked[c], text)
				l.mu.Unlock()
				l.ok.Add(1)
				break
			}
			key := fmt.Sprintf("%d %v", code, m["code"])
			l.answers[key]++
			l.slowest[key] = max(l.slowest[key], took)
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

// count returns how many answers had key ("503 storage_full").
func (l *load) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers[key]
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// checkTranscripts: every acknowledged turn is in its chat's transcript
// exactly once, and no turn is there twice.
func (l *load) checkTranscripts(t *testing.T, url string) {
	t.Helper()
	for c, id := range l.chats {
		inputs := allInputs(t, url, id)
		for _, text := range l.acked[c] {
			if inputs[text] != 1 {
				t.Errorf("chat %d: acknowledged %s is %d times in the transcript", c, text, inputs[text])
			}
		}
		for text, n := range inputs {
			if n > 1 {
				t.Errorf("chat %d: %s is %d times in the transcript", c, text, n)
			}
		}
	}
}

// allInputs counts each user text in a chat's whole transcript, page by
// page.
func allInputs(t *testing.T, url, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	after := int64(0)
	for {
		chat := mustCall(t, url, "GET", fmt.Sprintf("/v1/chats/%s?after=%d", id, after), nil, 200)
		tr, _ := chat["transcript"].([]any)
		if len(tr) == 0 {
			return out
		}
		for text, n := range userInputs(chat) {
			out[text] += n
		}
		after = int64(tr[len(tr)-1].(map[string]any)["seq"].(float64))
	}
}

// readyz returns GET /readyz's status and checks.
func readyz(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	code, m, err := call(url, "GET", "/readyz", nil)
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	checks, _ := m["checks"].(map[string]any)
	return code, checks
}

// alive fails the test if the server process has exited.
func (p *serveProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("storyflow serve exited: %v\n%s", p.err, p.logs)
	default:
	}
}

// TestServeDiskFull fills the data directory's filesystem (a tmpfs this
// test mounts) while chats run: the server stays up, answers 503
// storage_full while the disk is full, takes turns again once the space is
// freed, and loses no acknowledged turn, also across a restart.
func TestServeDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting the test's tmpfs needs root; this test runs as root in CI")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); this test needs root with CAP_SYS_ADMIN", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	data := filepath.Join(mnt, "data")
	args := []string{"--data", data, "--stories", storiesDir(t), "--min-free-disk", "24MiB"}
	srv := startServe(t, args...)
	l := startLoad(t, srv.url, 4)
	if !waitFor(30*time.Second, func() bool { return l.ok.Load() >= 40 }) {
		t.Fatalf("only %d turns before the disk filled\n%s", l.ok.Load(), srv.logs)
	}

	// Fill the filesystem until it has no byte left.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	written := 0
	for {
		n, err := f.Write(chunk)
		written += n
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	t.Logf("filled the filesystem with %d MiB", written>>20)
	if !waitFor(10*time.Second, func() bool { return l.count("503 storage_full") >= 20 }) {
		t.Fatalf("no 503 storage_full with the disk full: %v\n%s", l.answers, srv.logs)
	}
	okWhileFull := l.ok.Load()
	code, checks := readyz(t, srv.url)
	if code != 503 || !strings.Contains(fmt.Sprint(checks["disk"]), "storage full") || checks["store"] != "ok" {
		t.Errorf("readyz while full: %d %v", code, checks)
	}
	// Reads go on.
	chat := mustCall(t, srv.url, "GET", "/v1/chats/"+l.chats[0], nil, 200)
	if len(userInputs(chat)) == 0 {
		t.Errorf("chat read while full has no inputs: %v", chat)
	}
	time.Sleep(2 * time.Second)
	srv.alive(t)
	if n := l.ok.Load() - okWhileFull; n > 0 {
		t.Errorf("%d turns were acknowledged with the disk full", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if !waitFor(15*time.Second, func() bool { return l.ok.Load() >= okWhileFull+40 }) {
		t.Fatalf("turns did not resume after the space was freed: %d more\n%s", l.ok.Load()-okWhileFull, srv.logs)
	}
	code, checks = readyz(t, srv.url)
	if code != 200 {
		t.Errorf("readyz after the space was freed: %d %v", code, checks)
	}
	l.end()
	srv.alive(t)
	for key := range l.answers {
		if key != "503 storage_full" {
			t.Errorf("answers besides 200 and 503 storage_full: %v", l.answers)
			break
		}
	}
	if len(l.errs) > 0 {
		t.Errorf("%d requests failed (first: %s)", len(l.errs), l.errs[0])
	}
	for _, bad := range []string{"fatal", "panic"} {
		if strings.Contains(strings.ToLower(srv.logs.String()), bad) {
			t.Errorf("the server logged %q:\n%s", bad, srv.logs)
		}
	}
	l.checkTranscripts(t, srv.url)
	t.Logf("%d turns acknowledged, %d answers 503 storage_full", l.ok.Load(), l.count("503 storage_full"))

	srv.kill()
	srv = startServe(t, args...)
	// As a load balancer would: wait until ready. (The last run's
	// write-ahead logs, preallocated, hold space until the restarted
	// store has replayed and deleted them.)
	if !waitFor(10*time.Second, func() bool { code, _ := readyz(t, srv.url); return code == 200 }) {
		code, checks := readyz(t, srv.url)
		t.Errorf("not ready after the restart: %d %v", code, checks)
	}
	l.checkTranscripts(t, srv.url)
	if code, m, err := call(srv.url, "POST", "/v1/chats/"+l.chats[0]+"/messages", map[string]any{"text": "after restart"}); code != 200 {
		out, _ := exec.Command("sh", "-c", "df -k "+mnt+"; ls -la "+data).CombinedOutput()
		t.Errorf("a turn after the restart: %d %v %v\n%s", code, m, err, out)
		for _, line := range strings.Split(srv.logs.String(), "\n") {
			if strings.Contains(line, "store") {
				t.Log(line)
			}
		}
	}
}

// ferret is a FerretDB server (tools/mongotest) that a test stops and
// starts again on the same port and data directory.
type ferret struct {
	t    *testing.T
	bin  string
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startFerret starts FerretDB on a free loopback port with a data directory
// of its own; it skips the test when the binary is not built (make test
// builds it).
func startFerret(t *testing.T) (*ferret, string) {
	t.Helper()
	bin, err := filepath.Abs("../../tools/mongotest/bin/mongotest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not built (tools/mongotest/start.sh builds it)", bin)
		}
		t.Skipf("%s is not built; tools/mongotest/start.sh (make test) builds it", bin)
	}
	f := &ferret{t: t, bin: bin, addr: "127.0.0.1:0", dir: t.TempDir()}
	uri := f.start()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = u.Host
	t.Cleanup(f.stop)
	return f, uri
}

// start runs the server and waits until it answers; it returns its URI.
func (f *ferret) start() string {
	f.t.Helper()
	f.cmd = exec.Command(f.bin, "-addr", f.addr, "-dir", f.dir)
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	var logs logBuffer
	f.cmd.Stderr = &logWriter{&logs}
	if err := f.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.done = make(chan struct{})
	uri := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "MONGODB_URI="); ok {
				uri <- u
			}
		}
		f.cmd.Wait()
		close(f.done)
	}()
	select {
	case u := <-uri:
		return u
	case <-f.done:
		f.t.Fatalf("FerretDB exited\n%s", &logs)
	case <-time.After(60 * time.Second):
		f.t.Fatalf("FerretDB did not start\n%s", &logs)
	}
	return ""
}

// stop ends the server (SIGTERM, as an operator stops a database) and
// waits for it.
func (f *ferret) stop() {
	if f.cmd == nil {
		return
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
	f.cmd = nil
}

type logWriter struct{ l *logBuffer }

func (w *logWriter) Write(p []byte) (int, error) {
	w.l.add(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestServeStoreOutage stops the MongoDB server (FerretDB) while chats
// run: turns answer 503 store_unavailable within the store timeout (never
// 500), /readyz names the store, and once the database is back the same
// server takes turns again; no acknowledged turn is lost or recorded twice.
func TestServeStoreOutage(t *testing.T) {
	f, base := startFerret(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/storyflow_outage"
	const storeTimeout = 2 * time.Second
	srv := startServe(t, "--mongo", u.String(), "--stories", storiesDir(t), "--data", t.TempDir(),
		"--store-timeout", storeTimeout.String())
	l := startLoad(t, srv.url, 4)
	if !waitFor(30*time.Second, func() bool { return l.ok.Load() >= 40 }) {
		t.Fatalf("only %d turns before the outage\n%s", l.ok.Load(), srv.logs)
	}

	f.stop()
	okAtStop := l.ok.Load()
	if !waitFor(30*time.Second, func() bool { return l.count("503 store_unavailable") >= 8 }) {
		t.Fatalf("no 503 store_unavailable with the database down: %v\n%s", l.answers, srv.logs)
	}
	code, checks := readyz(t, srv.url)
	if code != 503 || checks["store"] == "ok" || checks["disk"] != "ok" {
		t.Errorf("readyz with the database down: %d %v", code, checks)
	}
	time.Sleep(storeTimeout)
	srv.alive(t)
	if n := l.ok.Load() - okAtStop; n > 4 {
		t.Errorf("%d turns acknowledged with the database down (at most the ones in flight)", n)
	}

	f.start()
	okAtStart, started := l.ok.Load(), time.Now()
	if !waitFor(30*time.Second, func() bool { return l.ok.Load() > okAtStart }) {
		t.Fatalf("turns did not resume with the database back\n%s", srv.logs)
	}
	resumed := time.Since(started)
	if !waitFor(30*time.Second, func() bool { return l.ok.Load() >= okAtStart+40 }) {
		t.Fatalf("turns did not go on with the database back: %d more\n%s", l.ok.Load()-okAtStart, srv.logs)
	}
	if !waitFor(5*time.Second, func() bool { code, _ = readyz(t, srv.url); return code == 200 }) {
		_, checks = readyz(t, srv.url)
		t.Errorf("readyz with the database back: %d %v", code, checks)
	}
	l.end()
	srv.alive(t)
	for key, n := range l.answers {
		if key != "503 store_unavailable" {
			t.Errorf("%d answers %s (want only 200 and 503 store_unavailable)", n, key)
			for _, line := range strings.Split(srv.logs.String(), "\n") {
				if strings.Contains(line, "request failed") && !strings.Contains(line, "store_unavailable") {
					t.Log(line)
				}
			}
		}
	}
	if len(l.errs) > 0 {
		t.Errorf("%d requests failed (first: %s)", len(l.errs), l.errs[0])
	}
	// A 503 arrives within the store timeout: a turn fails at its first
	// store operation without an answer (one before it may have taken a
	// while too, on a loaded machine).
	if d := l.slowest["503 store_unavailable"]; d > 2*storeTimeout+time.Second {
		t.Errorf("the slowest 503 store_unavailable took %v, over --store-timeout %v", d, storeTimeout)
	}
	l.checkTranscripts(t, srv.url)
	t.Logf("%d turns acknowledged, %d answers 503 store_unavailable (slowest %v), first turn %v after the database started",
		l.ok.Load(), l.count("503 store_unavailable"), l.slowest["503 store_unavailable"], resumed.Round(time.Millisecond))
}
