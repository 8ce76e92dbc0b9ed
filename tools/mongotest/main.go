// Command mongotest runs an embedded FerretDB (v1, SQLite backend) server that
// speaks the MongoDB wire protocol, for use by tests.
//
// It prints exactly one line to stdout,
//
//	MONGODB_URI=mongodb://127.0.0.1:PORT/
//
// once the server accepts TCP connections, then runs until SIGINT/SIGTERM.
// Logs (warn level and above) go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mongotest:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback TCP address to listen on (port 0 = pick a free port)")
	dir := flag.String("dir", "", "SQLite data directory (default: a fresh temporary directory, removed on exit)")
	logLevel := flag.String("log-level", "warn", "FerretDB log level on stderr: debug, info, warn, error")
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}
	logger := slog.New(quietHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})
	slog.SetDefault(logger)

	dataDir := *dir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "mongotest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dataDir = d
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	absDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	// FerretDB wants a "file:" URI naming an existing directory, ending with "/".
	sqliteURL := (&url.URL{Scheme: "file", Opaque: filepath.ToSlash(absDir) + "/"}).String()

	// ferretdb.New binds the TCP listener immediately, so "127.0.0.1:0" works
	// without a bind/close/re-bind race; MongoDBURI reports the real port.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return fmt.Errorf("starting FerretDB: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	uri := f.MongoDBURI()
	u, err := url.Parse(uri)
	if err != nil {
		stop()
		<-done
		return fmt.Errorf("bad URI %q: %w", uri, err)
	}
	if err := waitDial(ctx, u.Host, 30*time.Second); err != nil {
		stop()
		<-done
		return err
	}

	fmt.Printf("MONGODB_URI=%s\n", uri)
	// stdout may be a pipe/file read by start.sh; make sure the line is out.
	_ = os.Stdout.Sync()

	<-ctx.Done()
	stop() // a second signal now kills the process the default way
	logger.Debug("shutting down")
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		return errors.New("timed out waiting for FerretDB to stop")
	}
}

// checkLoopback rejects anything but a loopback host.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", addr)
	}
	return nil
}

// waitDial waits until hostport accepts a TCP connection.
func waitDial(ctx context.Context, hostport string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", hostport)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server at %s did not accept connections within %s: %w", hostport, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietHandler drops a benign FerretDB v1 warning that is logged (racily) at
// WARN level whenever a client closes its connection:
// "Failed to set deadline: ... use of closed network connection".
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Failed to set deadline") && strings.Contains(r.Message, "use of closed network connection") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
