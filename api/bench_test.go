package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/bench/benchstory"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/valyala/fasthttp"
)

// BenchmarkMessage measures turns over HTTP on the embedded store: each
// goroutine talks to its own chat (a question and a set node per turn),
// starting a new chat every 20 messages so that transcripts stay short.
func BenchmarkMessage(b *testing.B) {
	e := newEnv(b)
	e.putStory("counter", counterStory)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := ""
		for i := 0; pb.Next(); i++ {
			if i%20 == 0 {
				id = e.startChat("counter")["chatId"].(string)
			}
			r, err := e.try("POST", "/v1/chats/"+id+"/messages", fmt.Sprintf(`{"text":"m%d"}`, n.Add(1)), "Bearer "+token)
			if err != nil || r.status != 200 {
				b.Errorf("message: %v %d %s", err, r.status, r.body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
}

// BenchmarkHandler measures a turn's CPU in the server's own code: requests
// go straight to the fiber app's handler, with no socket, spread over 400
// chats of the bench story of bench/loadtest. "echo" is bench/loadtest's
// echo baseline in the same harness: the ratio of the two is the part of a
// turn storyflow itself costs.
func BenchmarkHandler(b *testing.B) {
	run := func(b *testing.B, h fasthttp.RequestHandler, paths []string, auth, body string) {
		defer debug.SetGCPercent(debug.SetGCPercent(400)) // as serve
		var n atomic.Int64
		b.SetParallelism(25) // 50 goroutines on 2 cores, as wrk -c50
		b.ResetTimer()
		cpu0 := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			for pb.Next() {
				i := n.Add(1)
				req.Reset()
				req.Header.SetMethod("POST")
				req.SetRequestURI(paths[int(i)%len(paths)])
				req.Header.SetContentType("application/json")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				req.SetBodyString(body)
				ctx.Init(&req, nil, nil)
				h(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Errorf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
					return
				}
			}
		})
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	}
	b.Run("plain", func(b *testing.B) {
		e := newEnvStore(b, embedded.Options{SyncEvery: 10 * time.Millisecond}, func(c *api.Config) { // serve's defaults
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		e.putStory("bench_plain", benchstory.Plain)
		paths := make([]string, 400)
		for i := range paths {
			paths[i] = "/v1/chats/" + e.startChat("bench_plain")["chatId"].(string) + "/messages"
		}
		run(b, e.srv.App().Handler(), paths, "Bearer "+token, `{"text":"hello"}`)
	})
	b.Run("webhook", func(b *testing.B) {
		answer := []byte(`{"responses":[{"type":"text","message":"Checked."}],"attributes":{"customer":"yes","plan":"pro"}}`)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		}))
		defer hook.Close()
		e := newEnvStore(b, embedded.Options{SyncEvery: 10 * time.Millisecond}, func(c *api.Config) {
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		e.putStory("bench_webhook", benchstory.Webhook(hook.URL))
		paths := make([]string, 400)
		for i := range paths {
			paths[i] = "/v1/chats/" + e.startChat("bench_webhook")["chatId"].(string) + "/messages"
		}
		run(b, e.srv.App().Handler(), paths, "Bearer "+token, `{"text":"hello"}`)
	})
	b.Run("echo", func(b *testing.B) {
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		type in struct {
			ChatID     string         `json:"chatId"`
			Attributes map[string]any `json:"attributes"`
			Text       string         `json:"text"`
		}
		app.Post("/echo", func(c *fiber.Ctx) error {
			var req in
			if err := json.Unmarshal(c.Body(), &req); err != nil {
				return c.Status(400).JSON(fiber.Map{"error": err.Error()})
			}
			return c.JSON(fiber.Map{"status": "active", "node": "ask",
				"responses": []fiber.Map{{"type": "text", "message": req.Text}}, "attributes": req.Attributes})
		})
		run(b, app.Handler(), []string{"/echo"}, "", `{"chatId":"c1","text":"hello","attributes":{"said":"x","turns":3}}`)
	})
}

// cpuTime is the process's user and system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
