// Command events measures event delivery against a real storyflow serve
// process on loopback: the turn rate (wrk) with no event subscription and
// with one subscription taking every event, and the events per second a
// loopback receiver gets while the turns run. Phases alternate for
// -rounds rounds; medians are reported.
//
//	go build -o bin/storyflow ./cmd/storyflow && go run ./bench/events
package main

import (
	"bytes"
	"encoding/json"
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
	"sync/atomic"
	"time"
)

const token = "bench-token"

const story = `id: counter
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

func main() {
	bin := flag.String("bin", "bin/storyflow", "storyflow binary")
	dur := flag.Duration("duration", 10*time.Second, "length of each measured phase")
	conc := flag.Int("c", 50, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	nchats := flag.Int("chats", 400, "chats the turns are spread over")
	rounds := flag.Int("rounds", 3, "rounds of the two phases")
	flag.Parse()
	if err := run(*bin, *dur, *conc, *threads, *nchats, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "events bench:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, conc, threads, nchats, rounds int) error {
	var received atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	hook := "http://" + ln.Addr().String() + "/events"
	var none, one, evRate, lagAll []float64
	for round := 1; round <= rounds; round++ {
		for _, subscribed := range []bool{false, true} {
			base, stop, err := startServe(bin)
			if err != nil {
				return err
			}
			if subscribed {
				if err := call(base, "/v1/event-webhooks", fmt.Sprintf(`{"url":%q,"events":["*"]}`, hook), nil); err != nil {
					stop()
					return err
				}
			}
			ids := make([]string, nchats)
			for i := range ids {
				var a struct{ ChatID string }
				if err := call(base, "/v1/chats", `{"storyId":"counter"}`, &a); err != nil {
					stop()
					return err
				}
				ids[i] = a.ChatID
			}
			time.Sleep(500 * time.Millisecond) // the creations' events go out first
			before := received.Load()
			start := time.Now()
			rate, turns, err := wrk(base, ids, dur, conc, threads)
			elapsed := time.Since(start)
			got := received.Load() - before
			if err != nil {
				stop()
				return err
			}
			if subscribed {
				// Drain: each turn makes one conversation.updated.
				drainStart := time.Now()
				for received.Load()-before < int64(turns) && time.Since(drainStart) < 60*time.Second {
					time.Sleep(20 * time.Millisecond)
				}
				lag := time.Since(drainStart)
				one = append(one, rate)
				evRate = append(evRate, float64(got)/elapsed.Seconds())
				lagAll = append(lagAll, lag.Seconds())
				fmt.Printf("round %d  one subscription: %8.0f turns/s  %8.0f events/s delivered during the run (%d of %d turns' events), all delivered %.1fs after wrk ended\n",
					round, rate, float64(got)/elapsed.Seconds(), got, turns, lag.Seconds())
			} else {
				none = append(none, rate)
				fmt.Printf("round %d  no subscription:  %8.0f turns/s\n", round, rate)
			}
			stop()
		}
	}
	fmt.Printf("median: no subscription %.0f turns/s, one subscription %.0f turns/s (%.0f%%), %.0f events/s delivered, drained %.1fs after\n",
		median(none), median(one), 100*median(one)/median(none), median(evRate), median(lagAll))
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func startServe(bin string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "events-bench")
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "counter.yaml"), []byte(story), 0o644); err != nil {
		return "", nil, err
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", filepath.Join(dir, "data"), "--stories", dir, "--allow-private-webhooks", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN="+token)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	base := "http://" + addr
	for i := 0; i < 300; i++ {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			return base, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("serve did not start")
}

func call(base, path, body string, out any) error {
	req, _ := http.NewRequest("POST", base+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", path, res.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// wrk runs turns over ids and returns the rate of 2xx turns and their count.
func wrk(base string, ids []string, d time.Duration, conc, threads int) (float64, int, error) {
	var b strings.Builder
	b.WriteString("local ids = {")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q", id)
	}
	fmt.Fprintf(&b, `}
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}
function request()
  local i = (tid + n * %d) %% #ids + 1
  n = n + 1
  return wrk.format("POST", "/v1/chats/" .. ids[i] .. "/messages", headers, '{"text":"hello"}')
end
`, token, threads)
	f, err := os.CreateTemp("", "events-*.lua")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	f.WriteString(b.String())
	f.Close()
	out, err := exec.Command("wrk", "-t", fmt.Sprint(threads), "-c", fmt.Sprint(conc), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "10s", "-s", f.Name(), base).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	var rate float64
	var total, bad int
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 2 && fs[0] == "Requests/sec:":
			fmt.Sscan(fs[1], &rate)
		case len(fs) >= 4 && fs[1] == "requests" && fs[2] == "in":
			fmt.Sscan(fs[0], &total)
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			fmt.Sscan(fs[len(fs)-1], &bad)
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no requests in wrk's report: %s", out)
	}
	return rate * float64(total-bad) / float64(total), total - bad, nil
}
