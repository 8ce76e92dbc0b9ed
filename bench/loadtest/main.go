// Command loadtest measures storyflow turns against hand-written baselines in
// one run, on loopback only: a story turn with a webhook node beside a fiber
// handler making the same webhook call, and a turn without webhook beside a
// fiber echo handler. It starts everything itself and stops by itself.
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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/bench/benchstory"
)

func main() {
	bin := flag.String("bin", "bin/storyflow", "storyflow binary")
	dur := flag.Duration("duration", 10*time.Second, "length of each measured phase")
	conc := flag.Int("c", 50, "wrk connections")
	flag.IntVar(&chats, "chats", 400, "chats the storyflow phases spread their turns over")
	flag.IntVar(&wrkThreads, "t", 2, "wrk threads")
	backendMode := flag.Bool("backend", false, "internal: serve the webhook backend and print its address")
	flag.IntVar(&rounds, "rounds", 3, "rounds of the four phases; ratios are reported per round and as medians")
	flag.StringVar(&profileDir, "cpuprofile", "", "write a CPU profile of storyflow during each of its measured phases into this directory (PHASE-ROUND.pprof)")
	flag.DurationVar(&traceFor, "trace", 0, "with -cpuprofile: write an execution trace of this length (PHASE-ROUND.trace, for go tool trace) instead of a CPU profile")
	flag.StringVar(&serveLog, "serve-log", "", "also write storyflow's standard error to this file, each line after the time it came")
	flag.StringVar(&serveArgs, "serve-args", "", "extra arguments for storyflow serve, space-separated (e.g. \"--sync always\")")
	flag.StringVar(&serveEnv, "serve-env", "", "extra environment for storyflow serve only, space-separated NAME=VALUE (e.g. \"GOGC=800\")")
	flag.StringVar(&mongoURI, "mongo", "", "run storyflow serve on this MongoDB server (a fresh database, dropped at the end) instead of the embedded store")
	flag.StringVar(&mdFile, "md", "", "also write the run as a Markdown table to this file (e.g. BENCHMARKS.md)")
	baseline := flag.String("baseline", "", "internal: serve the baselines for this webhook URL and print their address")
	flag.StringVar(&seededDir, "seeded", "", "compare plain turns on an empty store with turns on the chats of this data directory, filled by bench/seed (the million-chat benchmark)")
	flag.IntVar(&seededChats, "seeded-chats", 1_000_000, "with -seeded: how many chats bench/seed stored there (-chats of bench/seed)")
	flag.IntVar(&seededActive, "seeded-active", 0, "with -seeded: turns go to random ones of the first this many stored chats (0: of all)")
	flag.Parse()
	if *backendMode {
		if err := serveBackend(); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: backend:", err)
			os.Exit(1)
		}
		return
	}
	if *baseline != "" {
		if err := serveBaseline(*baseline); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: baseline:", err)
			os.Exit(1)
		}
		return
	}
	drop := func() {}
	if mongoURI != "" {
		uri, d, err := freshMongo(mongoURI)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(2)
		}
		serveMongo, drop = uri, d
	}
	runner := run
	if seededDir != "" {
		runner = runSeeded
	}
	err := runner(*bin, *dur, *conc)
	drop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// rounds is how many times the four phases run, one after the other.
var rounds = 3

// mdFile receives the run as Markdown ("": none).
var mdFile string

// chats is how many chats a storyflow phase spreads its turns over;
// wrkThreads is wrk's -t.
var chats, wrkThreads = 400, 2

// profileDir is where storyflow's CPU profiles go ("": none).
var profileDir string

// serveLog, if set, is where storyflow's standard error is copied.
var serveLog string

// traceFor, if set, takes an execution trace of this length instead of a
// CPU profile.
var traceFor time.Duration

// serveArgs are extra arguments for storyflow serve; serveEnv its extra
// environment.
var serveArgs, serveEnv string

// answer is what the webhook backend returns to every call.
var answer = []byte(`{"responses":[{"type":"text","message":"Checked."}],"attributes":{"customer":"yes","plan":"pro"}}`)

