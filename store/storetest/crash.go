package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

const (
	crashEnv   = "STORETEST_CRASH_DIR"
	crashChats = 4
)

// Crash runs a child process (this test binary, running the calling test
// again) that updates chats through openStore and prints each acknowledged
// revision, kills it with SIGKILL mid-way, reopens the store and checks
// every acknowledged update, reply and transcript entry is there. While the
// child runs, a second open from this process must fail.
func Crash(t *testing.T, openStore func(dir string) (store.Store, error)) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir, openStore)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	lines := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for lines < 300 && time.Now().Before(deadline) && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		rev, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		acked[f[1]] = max(acked[f[1]], rev)
		lines++
	}
	// The child holds the directory: this process cannot open it.
	if s2, err := openStore(dir); err == nil {
		s2.Close()
		t.Error("open while another process has the store open succeeded")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if lines < 300 {
		t.Fatalf("child acknowledged only %d updates before the deadline", lines)
	}

	s, err := openStore(dir)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	for id, rev := range acked {
		c, err := s.GetChat(ctx, id)
		if err != nil {
			t.Errorf("chat %s (acknowledged rev %d): %v", id, rev, err)
			continue
		}
		if c.Rev < rev {
			t.Errorf("chat %s: stored rev %d, acknowledged %d", id, c.Rev, rev)
		}
		// The chat's content matches its revision, and the acknowledged
		// update's reply is remembered (unless the child went on past
		// MaxReplies more updates after the last one read here).
		if n := c.Attributes["n"]; n != float64(c.Rev) {
			t.Errorf("chat %s: rev %d but n = %v", id, c.Rev, n)
		}
		// (Rev 1 is the chat's creation, which has no reply.)
		if rev > 1 && c.Rev-rev < store.MaxReplies {
			if body, ok, err := s.GetReply(ctx, id, fmt.Sprintf("m%d", rev)); err != nil || !ok || string(body) != strconv.FormatInt(rev, 10) {
				t.Errorf("chat %s: reply of acknowledged rev %d: %q %v %v", id, rev, body, ok, err)
			}
		}
		// Every entry of every stored update is in the transcript.
		tr, err := s.GetTranscript(ctx, id, 0, 0)
		if err != nil || int64(len(tr)) != c.Rev-1 || c.Seq != c.Rev-1 {
			t.Errorf("chat %s at rev %d: seq %d, %d transcript entries (%v)", id, c.Rev, c.Seq, len(tr), err)
			continue
		}
		for i, e := range tr {
			if e.Seq != int64(i+1) || e.Input == nil || e.Input.Text != strconv.Itoa(i+2) {
				t.Errorf("chat %s: entry %d is %+v", id, i, e)
				break
			}
		}
	}
	t.Logf("acknowledged %d updates over %d chats before SIGKILL", lines, len(acked))
}

// crashChild updates crashChats chats concurrently until killed (or a
// minute passes), printing "ack <chat> <rev>" after each acknowledged write.
func crashChild(dir string, openStore func(string) (store.Store, error)) {
	s, err := openStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex
	ack := func(id string, rev int64) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "ack %s %d\n", id, rev)
		mu.Unlock()
	}
	stop := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for i := range crashChats {
		wg.Go(func() {
			id := fmt.Sprintf("chat%d", i)
			c := &engine.Chat{ID: id, StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(1)}}
			if err := s.CreateChat(ctx, c); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			ack(id, c.Rev)
			for time.Now().Before(stop) {
				next := c.Rev + 1
				c.Attributes["n"] = float64(next)
				// Each update adds one entry: entry seq k holds text k+1.
				c.Seq++
				c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "user", Input: &engine.Input{Text: strconv.FormatInt(next, 10)}})
				c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
				reply := &store.Reply{MessageID: fmt.Sprintf("m%d", next), Body: []byte(strconv.FormatInt(next, 10))}
				if err := s.UpdateChat(ctx, c, reply); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				ack(id, c.Rev)
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
