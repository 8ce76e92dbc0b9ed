// Command backend is an example webhook service for storyflow stories: a CRM
// lookup (/crm) for a customer-support story and an order desk (/orders) for
// an order-taking story. It answers storyflow's verification request and
// checks the X-Storyflow-Signature of every webhook call.
//
//	go run ./examples/backends/go -addr 127.0.0.1:8081 -token dev-token
//
// The flags default to the ADDR and WEBHOOK_TOKEN environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", envOr("ADDR", "127.0.0.1:8081"), "listen address (env ADDR)")
	token := flag.String("token", envOr("WEBHOOK_TOKEN", "dev-token"), "webhook connection token (env WEBHOOK_TOKEN)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if *token == "dev-token" {
		log.Warn("using the default token dev-token; set WEBHOOK_TOKEN for anything but local development")
	}

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newHandler(*token),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("webhook backend listening", "addr", *addr, "routes", "GET|POST /crm, GET|POST /orders, GET /healthz")

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "err", err)
			os.Exit(1)
		}
	case <-ctx.Done():
		log.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Error("shutdown", "err", err)
			os.Exit(1)
		}
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
