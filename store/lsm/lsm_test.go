package lsm_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/lsm"
	"github.com/storyflow/storyflow/store/storetest"
)

// TestSuite runs the shared behaviour suite (its Reopen case closes and
// reopens the store).
func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func() (store.Store, error) { return lsm.Open(dir) }
	})
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := lsm.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// pebble's LOCK file: a second Open fails at once (TestCrashKill9
	// checks the same from another process).
	if s2, err := lsm.Open(dir); err == nil {
		s2.Close()
		t.Fatal("second open of a locked store succeeded")
	}
}

func TestClosed(t *testing.T) {
	s, err := lsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := s.CreateChat(context.Background(), &engine.Chat{ID: "c"}); err == nil {
		t.Error("write after close succeeded")
	}
}

const (
	crashEnv   = "STORELSM_CRASH_DIR"
	crashChats = 4
)

// TestCrashKill9 runs a child process that updates chats and prints each
// acknowledged revision, kills it with SIGKILL mid-way, reopens the store
// and checks every acknowledged update is there. While the child runs, a
// second Open from this process must fail.
func TestCrashKill9(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill9$", "-test.count=1")
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
	if s2, err := lsm.Open(dir); err == nil {
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

	s, err := lsm.Open(dir)
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
		// update's reply is remembered.
		if n := c.Attributes["n"]; n != float64(c.Rev) {
			t.Errorf("chat %s: rev %d but n = %v", id, c.Rev, n)
		}
		if body, ok, err := s.GetReply(ctx, id, fmt.Sprintf("m%d", rev)); err != nil || !ok || string(body) != strconv.FormatInt(rev, 10) {
			t.Errorf("chat %s: reply of acknowledged rev %d: %q %v %v", id, rev, body, ok, err)
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
func crashChild(dir string) {
	s, err := lsm.Open(dir)
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

// BenchmarkTurn is the store's part of a chat turn as the API does it, on
// 32 chats at once: read the chat, add an input and a response to its
// transcript, write it back (durably). The chats have long transcripts.
func BenchmarkTurn(b *testing.B) {
	s, err := lsm.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	next := 0
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // 32 goroutines
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		id := fmt.Sprintf("chat%d", next)
		next++
		mu.Unlock()
		c := &engine.Chat{ID: id, StoryID: "bench", StoryVersion: 1, Node: "ask", Status: engine.StatusActive, UserID: id,
			Attributes: map[string]any{"said": "hello", "customer": "yes", "plan": "pro"}, UserAttributes: map[string]any{},
			Waiting: true, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
		if err := s.CreateChat(ctx, c); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			c, err := s.GetChat(ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			now := time.Now().UTC()
			add := func(e engine.Entry) {
				c.Seq++
				e.Seq, e.Time = c.Seq, now
				c.Transcript = append(c.Transcript, e)
			}
			add(engine.Entry{From: "user", Node: "ask", Input: &engine.Input{Text: "hello"}})
			add(engine.Entry{From: "bot", Node: "ask", Response: &engine.Response{Type: "text", Message: "Say something", Delay: 500}})
			c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
			c.UpdatedAt = now
			if err := s.UpdateChat(ctx, c, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// cpuTime is the process's user and system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
