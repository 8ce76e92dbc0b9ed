// Command seed fills an embedded store data directory with stored chats for
// the million-chat benchmark (make bench-million): -chats chats of the
// story bench_plain, each waiting at its question with a transcript of
// -entries entries, written through the store's own API (CreateChatEvents,
// as the server creates a chat) from several goroutines.
//
//	go run ./bench/seed -data /tmp/million -chats 1000000
//
// Chat i has the id SeedID(i), so a load test can address any of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storyflow/storyflow/bench/benchstory"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
)

// Story is the story the seeded chats belong to: the load test's
// bench_plain, stored as version 1.
var Story = benchstory.Plain

// SeedID is the id of seeded chat i: 24 hex digits, the shape of the ids
// the server makes.
func SeedID(i int) string { return fmt.Sprintf("5eed%020x", i) }

func main() {
	dir := flag.String("data", "", "data directory of the embedded store to fill (required)")
	n := flag.Int("chats", 1_000_000, "chats to store")
	entries := flag.Int("entries", 20, "transcript entries of each chat")
	workers := flag.Int("workers", 2*runtime.GOMAXPROCS(0), "goroutines writing")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "seed: -data is required")
		os.Exit(2)
	}
	start := time.Now()
	if err := seed(context.Background(), *dir, *n, *entries, *workers, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "seed: %d chats of %d entries in %s\n", *n, *entries, time.Since(start).Round(time.Second))
}

// seed stores chats 0 to n-1 in the store in dir. Chats already there are
// left as they are, so an interrupted run can be resumed; a finished run
// leaves DIR.seeded, and a run that finds it with the same counts does
// nothing.
func seed(ctx context.Context, dir string, n, entries, workers int, progress io.Writer) error {
	marker := filepath.Clean(dir) + ".seeded"
	done := fmt.Sprintf("chats %d, entries %d\n", n, entries)
	if b, err := os.ReadFile(marker); err == nil && string(b) == done {
		fmt.Fprintf(progress, "seed: %s already holds %s", dir, done)
		return nil
	}
	if err := seedStore(ctx, dir, n, entries, workers, progress); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(done), 0o644)
}

func seedStore(ctx context.Context, dir string, n, entries, workers int, progress io.Writer) error {
	s, err := embedded.Open(dir, embedded.Options{SyncEvery: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer s.Close()
	version, _, err := s.PutStory(ctx, "bench_plain", []byte(Story))
	if err != nil {
		return fmt.Errorf("store story: %w", err)
	}
	var next, stored atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(progress, "seed: %d of %d chats\n", stored.Load(), n)
			}
		}
	}()
	defer close(stop)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := s.CreateChatEvents(ctx, chat(i, version, entries), nil)
				if err != nil && !errors.Is(err, store.ErrExists) {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("chat %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
				stored.Add(1)
			}
		}()
	}
	wg.Wait()
	return first
}

// chat returns seeded chat i: waiting at ask after entries/2 turns.
func chat(i, version, entries int) *engine.Chat {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	id := SeedID(i)
	turns := entries / 2
	c := &engine.Chat{
		ID: id, StoryID: "bench_plain", StoryVersion: version, Node: "ask", Status: engine.StatusActive,
		UserID: id, Attributes: map[string]any{"said": fmt.Sprintf("hello %d", turns), "turns": float64(turns)},
		UserAttributes: map[string]any{}, Waiting: true, CreatedAt: at, UpdatedAt: at.Add(time.Duration(turns) * time.Minute),
	}
	for k := range entries {
		t := at.Add(time.Duration(k/2) * time.Minute)
		c.Seq++
		if k%2 == 0 {
			c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "user", Node: "ask",
				Input: &engine.Input{Text: fmt.Sprintf("hello %d", k/2+1)}, Time: t,
				Steps: []engine.Step{{Node: "ask", Next: "count"}, {Node: "count", Next: "ask"}, {Node: "ask", End: "wait"}}})
		} else {
			c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "bot", Node: "ask",
				Response: &engine.Response{Type: "text", Message: "Say something", Delay: 500}, Time: t})
		}
	}
	return c
}
