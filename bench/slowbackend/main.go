// Command slowbackend measures whether a slow webhook service hurts the
// chats of other stories: the turn rate of a story whose webhook answers at
// once, alone and while other chats load a second story whose webhook
// takes 5 s per call. It runs `storyflow serve` as a process of its own,
// both services on loopback (in this process), and wrk (Debian's `wrk`) as
// the load generator, in interleaved rounds, and reports medians.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storyflow/storyflow/bench/benchstory"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/storyflow", "storyflow binary")
	flag.DurationVar(&o.dur, "duration", 10*time.Second, "length of each measured phase")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of the two phases (alone, with the slow load)")
	flag.IntVar(&o.conns, "c", 50, "wrk connections on the fast story")
	flag.IntVar(&o.slowConns, "slow-c", 200, "wrk connections on the slow story")
	flag.IntVar(&o.chats, "chats", 400, "chats of each story")
	flag.DurationVar(&o.delay, "delay", 5*time.Second, "time the slow service takes per call")
	flag.StringVar(&o.serveArgs, "serve-args", "", "extra arguments for storyflow serve, space-separated (e.g. \"--webhook-max-in-flight 0\")")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "slowbackend:", err)
		os.Exit(1)
	}
}

type options struct {
	bin                      string
	dur, delay               time.Duration
	rounds, conns, slowConns int
	chats                    int
	serveArgs                string
}

const token = "slowbackend-token"

// script drives turns of the chats listed in the file args[1], round
// robin from a different place in each thread, and prints a RESULT line.
const script = `
local n = 0
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
function init(args)
  ids = {}
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2]}
  i = tid * 7919
end
function request()
  i = i + 1
  return wrk.format("POST", "/v1/chats/" .. ids[(i % #ids) + 1] .. "/messages", headers, '{"text":"hello"}')
end
function done(s, latency, requests)
  io.write(string.format('RESULT {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\n',
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// result is what wrk's done() reports.
type result struct {
	Requests   int64 `json:"requests"`
	DurationUs int64 `json:"durationUs"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"`
	Timeout    int64 `json:"timeout"`
	P50Us      int64 `json:"p50Us"`
	P99Us      int64 `json:"p99Us"`
}

// rate is the answered (2xx) turns per second.
func (r result) rate() float64 {
	return float64(r.Requests-r.Status) / (float64(r.DurationUs) / 1e6)
}

func (r result) errors() int64 { return r.Connect + r.Read + r.Write + r.Status + r.Timeout }

