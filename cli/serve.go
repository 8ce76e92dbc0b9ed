package cli

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/storyflow/storyflow/store/mongo"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/webhook"
)

func init() {
	register(&command{
		name: "serve", args: "[flags]",
		summary: "serve the HTTP API: stories, chats, webhook connections",
		run:     runServe,
	})
}

// serveFlags are the flags of storyflow serve.
type serveFlags struct {
	addr            *string
	storiesDir      *string
	dataDir         *string
	syncMode        *string
	cacheBytes      byteSize
	minFreeDisk     byteSize
	storeTimeout    *time.Duration
	mongoURI        *string
	token           *string
	allowPrivate    *bool
	maxSteps        *int
	shutdownTimeout *time.Duration
	poll            *time.Duration
	logLevel        *string
	storyEnv        *string
	exprTime        *time.Duration
	exprMemory      *int64
	maxAttrs        *int
	storyCache      *int64
	maxInFlight     *int
	breakerFailures *int
	logFormat       *string
	corsOrigins     *string
	sessionIdle     *time.Duration
	retention       *time.Duration
	rateSession     *int
	rateIP          *int
	rateWindow      *time.Duration
	trustedProxies  *string
}

// defineServeFlags defines serve's flags on fs.
func defineServeFlags(fs *flag.FlagSet) *serveFlags {
	o := &serveFlags{}
	o.addr = fs.String("addr", "127.0.0.1:8080", "listen address")
	o.storiesDir = fs.String("stories", "", "load the story files (*.yaml, *.yml; not the story tests *.test.yaml) of this directory at start and reload changed ones")
	o.dataDir = fs.String("data", "data", "data directory of the embedded store")
	o.syncMode = fs.String("sync", "10ms", "embedded store durability: always (every turn on disk before its answer) or an interval (a turn answered once in the OS, on disk within the interval)")
	o.cacheBytes = byteSize(embedded.DefaultCacheBytes)
	fs.Var(&o.cacheBytes, "cache-bytes", "memory bound of the embedded store's chat cache, in bytes (suffixes KiB, MiB, GiB)")
	o.minFreeDisk = byteSize(embedded.DefaultMinFreeDisk)
	fs.Var(&o.minFreeDisk, "min-free-disk", "embedded store: below this much free space on the data directory's filesystem, writes are refused (503 storage_full) until space is freed (suffixes KiB, MiB, GiB)")
	o.storeTimeout = fs.Duration("store-timeout", api.DefaultStoreTimeout, "how long a request waits for MongoDB (each operation, and server selection) before it answers 503 store_unavailable; the embedded store runs in the process and does not wait")
	o.mongoURI = fs.String("mongo", "", "MongoDB URI, instead of the embedded store (env STORYFLOW_MONGO_URI)")
	o.token = fs.String("token", "", "API bearer token (env STORYFLOW_API_TOKEN; default: a random one, printed at start)")
	o.allowPrivate = fs.Bool("allow-private-webhooks", false, "let webhooks reach loopback and private addresses (development)")
	o.maxSteps = fs.Int("max-steps", 100, "most nodes a turn may run")
	o.shutdownTimeout = fs.Duration("shutdown-timeout", 30*time.Second, "how long shutdown waits for requests in flight")
	o.poll = fs.Duration("poll", api.DefaultPoll, "how often --stories is checked for changed files")
	o.logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")
	o.storyEnv = fs.String("story-env", strings.Join(stories.DefaultEnv, ","), "the ${VAR} names stories may use: names and PREFIX_* patterns, comma separated")
	o.exprTime = fs.Duration("expr-time", engine.DefaultExprTime, "time budget of one turn's expressions")
	o.exprMemory = fs.Int64("expr-memory", engine.DefaultExprMemory, "memory budget of one expression evaluation, in bytes")
	o.maxAttrs = fs.Int("max-attributes", api.DefaultMaxAttributes, "largest size of a chat's attributes, and of its userAttributes, in bytes of JSON")
	o.storyCache = fs.Int64("story-cache", api.DefaultStoryCacheBytes, "bytes of compiled stories kept in memory")
	o.maxInFlight = fs.Int("webhook-max-in-flight", webhook.DefaultMaxInFlight, "most webhook calls in flight per connection that sets no max_in_flight (0: no bound)")
	o.breakerFailures = fs.Int("webhook-breaker-failures", webhook.DefaultBreakerFailures, "failed webhook calls in a row that open a connection's circuit for 30s (0: no circuit breaker)")
	o.logFormat = fs.String("log-format", "text", "log format: text or json")
	o.corsOrigins = fs.String("cors-origins", "", "browser origins allowed on the widget route, comma-separated (https://shop.example.com, or *)")
	o.sessionIdle = fs.Duration("session-idle", api.DefaultSessionIdle, "how long a widget or platform session keeps its chat without a message")
	o.retention = fs.Duration("delivery-retention", events.DefaultRetention, "how long a finished event delivery (succeeded or failed) is kept, from its last attempt; 0 keeps them for good")
	o.rateSession = fs.Int("rate-session", api.DefaultSessionRate, "widget requests allowed per session and --rate-window (-1: no limit)")
	o.rateIP = fs.Int("rate-ip", api.DefaultIPRate, "widget requests allowed per client IP and --rate-window (-1: no limit)")
	o.rateWindow = fs.Duration("rate-window", api.DefaultRateWindow, "the window of the widget rate limits")
	o.trustedProxies = fs.String("trusted-proxies", "", "reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client")
	return o
}

