// Command widget serves the example chat widget page: a static page with a
// small chat widget that talks to storyflow's widget route.
//
//	go run ./examples/widget -addr 127.0.0.1:8082
//
// Open http://127.0.0.1:8082/?api=http://127.0.0.1:8080&story=support&open=1
// with storyflow serving on 127.0.0.1:8080 with --cors-origins
// http://127.0.0.1:8082 (make run does all of this).
package main

import (
	"embed"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

//go:embed index.html widget.js widget.css
var files embed.FS

// handler serves the page and the widget.
func handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fs.ServeHTTP(w, r)
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	log.Info("widget page", "url", "http://"+ln.Addr().String()+"/")
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