func run(o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: apt-get install -y wrk")
	}
	var slowNow, slowPeak, slowCalls, fastCalls atomic.Int64
	answer := []byte(`{"responses":[{"type":"text","message":"Checked."}],"attributes":{"plan":"pro"}}`)
	fast, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fastCalls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	if err != nil {
		return err
	}
	slow, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		slowCalls.Add(1)
		n := slowNow.Add(1)
		defer slowNow.Add(-1)
		for p := slowPeak.Load(); n > p && !slowPeak.CompareAndSwap(p, n); p = slowPeak.Load() {
		}
		select {
		case <-time.After(o.delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "storyflow-slowbackend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, stop, err := startStoryflow(o, dir, benchstory.SlowBackend(fast, slow))
	if err != nil {
		return err
	}
	defer stop()
	scriptFile := filepath.Join(dir, "turns.lua")
	if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
		return err
	}
	fastIDs, err := chats(base, "fast", o.chats, filepath.Join(dir, "fast.ids"))
	if err != nil {
		return err
	}
	slowIDs, err := chats(base, "slow", o.chats, filepath.Join(dir, "slow.ids"))
	if err != nil {
		return err
	}
	fastLoad := func(d time.Duration) (result, error) {
		return wrk(base, scriptFile, fastIDs, 2, o.conns, d, 10*time.Second)
	}
	fmt.Printf("storyflow serve %s; fast story: wrk -t2 -c%d -d%s; slow story (%s per call): wrk -t1 -c%d\n",
		o.serveArgs, o.conns, o.dur, o.delay, o.slowConns)
	if _, err := fastLoad(o.dur / 5); err != nil { // warm-up
		return fmt.Errorf("warm-up: %w", err)
	}

	var alone, loaded, ratios []float64
	var fastTurns int64
	calls0 := fastCalls.Load()
	for round := 1; round <= o.rounds; round++ {
		var a, l result
		measureAlone := func() error {
			var err error
			a, err = fastLoad(o.dur)
			return err
		}
		measureLoaded := func() error {
			var err error
			l, err = withSlowLoad(o, base, scriptFile, slowIDs, &slowNow, fastLoad)
			return err
		}
		// Alternate the order so drift of the machine favours neither.
		first, second := measureAlone, measureLoaded
		if round%2 == 0 {
			first, second = measureLoaded, measureAlone
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		fastTurns += a.Requests + l.Requests
		alone, loaded = append(alone, a.rate()), append(loaded, l.rate())
		ratios = append(ratios, l.rate()/a.rate())
		fmt.Printf("round %d: alone %7.0f turns/s (p50 %5.1f ms, p99 %6.1f ms, %d errors); with the slow load %7.0f turns/s (p50 %5.1f ms, p99 %6.1f ms, %d errors): %3.0f%%\n",
			round, a.rate(), ms(a.P50Us), ms(a.P99Us), a.errors(), l.rate(), ms(l.P50Us), ms(l.P99Us), l.errors(), 100*l.rate()/a.rate())
	}
	fmt.Printf("slow service: %d calls, at most %d in flight at once\n", slowCalls.Load(), slowPeak.Load())
	// Every fast turn calls the fast service; a turn that took its failure
	// branch instead (an open circuit) would be fast and wrong.
	n := fastCalls.Load() - calls0
	fmt.Printf("fast service: %d calls for %d measured turns\n", n, fastTurns)
	if short := fastTurns - n - int64(2*o.rounds*o.conns); short > 0 {
		return fmt.Errorf("%d fast turns did not call the fast service", short)
	}
	fmt.Printf("median: alone %.0f turns/s, with the slow load %.0f turns/s; per-round ratios %s, median %.0f%% (target >= 90%%)\n",
		median(alone), median(loaded), percents(ratios), 100*median(ratios))
	return nil
}

// withSlowLoad runs the fast story's load while wrk keeps the slow story's
// chats busy, started early enough that its calls fill the slow service.
func withSlowLoad(o options, base, scriptFile, slowIDs string, inFlight *atomic.Int64, fastLoad func(time.Duration) (result, error)) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slowDone := make(chan error, 1)
	go func() {
		r, err := wrkCtx(ctx, base, scriptFile, slowIDs, 1, o.slowConns, o.dur+o.delay+10*time.Second, 60*time.Second)
		if err == nil {
			fmt.Printf("  slow story: %.0f turns/s answered (p50 %.0f ms, p99 %.0f ms; %d errors, %d timeouts)\n",
				r.rate(), ms(r.P50Us), ms(r.P99Us), r.errors()-r.Timeout, r.Timeout)
		}
		slowDone <- err
	}()
	// Let the slow calls pile up first.
	deadline := time.Now().Add(o.delay)
	for time.Now().Before(deadline) && inFlight.Load() < int64(min(o.slowConns, 64)) {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("  slow calls in flight when measuring starts: %d\n", inFlight.Load())
	r, err := fastLoad(o.dur)
	fmt.Printf("  slow calls in flight when measuring ends: %d\n", inFlight.Load())
	cancel()
	if serr := <-slowDone; serr != nil && err == nil {
		err = fmt.Errorf("slow load: %w", serr)
	}
	return r, err
}

func wrk(base, scriptFile, ids string, threads, conns int, d, timeout time.Duration) (result, error) {
	return wrkCtx(context.Background(), base, scriptFile, ids, threads, conns, d, timeout)
}

// wrkCtx runs wrk and reads its RESULT line. When ctx ends wrk is
// interrupted, and reports what it measured until then.
func wrkCtx(ctx context.Context, base, scriptFile, ids string, threads, conns int, d, timeout time.Duration) (result, error) {
	cmd := exec.CommandContext(ctx, "wrk", fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conns),
		fmt.Sprintf("-d%ds", max(1, int(d.Seconds()))), "--timeout", fmt.Sprintf("%ds", int(timeout.Seconds())),
		"-s", scriptFile, base, "--", ids, token)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil && ctx.Err() == nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, stderr.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if j, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r result
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				return r, fmt.Errorf("wrk result %q: %w", j, err)
			}
			if r.Requests == r.Status {
				return r, fmt.Errorf("no turn answered 2xx: %s", out.String())
			}
			return r, nil
		}
	}
	return result{}, fmt.Errorf("wrk printed no result: %s", out.String())
}

// chats starts n chats of story and writes their ids, one a line, to file.
func chats(base, story string, n int, file string) (string, error) {
	var b strings.Builder
	for range n {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chats", strings.NewReader(fmt.Sprintf(`{"storyId":%q}`, story)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		var out struct {
			ChatID string `json:"chatId"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || out.ChatID == "" {
			return "", fmt.Errorf("start a chat of %s: status %d, %v", story, resp.StatusCode, err)
		}
		b.WriteString(out.ChatID + "\n")
	}
	return file, os.WriteFile(file, []byte(b.String()), 0o644)
}

func serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/hook", nil
}

// startStoryflow runs storyflow serve on a free loopback port with the
// stories and waits until it answers.
func startStoryflow(o options, dir, src string) (string, func(), error) {
	sdir := filepath.Join(dir, "stories")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return "", nil, err
	}
	for i, doc := range strings.Split(src, "---\n") {
		if err := os.WriteFile(filepath.Join(sdir, fmt.Sprintf("s%d.yaml", i)), []byte(doc), 0o644); err != nil {
			return "", nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--addr", addr, "--stories", sdir, "--data", filepath.Join(dir, "data"),
		"--allow-private-webhooks", "--log-level", "error"}, strings.Fields(o.serveArgs)...)
	cmd := exec.Command(o.bin, args...)
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN="+token)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", o.bin, err)
	}
	var mu sync.Mutex
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			tail = append(tail[max(0, len(tail)-19):], sc.Text())
			mu.Unlock()
		}
	}()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	base := "http://" + addr
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	return "", nil, fmt.Errorf("storyflow did not become healthy: %s", strings.Join(tail, "\n"))
}

func ms(us int64) float64 { return float64(us) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percents(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f%%", 100*x)
	}
	return strings.Join(parts, " ")
}