// check checks the flags that have rules beyond their type, and returns
// the story environment allowlist and the sync interval they give.
func (o *serveFlags) check() (env []string, syncEvery time.Duration, err error) {
	if env, err = stories.ParseEnv(*o.storyEnv); err != nil {
		return nil, 0, fmt.Errorf("--story-env: %w", err)
	}
	if *o.maxInFlight < 0 || *o.breakerFailures < 0 {
		return nil, 0, errors.New("--webhook-max-in-flight and --webhook-breaker-failures must be 0 or more")
	}
	if syncEvery, err = parseSync(*o.syncMode); err != nil {
		return nil, 0, fmt.Errorf("--sync: %w", err)
	}
	if *o.storeTimeout <= 0 {
		return nil, 0, errors.New("--store-timeout must be above 0")
	}
	if *o.retention < 0 {
		return nil, 0, fmt.Errorf("--delivery-retention: %s is below 0 (0 keeps deliveries for good)", *o.retention)
	}
	return env, syncEvery, nil
}

// runServe runs storyflow serve: the store, the webhook client, the event
// worker and the API server, until a signal.
func runServe(args []string, _ io.Reader, _, stderr io.Writer) int {
	pprofAddr, args, err := pprofFlag(args)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow serve: %v\n", err)
		return exitUsage
	}
	fs := newFlags("serve", stderr)
	o := defineServeFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "storyflow serve: unexpected arguments %s\n", strings.Join(pos, " "))
		fs.Usage()
		return exitUsage
	}
	env, syncEvery, err := o.check()
	if err != nil {
		fmt.Fprintf(stderr, "storyflow serve: %v\n", err)
		return exitUsage
	}
	log, err := setUpProcess(stderr, *o.logLevel, *o.logFormat, int64(o.cacheBytes))
	if err != nil {
		fmt.Fprintf(stderr, "storyflow serve: %v\n", err)
		return exitUsage
	}

	if *o.mongoURI == "" {
		*o.mongoURI = os.Getenv("STORYFLOW_MONGO_URI")
	}
	if *o.token == "" {
		*o.token = os.Getenv("STORYFLOW_API_TOKEN")
	}
	generated := false
	if *o.token == "" {
		*o.token, generated = api.NewToken(), true
	}

	st, err := openStore(*o.mongoURI, *o.dataDir, embedded.Options{SyncEvery: syncEvery, CacheBytes: int64(o.cacheBytes),
		MinFreeDisk: int64(o.minFreeDisk), Logger: log}, *o.storeTimeout, log)
	if err != nil {
		log.Error("open store", "err", err)
		return exitFail
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	hooks := webhook.NewClient(webhook.Options{AllowPrivate: *o.allowPrivate, Logger: log,
		MaxInFlight: orNone(*o.maxInFlight), BreakerFailures: orNone(*o.breakerFailures)})
	defer hooks.Close()
	retention := *o.retention
	if retention == 0 {
		retention = -1 // for good
	}
	worker, stopWorker := startEvents(st, hooks, retention, log)
	defer stopWorker()
	srv, err := api.New(api.Config{
		Store: st, StoreTimeout: *o.storeTimeout, Token: *o.token, AllowPrivateWebhooks: *o.allowPrivate, MaxSteps: *o.maxSteps, Logger: log,
		StoryEnv: env, ExprBudget: engine.Budget{Memory: *o.exprMemory, Time: *o.exprTime},
		MaxAttributes: *o.maxAttrs, StoryCacheBytes: *o.storyCache, Webhooks: hooks, Events: worker,
		CORSOrigins: splitList(*o.corsOrigins), SessionIdle: *o.sessionIdle, TrustedProxies: splitList(*o.trustedProxies),
		Rates:    api.RateLimits{Session: *o.rateSession, IP: *o.rateIP, Window: *o.rateWindow},
		Register: registerExtra,
	})
	if err != nil {
		log.Error("start server", "err", err)
		return exitFail
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		defer followStoryCache(memoryLimit(int64(o.cacheBytes)), srv.CachedStoryBytes, 2*time.Second)()
	}
	ln, err := listenWithStories(srv, *o.addr, *o.storiesDir, *o.poll, log)
	if err != nil {
		log.Error("start", "err", err)
		return exitFail
	}

	if pprofAddr != "" {
		pln, err := servePprof(pprofAddr, log)
		if err != nil {
			ln.Close()
			log.Error("listen for pprof", "err", err)
			return exitFail
		}
		defer pln.Close()
	}
	announce := func() {
		log.Info("listening", "addr", ln.Addr().String(), "allowPrivateWebhooks", *o.allowPrivate)
		fmt.Fprintf(stderr, "storyflow: serving on http://%s\n", ln.Addr())
		if generated {
			log.Warn("no API token set (STORYFLOW_API_TOKEN or --token); generated one for this run and printed it once on stderr")
			fmt.Fprintf(stderr, "storyflow: API token: %s\n", *o.token)
		}
	}
	return serveUntilSignal(srv, ln, *o.shutdownTimeout, log, announce)
}

