package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The million-chat benchmark (-seeded): plain turns on an empty store
// beside plain turns on random chats of a store that bench/seed filled, in
// interleaved rounds, and the memory of the server with the full store.

// seededDir is a data directory filled by bench/seed ("": not this mode);
// seededChats is how many chats it holds.
var (
	seededDir    string
	seededChats  = 1_000_000
	seededActive int // turns go to the first this many (0: all)
)

// seedID is bench/seed's SeedID: the id of seeded chat i.
func seedID(i int) string { return fmt.Sprintf("5eed%020x", i) }

func runSeeded(bin string, dur time.Duration, conc int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk; make bench installs it)")
	}
	if _, err := os.Stat(filepath.Join(seededDir, "LOCK")); err != nil {
		return fmt.Errorf("%s holds no store: fill it with go run ./bench/seed -data %s", seededDir, seededDir)
	}
	// No phase calls a webhook: the webhook story only needs a URL.
	const hookURL = "http://127.0.0.1:9/hook"
	emptyDir, err := os.MkdirTemp("", "storyflow-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(emptyDir)
	empty, emptyPprof, stopEmpty, err := startStoryflow(bin, emptyDir, filepath.Join(emptyDir, "data"), hookURL)
	if err != nil {
		return err
	}
	defer stopEmpty()
	emptyPID := storyflowPID

	fullDir, err := os.MkdirTemp("", "storyflow-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(fullDir)
	t0 := time.Now()
	full, fullPprof, stopFull, err := startStoryflow(bin, fullDir, seededDir, hookURL)
	if err != nil {
		return err
	}
	defer stopFull()
	fullPID := storyflowPID
	startup := time.Since(t0)
	fmt.Printf("storyflow on %s (%d stored chats) healthy after %s\n", seededDir, seededChats, startup.Round(time.Millisecond))

	client := &http.Client{}
	token := "loadtest-token"
	ids := make([]string, chats)
	for i := range ids {
		var out struct {
			ChatID string `json:"chatId"`
		}
		if err := post(client, empty+"/v1/chats", token, `{"storyId":"bench_plain"}`, &out); err != nil {
			return err
		}
		ids[i] = out.ChatID
	}
	// A turn on a seeded chat answers like one on a new chat.
	if err := post(client, full+"/v1/chats/"+seedID(seededChats-1)+"/messages", token, `{"text":"hello"}`, nil); err != nil {
		return fmt.Errorf("turn on seeded chat %d: %w", seededChats-1, err)
	}
	active := seededChats
	if seededActive > 0 {
		active = min(seededActive, seededChats)
	}
	seededName := fmt.Sprintf("%d stored chats: turn on a random one", seededChats)
	if active < seededChats {
		seededName = fmt.Sprintf("%d stored chats: turn on one of %d", seededChats, active)
	}
	phases := []phase{
		{fmt.Sprintf("empty store: turn on %d chats", chats), "empty", emptyPID, empty, turnScript(ids, token), emptyPprof, ""},
		{seededName, "seeded", fullPID, full, randomTurnScript(active, token), fullPprof, ""},
	}
	var rateRatio, p99Ratio []float64
	var all [][]result
	for round := 1; round <= rounds; round++ {
		fmt.Printf("round %d of %d\n", round, rounds)
		res, err := runPhases(phases, conc, dur, round)
		if err != nil {
			return err
		}
		all = append(all, res)
		rateRatio = append(rateRatio, res[1].rate/res[0].rate)
		p99Ratio = append(p99Ratio, float64(res[1].p99)/float64(res[0].p99))
		fmt.Printf("  stored chats: %.0f%% of the empty store's turn rate, p99 %.2fx\n\n", 100*rateRatio[round-1], p99Ratio[round-1])
	}
	emptyMem, fullMem := readMem(emptyPID), readMem(fullPID)
	size := dirSize(seededDir)
	fmt.Printf("turn rate with stored chats: %s of the empty store's, median %.0f%%\n", percents(rateRatio), 100*median(rateRatio))
	fmt.Printf("p99 with stored chats:       %s the empty store's, median %.2fx (target <= 1.2x)\n", times(p99Ratio), median(p99Ratio))
	fmt.Printf("server memory: stored chats VmHWM %d MB, VmRSS %d MB (target <= 300 MB); empty store VmHWM %d MB, VmRSS %d MB\n",
		fullMem.hwm>>20, fullMem.rss>>20, emptyMem.hwm>>20, emptyMem.rss>>20)
	fmt.Printf("data directory: %d MB\n", size>>20)
	if mdFile == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Million chats, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Command: `go run ./bench/loadtest %s` (wrk -t%d -c%d, %v phases, %d interleaved rounds; storyflow serve args: `%s`).\n",
		strings.Join(os.Args[1:], " "), wrkThreads, conc, dur, len(all), serveArgs)
	fmt.Fprintf(&b, "Store: %d chats stored by bench/seed (20-entry transcripts), data directory %d MB; storyflow healthy %s after its start.\n",
		seededChats, size>>20, startup.Round(time.Millisecond))
	fmt.Fprintf(&b, "Machine: %s, %d cores (%s), shared with wrk.\n\n", hostname(), runtime.NumCPU(), cpuModel())
	b.WriteString("| phase | round | turns/s | p50 ms | p99 ms | errors | server CPU µs/turn |\n|---|---|---|---|---|---|---|\n")
	for r, res := range all {
		for i, p := range phases {
			x := res[i]
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %d | %.0f |\n", p.name, r+1, x.rate, ms(x.p50), ms(x.p99), x.errors, x.serverCPU/float64(max(x.n, 1))*1e6)
		}
	}
	fmt.Fprintf(&b, "\n| measure | rounds | median | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| turn rate, stored chats / empty store | %s | %.0f%% | |\n", percents(rateRatio), 100*median(rateRatio))
	fmt.Fprintf(&b, "| p99, stored chats / empty store | %s | %.2fx | ≤ 1.2x |\n", times(p99Ratio), median(p99Ratio))
	fmt.Fprintf(&b, "| server RSS with stored chats (VmHWM / VmRSS at the end) | | %d MB / %d MB | ≤ 300 MB |\n", fullMem.hwm>>20, fullMem.rss>>20)
	fmt.Fprintf(&b, "| server RSS, empty store (VmHWM / VmRSS) | | %d MB / %d MB | |\n\n", emptyMem.hwm>>20, emptyMem.rss>>20)
	return appendFile(mdFile, b.String())
}

// randomTurnScript is a wrk script that sends {"text":"hello"} to random
// chats of the n seeded ones.
func randomTurnScript(n int, token string) string {
	return fmt.Sprintf(`local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + tid)
end
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}
function request()
  local id = string.format("5eed%%020x", math.random(0, %d))
  return wrk.format("POST", "/v1/chats/" .. id .. "/messages", headers, '{"text":"hello"}')
end
`, token, n-1)
}

type memory struct{ hwm, rss int64 } // bytes

// readMem reads a process's peak and current resident set (Linux).
func readMem(pid int) memory {
	var m memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var kb int64
		fmt.Sscan(f[1], &kb)
		switch f[0] {
		case "VmHWM:":
			m.hwm = kb << 10
		case "VmRSS:":
			m.rss = kb << 10
		}
	}
	return m
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