func run(bin string, dur time.Duration, conc int) error {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk; make bench installs it)")
	}
	if serveMongo != "" {
		fmt.Println("store: MongoDB at -mongo, a fresh database (on FerretDB the turn rate is FerretDB's, not MongoDB's)")
	}
	// The webhook backend, in a process of its own like every server here.
	backend, stopBackend, err := startSelf("-backend")
	if err != nil {
		return err
	}
	defer stopBackend()
	hookURL := backend + "/hook"

	// The baselines: a hand-written fiber handler making the same webhook
	// call, and an echo handler. Like storyflow they run in a process of
	// their own, so that every server under test pays the same cross-process
	// wake-ups and shares the cores with the load generator in the same way.
	base, stopBase, err := startBaseline(hookURL)
	if err != nil {
		return err
	}
	defer stopBase()

	// storyflow itself.
	dir, err := os.MkdirTemp("", "storyflow-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sf, pprofURL, stop, err := startStoryflow(bin, dir, filepath.Join(dir, "data"), hookURL)
	if err != nil {
		return err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}}
	token := "loadtest-token"
	newChat := func(story string) (string, error) {
		var out struct {
			ChatID string `json:"chatId"`
		}
		err := post(client, sf+"/v1/chats", token, fmt.Sprintf(`{"storyId":%q}`, story), &out)
		return out.ChatID, err
	}
	turn := func(story string) (string, error) {
		ids := make([]string, chats)
		for i := range ids {
			id, err := newChat(story)
			if err != nil {
				return "", err
			}
			ids[i] = id
		}
		return turnScript(ids, token), nil
	}
	hookTurns, err := turn("bench_webhook")
	if err != nil {
		return err
	}
	plainTurns, err := turn("bench_plain")
	if err != nil {
		return err
	}
	chatBody := `{"chatId":"c1","attributes":{"plan":"free"},"text":"hello"}`
	calls := backend + "/calls"
	phases := []phase{
		{"baseline: fiber handler + webhook call", "", basePID, base + "/hand", postScript(chatBody), "", calls},
		{"storyflow: turn with webhook node", "webhook", storyflowPID, sf, hookTurns, pprofURL, calls},
		{"baseline: fiber echo handler", "", basePID, base + "/echo", postScript(chatBody), "", ""},
		{"storyflow: turn without webhook", "plain", storyflowPID, sf, plainTurns, pprofURL, ""},
	}
	var hookRatio, hookP99, plainRatio, hookCPU, plainCPU []float64
	var all [][]result
	for round := 1; round <= rounds; round++ {
		fmt.Printf("round %d of %d\n", round, rounds)
		res, err := runPhases(phases, conc, dur, round)
		if err != nil {
			return err
		}
		all = append(all, res)
		hookRatio = append(hookRatio, res[1].rate/res[0].rate)
		hookP99 = append(hookP99, float64(res[1].p99)/float64(res[0].p99))
		plainRatio = append(plainRatio, res[3].rate/res[2].rate)
		hookCPU = append(hookCPU, cpuPerTurn(res[1])/cpuPerTurn(res[0]))
		plainCPU = append(plainCPU, cpuPerTurn(res[3])/cpuPerTurn(res[2]))
		fmt.Printf("  webhook turn %.0f%% of the hand-written handler (p99 %.2fx); plain turn %.0f%% of the echo handler\n\n",
			100*hookRatio[round-1], hookP99[round-1], 100*plainRatio[round-1])
	}
	fmt.Printf("webhook turn: %s of the hand-written handler's throughput, median %.0f%% (target >= 70%%)\n", percents(hookRatio), 100*median(hookRatio))
	fmt.Printf("              p99 %s its p99, median %.2fx (target <= 2x)\n", times(hookP99), median(hookP99))
	fmt.Printf("plain turn:   %s of the echo handler's throughput, median %.0f%% (target >= 40%%)\n", percents(plainRatio), 100*median(plainRatio))
	fmt.Printf("server CPU per turn:  webhook turn %s the handler's, median %.2fx; plain turn %s the echo handler's, median %.2fx\n",
		times(hookCPU), median(hookCPU), times(plainCPU), median(plainCPU))
	if mdFile != "" {
		return writeMarkdown(mdFile, phases, all, [][]float64{hookRatio, hookP99, plainRatio, hookCPU, plainCPU}, conc, dur)
	}
	return nil
}