// listenWithStories listens on addr, then loads the stories of dir (none
// when "") and watches it for changes every poll.
func listenWithStories(srv *api.Server, addr, dir string, poll time.Duration, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if dir != "" {
		loaded, failed, err := srv.WatchStories(dir, poll)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("load stories: %w", err)
		}
		log.Info("stories loaded", "dir", dir, "loaded", loaded, "failed", failed)
	}
	return ln, nil
}

// setUpProcess sets the default logger (level and format) and the
// garbage collector's pace and memory limit for a server whose chat cache
// holds cacheBytes.
func setUpProcess(stderr io.Writer, logLevel, logFormat string, cacheBytes int64) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	log, err := newLogger(stderr, logFormat, level)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		// The live heap is small and turns allocate briskly: collect less
		// often (GOGC overrides).
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// But not fivefold a full chat cache (GOMEMLIMIT overrides).
		debug.SetMemoryLimit(memoryLimit(cacheBytes))
	}
	return log, nil
}

// servePprof serves the profiling handlers on addr until the listener it
// returns is closed.
func servePprof(addr string, log *slog.Logger) (net.Listener, error) {
	pln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go http.Serve(pln, pprofMux())
	log.Info("pprof", "addr", pln.Addr().String())
	return pln, nil
}

// serveUntilSignal serves srv on ln (announce tells once it does) until
// SIGINT or SIGTERM, then shuts down within timeout, finishing the
// requests in flight.
func serveUntilSignal(srv *api.Server, ln net.Listener, timeout time.Duration, log *slog.Logger, announce func()) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	announce()
	select {
	case err := <-errc:
		log.Error("serve", "err", err)
		srv.Shutdown(context.Background())
		return exitFail
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down; finishing requests in flight", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code := exitOK
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		code = exitFail
	}
	if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Error("serve", "err", err)
	}
	log.Info("stopped")
	return code
}