// writeMarkdown writes the run: the command, the machine, each phase's
// rate and latencies per round, and the ratios with their medians.
// ratios are the per-round webhook throughput, webhook p99, plain
// throughput, webhook CPU and plain CPU ratios.
func writeMarkdown(file string, phases []phase, all [][]result, ratios [][]float64, conc int, dur time.Duration) error {
	hookRatio, hookP99, plainRatio, hookCPU, plainCPU := ratios[0], ratios[1], ratios[2], ratios[3], ratios[4]
	var b strings.Builder
	host, cpu := hostname(), cpuModel()
	fmt.Fprintf(&b, "## Load test, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Command: `go run ./bench/loadtest %s` (wrk -t%d -c%d, %v phases, %d chats per story, %d interleaved rounds; storyflow serve args: `%s`).\n",
		strings.Join(os.Args[1:], " "), wrkThreads, conc, dur, chats, len(all), serveArgs)
	if mongoURI != "" {
		b.WriteString("Store: MongoDB (`-mongo`: a MongoDB-wire server on loopback; with `make bench-mongo` that is FerretDB v1 on SQLite, whose speed is FerretDB's, not MongoDB's).\n")
	}
	fmt.Fprintf(&b, "Machine: %s, %d cores (%s), shared with wrk, the backend and the baselines.\n\n", host, runtime.NumCPU(), cpu)
	b.WriteString("| phase | round | turns/s | p50 ms | p99 ms | errors | server CPU µs/turn |\n|---|---|---|---|---|---|---|\n")
	for r, res := range all {
		for i, p := range phases {
			x := res[i]
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %d | %.0f |\n", p.name, r+1, x.rate, ms(x.p50), ms(x.p99), x.errors, x.serverCPU/float64(max(x.n, 1))*1e6)
		}
	}
	fmt.Fprintf(&b, "\n| ratio | rounds | median | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| webhook turn / hand-written handler, throughput | %s | %.0f%% | ≥ 70%% |\n", percents(hookRatio), 100*median(hookRatio))
	fmt.Fprintf(&b, "| webhook turn / hand-written handler, p99 | %s | %.2fx | ≤ 2x |\n", times(hookP99), median(hookP99))
	fmt.Fprintf(&b, "| plain turn / echo handler, throughput | %s | %.0f%% | ≥ 40%% |\n", percents(plainRatio), 100*median(plainRatio))
	fmt.Fprintf(&b, "| webhook turn / hand-written handler, server CPU per turn | %s | %.2fx | |\n", times(hookCPU), median(hookCPU))
	fmt.Fprintf(&b, "| plain turn / echo handler, server CPU per turn | %s | %.2fx | |\n\n", times(plainCPU), median(plainCPU))
	return appendFile(file, b.String())
}

func appendFile(file, text string) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// cpuModel is the first model name of /proc/cpuinfo.
func cpuModel() string {
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name\t: "); ok {
				return v
			}
		}
	}
	return "unknown"
}

type phase struct {
	name, profile string
	pid           int
	url, script   string // wrk's URL and Lua script
	pprof         string // the server's pprof base URL, for a profile
	calls         string // the backend's call count URL, for a phase whose turns call it
}

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

func times(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2fx", x)
	}
	return strings.Join(parts, " ")
}

// runPhases runs each phase once: a short warm-up, then the measured part.
func runPhases(phases []phase, conc int, dur time.Duration, round int) ([]result, error) {
	res := make([]result, len(phases))
	for i, p := range phases {
		// A short warm-up, then the measured phase.
		if _, err := load(p, conc, dur/5); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", p.name, err)
		}
		var prof chan error
		var gc0 groupCommit
		pprofURL := p.pprof
		if profileDir != "" && p.profile != "" && pprofURL != "" {
			gc0 = commitStats(pprofURL)
			prof = make(chan error, 1)
			go func() {
				prof <- cpuProfile(pprofURL, dur, filepath.Join(profileDir, fmt.Sprintf("%s-%d.pprof", p.profile, round)))
			}()
		}
		calls0, counted := backendCalls(p.calls)
		cpu0 := readCPU(p.pid)
		if serveLog != "" {
			fmt.Printf("%s %s: measured phase starts\n", time.Now().Format("15:04:05.000"), p.name)
		}
		r, err := load(p, conc, dur)
		cpu := readCPU(p.pid).sub(cpu0)
		r.serverCPU = cpu.server
		// Every turn of a webhook phase must have called the backend: a turn
		// that took its failure branch (an open circuit) is fast and wrong.
		// Calls in flight at either end may fall outside the window.
		calls1, counted1 := backendCalls(p.calls)
		if counted && counted1 && err == nil {
			if short := r.n - int(calls1-calls0) - conc; short > 0 {
				fmt.Printf("  %d turns did not call the webhook backend: counted as errors\n", short)
				r.errors += short
			}
		}
		if prof != nil {
			gc := commitStats(pprofURL)
			if err := <-prof; err != nil {
				slog.Warn("cpu profile", "err", err)
			}
			if n := gc.Commits - gc0.Commits; n > 0 {
				fmt.Printf("  group commit: %.0f commits/s, %.1f writes and %.1f pages per commit, %.2f ms per commit (%.2f ms writing and syncing), busy %.0f%%\n",
					float64(n)/dur.Seconds(), float64(gc.Writes-gc0.Writes)/float64(n), float64(gc.Pages-gc0.Pages)/float64(n),
					ms((gc.Busy-gc0.Busy)/time.Duration(n)), ms((gc.WriteTime-gc0.WriteTime)/time.Duration(n)), 100*float64(gc.Busy-gc0.Busy)/float64(dur))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		res[i] = r
		fmt.Printf("%-42s %8.0f turns/s  p50 %7.2f ms  p99 %7.2f ms  (%d ok, %d errors)\n",
			p.name, r.rate, ms(r.p50), ms(r.p99), r.n, r.errors)
		fmt.Printf("  CPU per turn: server %.0f µs, wrk %.0f µs; machine idle %.0f%%, stolen %.0f%%; server page faults per turn %.2f\n",
			cpu.server/float64(r.n)*1e6, r.wrkCPU/float64(r.n)*1e6, 100*cpu.idle, 100*cpu.steal, cpu.faults/float64(max(r.n, 1)))
	}
	return res, nil
}

// backendCalls reads the backend's call count at url; ok is false for no
// url or when the count could not be read.
func backendCalls(url string) (n int64, ok bool) {
	if url == "" {
		return 0, false
	}
	resp, err := http.Get(url)
	if err != nil {
		slog.Warn("backend call count", "err", err)
		return 0, false
	}
	defer resp.Body.Close()
	if _, err := fmt.Fscan(resp.Body, &n); err != nil {
		slog.Warn("backend call count", "err", err)
		return 0, false
	}
	return n, true
}

// groupCommit is the embedded store's count of commits (expvar).
type groupCommit struct {
	Commits, Writes, Pages int64
	Busy, WriteTime        time.Duration
}

func commitStats(base string) groupCommit {
	var v struct {
		GroupCommit groupCommit `json:"groupCommit"`
	}
	resp, err := http.Get(base + "/debug/vars")
	if err != nil {
		return v.GroupCommit
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&v)
	return v.GroupCommit
}

// cpuProfile saves storyflow's CPU profile over the next d (less a margin,
// so that it ends within the phase).
func cpuProfile(base string, d time.Duration, file string) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int((d-d/10)/time.Second)))
	if traceFor > 0 {
		url = fmt.Sprintf("%s/debug/pprof/trace?seconds=%g", base, traceFor.Seconds())
		file = strings.TrimSuffix(file, ".pprof") + ".trace"
	}
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile: status %d", resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuPerTurn is the server's CPU seconds per answered turn.
func cpuPerTurn(r result) float64 { return r.serverCPU / float64(max(r.n, 1)) }

type result struct {
	n, errors int
	rate      float64
	p50, p99  time.Duration
	wrkCPU    float64 // seconds
	serverCPU float64 // seconds
}

// load runs wrk against p for d with conc connections and reads its
// report: requests per second and the latency distribution.
func load(p phase, conc int, d time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "loadtest-wrk")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "phase.lua")
	if err := os.WriteFile(script, []byte(p.script), 0o644); err != nil {
		return result{}, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.Command("wrk", "-t", fmt.Sprint(wrkThreads), "-c", fmt.Sprint(conc), "-d", fmt.Sprintf("%ds", secs),
		"--latency", "--timeout", "10s", "-s", script, p.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return result{}, fmt.Errorf("%w in:\n%s", err, out)
	}
	if st := cmd.ProcessState; st != nil {
		r.wrkCPU = (st.UserTime() + st.SystemTime()).Seconds()
	}
	if r.errors > 0 {
		slog.Warn("requests failed", "phase", p.name, "count", r.errors)
	}
	return r, nil
}