// orNone maps a flag's 0 (off) to webhook.Options' -1 (0 there is the default).
func orNone(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// startEvents runs the event delivery worker when the store keeps events;
// stop ends it and waits for it.
func startEvents(st store.Store, hooks *webhook.Client, retention time.Duration, log *slog.Logger) (w *events.Worker, stop func()) {
	ob, ok := st.(store.Outbox)
	if !ok {
		log.Warn("events: this store keeps no events; emit, hand-off and conversation events are not delivered")
		return nil, func() {}
	}
	w = events.New(events.Options{Store: ob, HTTP: hooks.HTTP(), Retention: retention, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	return w, func() { cancel(); <-done }
}

// gcPercent is the server's GC target unless GOGC is set.
const gcPercent = 400

// memoryLimit is the Go runtime's soft memory limit for a chat cache of
// cacheBytes (GOMEMLIMIT overrides): room for the cache twice over and
// 48 MiB, 176 MiB by default, to which serve adds what the story cache
// holds (followStoryCache). A million stored chats under load held a
// 444 MB RSS without it; with 64 MiB of room instead of 48 it held
// 289–305 MB, of which pebble's memory outside the Go heap was ~70 MB
// and the binary ~30 MB (BENCHMARKS.md).
func memoryLimit(cacheBytes int64) int64 {
	if cacheBytes <= 0 {
		cacheBytes = embedded.DefaultCacheBytes
	}
	return 2*cacheBytes + 48<<20
}

// followStoryCache raises the soft memory limit base by the bytes the
// story cache holds, every interval, until the returned stop is called:
// compiled stories are live heap, and a limit below the live heap would
// keep the GC running (up to half the CPU). With few stories the limit
// stays near base.
func followStoryCache(base int64, storyBytes func() int64, every time.Duration) (stop func()) {
	set := func() { debug.SetMemoryLimit(base + storyBytes()) }
	set()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				set()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// pprofFlag takes the hidden --pprof ADDR flag (profiling endpoints and
// expvar's /debug/vars, on a loopback address only) out of args.
func pprofFlag(args []string) (addr string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "pprof" {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return "", nil, errors.New("--pprof needs an address")
			}
			i++
			val = args[i]
		}
		addr = val
	}
	if addr == "" {
		return "", rest, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("--pprof: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", nil, fmt.Errorf("--pprof: %q is not a loopback address", addr)
	}
	return addr, rest, nil
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	return mux
}

// openStore opens MongoDB when uri is set, else the embedded store in dir.
func openStore(uri, dir string, opts embedded.Options, timeout time.Duration, log *slog.Logger) (store.Store, error) {
	if uri != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := mongo.OpenWith(ctx, uri, mongo.Options{ServerSelection: timeout})
		if err != nil {
			return nil, err
		}
		db, _ := mongo.DatabaseName(uri)
		log.Info("store: mongodb", "database", db)
		return st, nil
	}
	st, err := embedded.Open(dir, opts)
	if err != nil {
		if locked(err) {
			return nil, fmt.Errorf("data directory %s is in use by another storyflow process (it holds the directory's lock): stop that one, or give this one another --data", dir)
		}
		return nil, err
	}
	sync := "always"
	if opts.SyncEvery > 0 {
		sync = opts.SyncEvery.String()
	}
	log.Info("store: embedded", "dir", dir, "sync", sync, "cacheBytes", opts.CacheBytes, "minFreeDisk", opts.MinFreeDisk)
	return st, nil
}

// parseSync reads --sync: "always" (0) or a positive interval.
func parseSync(s string) (time.Duration, error) {
	if s == "always" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not always or a positive interval such as 10ms", s)
	}
	return d, nil
}

// byteSize is a flag value in bytes: a whole number, optionally with a
// KiB, MiB or GiB suffix.
type byteSize int64

func (b *byteSize) String() string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *b != 0 && int64(*b)%u.n == 0 {
			return strconv.FormatInt(int64(*b)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(in string) error {
	s, mult := in, int64(1)
	for suffix, n := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = num, n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("%q is not a positive size such as 64MiB", in)
	}
	*b = byteSize(n * mult)
	return nil
}

// locked tells whether opening the embedded store failed on the data
// directory's lock: pebble's flock (EAGAIN, or held in this process).
func locked(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// newLogger returns the server's logger: text or JSON on w, timestamps in
// UTC with milliseconds.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
			a.Value = slog.StringValue(a.Value.Time().UTC().Format(api.TimeFormat))
		}
		return a
	}}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