// parseWrk reads wrk --latency output.
func parseWrk(out string) (result, error) {
	var r result
	var total int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "50%":
			r.p50 = wrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = wrkDuration(f[1])
		case len(f) >= 2 && f[0] == "Requests/sec:":
			fmt.Sscan(f[1], &r.rate)
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			fmt.Sscan(f[0], &total)
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			fmt.Sscan(f[len(f)-1], &r.errors)
		case strings.HasPrefix(strings.TrimSpace(line), "Socket errors:"):
			// connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				var n int
				fmt.Sscan(strings.TrimSuffix(f[i+1], ","), &n)
				r.errors += n
			}
		}
	}
	if r.rate == 0 || total == 0 {
		return r, errors.New("no requests/sec in wrk's report")
	}
	r.n = total - r.errors
	// Failed requests are not turns: count only the good ones' rate.
	r.rate *= float64(r.n) / float64(total)
	return r, nil
}

// wrkDuration parses wrk's 1.23ms, 456.00us, 1.20s.
func wrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			var x float64
			fmt.Sscan(v, &x)
			return time.Duration(x * float64(u.unit))
		}
	}
	return 0
}

// turnScript is a wrk script that sends {"text":"hello"} to the chats ids,
// each wrk thread cycling through its own share of them. The requests are
// built once, in init: wrk then spends per request what it spends on the
// baselines' fixed request, instead of formatting one each time on the
// cores the servers share.
func turnScript(ids []string, token string) string {
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
local reqs = {}
function init(args)
  for i, id in ipairs(ids) do
    reqs[i] = wrk.format("POST", "/v1/chats/" .. id .. "/messages", headers, '{"text":"hello"}')
  end
end
function request()
  local i = (tid + n * %d) %% #reqs + 1
  n = n + 1
  return reqs[i]
end
`, token, wrkThreads)
	return b.String()
}

// postScript is a wrk script that POSTs body.
func postScript(body string) string {
	return fmt.Sprintf(`wrk.method = "POST"
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
`, body)
}

func post(c *http.Client, url, token, body string, out any) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// startBaseline runs this program again as the baseline server and returns
// its address.
func startBaseline(hookURL string) (string, func(), error) {
	return startSelf("-baseline", hookURL)
}

// serveBackend serves the webhook backend: every call gets answer. GET
// /calls answers how many calls it has had.
func serveBackend() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())
	var calls atomic.Int64
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/calls" {
			fmt.Fprint(w, calls.Load())
			return
		}
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
}

// startSelf runs this program again with args (a server that prints its
// base URL first) and returns that URL.
func startSelf(args ...string) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	if args[0] == "-baseline" {
		basePID = cmd.Process.Pid
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("%s address: %w", args[0], err)
	}
	return strings.TrimSpace(line), stop, nil
}

// serveBaseline serves /hand (decode, POST the webhook body, merge the
// answer, reply) and /echo (decode, reply) with fiber, printing its base URL
// on stdout first.
func serveBaseline(hookURL string) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	type in struct {
		ChatID     string         `json:"chatId"`
		Attributes map[string]any `json:"attributes"`
		Text       string         `json:"text"`
	}
	app.Post("/hand", func(c *fiber.Ctx) error {
		var req in
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return c.Status(400).JSON(fiber.Map{"error": err.Error()})
		}
		body, _ := json.Marshal(fiber.Map{
			"chatId": req.ChatID, "messageId": "m", "userId": req.ChatID, "externalId": "",
			"node":           fiber.Map{"id": "check", "name": "check", "type": "WEBHOOK", "webhookId": "hook", "webhookName": "hook"},
			"userAttributes": fiber.Map{}, "attributes": req.Attributes,
		})
		resp, err := client.Post(hookURL, "application/json", bytes.NewReader(body))
		if err != nil {
			return c.Status(502).JSON(fiber.Map{"error": err.Error()})
		}
		defer resp.Body.Close()
		var ans struct {
			Responses  []map[string]any `json:"responses"`
			Attributes map[string]any   `json:"attributes"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			return c.Status(502).JSON(fiber.Map{"error": err.Error()})
		}
		for k, v := range ans.Attributes {
			req.Attributes[k] = v
		}
		return c.JSON(fiber.Map{"status": "active", "node": "ask", "responses": ans.Responses, "attributes": req.Attributes})
	})
	app.Post("/echo", func(c *fiber.Ctx) error {
		var req in
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return c.Status(400).JSON(fiber.Map{"error": err.Error()})
		}
		return c.JSON(fiber.Map{"status": "active", "node": "ask",
			"responses": []fiber.Map{{"type": "text", "message": req.Text}}, "attributes": req.Attributes})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())
	return app.Listener(ln)
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startStoryflow runs `storyflow serve` on a free loopback port with the two
// bench stories and waits for /healthz. With profileDir set it also serves
// pprof on another loopback port, whose URL it returns.
func startStoryflow(bin, dir, dataDir, hookURL string) (string, string, func(), error) {
	docs := [][]byte{[]byte(benchstory.Webhook(hookURL)), []byte(benchstory.Plain)}
	sdir := filepath.Join(dir, "stories")
	os.MkdirAll(sdir, 0o755)
	for i, d := range docs {
		if err := os.WriteFile(filepath.Join(sdir, fmt.Sprintf("s%d.yaml", i)), d, 0o644); err != nil {
			return "", "", nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return "", "", nil, err
	}
	// Warnings only: a request log line per turn is not what is measured.
	args := []string{"serve", "--addr", addr, "--stories", sdir, "--data", dataDir, "--allow-private-webhooks", "--log-level", "warn"}
	args = append(args, strings.Fields(serveArgs)...)
	if serveMongo != "" {
		args = append(args, "--mongo", serveMongo)
	}
	pprofURL := ""
	if profileDir != "" {
		paddr, err := freeAddr()
		if err != nil {
			return "", "", nil, err
		}
		args = append(args, "--pprof", paddr)
		pprofURL = "http://" + paddr
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "STORYFLOW_API_TOKEN=loadtest-token")
	cmd.Env = append(cmd.Env, strings.Fields(serveEnv)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	storyflowPID = cmd.Process.Pid
	var logTail []string
	var logMu sync.Mutex
	var logFile *os.File
	if serveLog != "" {
		if logFile, err = os.Create(serveLog); err != nil {
			return "", "", nil, err
		}
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if logFile != nil {
				fmt.Fprintf(logFile, "%s %s\n", time.Now().Format("15:04:05.000"), sc.Text())
			}
			logMu.Lock()
			logTail = append(logTail, sc.Text())
			if len(logTail) > 20 {
				logTail = logTail[1:]
			}
			logMu.Unlock()
		}
	}()
	stop := func() {
		if logFile != nil {
			defer logFile.Close()
		}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, pprofURL, stop, nil
			}
		}
		select {
		case <-ctx.Done():
			stop()
			logMu.Lock()
			defer logMu.Unlock()
			return "", "", nil, errors.Join(errors.New("storyflow did not become healthy"), fmt.Errorf("log: %v", logTail))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Process ids of the servers under test.
var basePID, storyflowPID int

// cpuTimes are CPU seconds used by the server under test and this process,
// and the machine's idle and stolen shares (of all its CPU time).
type cpuTimes struct {
	server, self float64
	faults       float64 // the server's minor page faults
	idle, steal  float64 // cumulative ticks until sub turns them into shares
	total        float64
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	d := cpuTimes{server: a.server - b.server, self: a.self - b.self, faults: a.faults - b.faults}
	if t := a.total - b.total; t > 0 {
		d.idle, d.steal = (a.idle-b.idle)/t, (a.steal-b.steal)/t
	}
	return d
}

// readCPU reads /proc (Linux only; zeros elsewhere).
func readCPU(pid int) cpuTimes {
	var c cpuTimes
	c.server, c.faults = procCPU(fmt.Sprintf("/proc/%d/stat", pid))
	c.self, _ = procCPU("/proc/self/stat")
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
		for i := 1; i < len(f) && i <= 8; i++ {
			var v float64
			fmt.Sscan(f[i], &v)
			c.total += v
			switch i {
			case 4, 5:
				c.idle += v
			case 8:
				c.steal += v
			}
		}
	}
	return c
}

// procCPU returns utime+stime of a /proc/<pid>/stat file in seconds
// (clock ticks of 1/100 s), and its minor page faults.
func procCPU(file string) (float64, float64) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // state is f[0]; utime f[11], stime f[12]
	if len(f) < 13 {
		return 0, 0
	}
	var u, st, minflt float64
	fmt.Sscan(f[7], &minflt)
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &st)
	return (u + st) / 100, minflt
}
