# storyflow — see README.md.
GO      ?= go
BIN     := bin/storyflow
PKGS    := ./...

.PHONY: run build test test-go test-node test-studio studio fuzz bench lint clean

build:
	$(GO) build -o $(BIN) ./cmd/storyflow

# The product: the example webhook backend (127.0.0.1:8081, token dev-token)
# and the example widget page (127.0.0.1:8082) in the background, and
# storyflow serve with the example stories on the embedded store in data/.
# STORYFLOW_API_TOKEN defaults to dev-token; Ctrl-C stops all three.
run: build
	@$(GO) build -o bin/backend ./examples/backends/go
	@$(GO) build -o bin/widget ./examples/widget
	@tok=$${STORYFLOW_API_TOKEN:-dev-token}; addr=127.0.0.1:8080; page=127.0.0.1:8082; \
	bin/backend -addr 127.0.0.1:8081 -token dev-token & echo $$! > bin/backend.pid; \
	bin/widget -addr $$page & echo $$! > bin/widget.pid; \
	trap 'kill $$(cat bin/backend.pid) $$(cat bin/widget.pid) 2>/dev/null; rm -f bin/backend.pid bin/widget.pid' EXIT INT TERM; \
	sleep 0.5; \
	echo; \
	echo "storyflow API: http://$$addr   token: $$tok"; \
	echo "widget page:   http://$$page/?api=http://$$addr&story=support&open=1"; \
	echo "  curl -H 'Authorization: Bearer $$tok' http://$$addr/v1/stories"; \
	echo "  curl -H 'Authorization: Bearer $$tok' -d '{\"storyId\":\"support\",\"userAttributes\":{\"default_name\":\"Ann\"}}' http://$$addr/v1/chats"; \
	echo "  curl -H 'Authorization: Bearer $$tok' -d '{\"text\":\"ann@example.com\"}' http://$$addr/v1/chats/CHAT_ID/messages"; \
	echo; \
	STORYFLOW_API_TOKEN=$$tok $(BIN) serve --addr $$addr --stories examples/stories --data data --allow-private-webhooks \
		--cors-origins http://$$page

# The whole suite: Go tests (the MongoDB store against a FerretDB server that
# this target starts on loopback, unless MONGODB_TEST_URI is set), Node tests.
test: test-go test-node test-studio

test-go:
	@set -e; \
	if [ -z "$$MONGODB_TEST_URI" ]; then \
		eval "$$(tools/mongotest/start.sh)"; \
		trap 'tools/mongotest/stop.sh >/dev/null 2>&1 || true' EXIT; \
	fi; \
	$(GO) vet $(PKGS); \
	$(GO) test -count=1 -timeout 15m $(PKGS)

test-node:
	node --test examples/backends/node/

# The studio (GET /): its bundle api/studio/dist is built from api/studio/web
# (npm packages pinned by package-lock.json, bundled by esbuild) and
# committed. make studio rebuilds it; test-studio fails when the committed
# bundle is not what the sources build.
studio:
	cd api/studio/web && npm ci --no-audit --no-fund && node build.mjs

test-studio:
	@set -e; cd api/studio/web; npm ci --no-audit --no-fund --loglevel=error >/dev/null; \
	out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; node build.mjs "$$out"; \
	if ! diff -r "$$out" ../dist >/dev/null; then \
		echo "api/studio/dist does not match its sources in api/studio/web: run make studio"; \
		diff -r "$$out" ../dist | head -5; exit 1; \
	fi; echo "studio bundle matches its sources"

# A short fuzzing run of every fuzz target (tools/fuzz.sh; CI runs it too).
FUZZTIME ?= 20s
fuzz:
	GO=$(GO) tools/fuzz.sh $(FUZZTIME)

# Benchmarks: the Go benchmarks, the load test (bench/loadtest: storyflow
# turns against hand-written fiber baselines on loopback), the load test on
# the MongoDB store, the slow backend and the million-chat benchmark; see
# docs/operations.md, Performance. LOADFLAGS passes flags to the load test,
# e.g. LOADFLAGS='-duration 10s -cpuprofile prof'.
.PHONY: bench-go bench-load bench-mongo bench-slow bench-million wrk
LOADFLAGS ?= -duration 10s -c 50 -chats 400
bench: bench-go bench-load bench-mongo bench-slow bench-million

# The Go benchmarks; the MongoDB store's against a FerretDB server started
# here (FerretDB's speed, not MongoDB's), unless MONGODB_TEST_URI is set.
bench-go:
	@set -e; \
	if [ -z "$$MONGODB_TEST_URI" ]; then \
		eval "$$(tools/mongotest/start.sh)"; \
		trap 'tools/mongotest/stop.sh >/dev/null 2>&1 || true' EXIT; \
	fi; \
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

wrk:
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		(apt-get update && apt-get install -y wrk) >/dev/null || sudo sh -c 'apt-get update && apt-get install -y wrk' >/dev/null; }

bench-load: build wrk
	$(GO) run ./bench/loadtest -bin $(BIN) $(LOADFLAGS)

# The load test with storyflow on the MongoDB store (-mongo: a fresh
# database), against a FerretDB started here unless MONGODB_TEST_URI is
# set. FerretDB (SQLite, a collection scan per query) is slow: its turn rate
# is FerretDB's, not MongoDB's; hence few connections and chats.
MONGOLOADFLAGS ?= -duration 8s -c 4 -t 1 -chats 20 -rounds 2
bench-mongo: build
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		(apt-get update && apt-get install -y wrk) >/dev/null || sudo sh -c 'apt-get update && apt-get install -y wrk' >/dev/null; }
	@set -e; \
	if [ -z "$$MONGODB_TEST_URI" ]; then \
		eval "$$(tools/mongotest/start.sh)"; \
		trap 'tools/mongotest/stop.sh >/dev/null 2>&1 || true' EXIT; \
	fi; \
	$(GO) run ./bench/loadtest -bin $(BIN) -mongo "$$MONGODB_TEST_URI" $(MONGOLOADFLAGS)

# A slow webhook service must not slow other stories: the turn rate of a
# story with a fast webhook alone and while another story's webhook takes
# 5 s per call (target: >= 90% of alone). SLOWFLAGS passes flags to it.
SLOWFLAGS ?=
bench-slow: build
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		(apt-get update && apt-get install -y wrk) >/dev/null || sudo sh -c 'apt-get update && apt-get install -y wrk' >/dev/null; }
	$(GO) run ./bench/slowbackend -bin $(BIN) $(SLOWFLAGS)

# A million stored chats (20-entry transcripts) in an embedded store in
# MILLION_DIR (3.9 GB; bench/seed fills it once, in some 9 minutes on a
# 2-core machine, and skips it when it is done), then plain turns on random
# ones of them against an empty store's, and the server's RSS.
MILLION_DIR   ?= bin/million
MILLION_CHATS ?= 1000000
MILLIONFLAGS  ?= -duration 10s -c 50 -rounds 3
bench-million: build wrk
	$(GO) run ./bench/seed -data $(MILLION_DIR) -chats $(MILLION_CHATS)
	$(GO) run ./bench/loadtest -bin $(BIN) -seeded $(MILLION_DIR) -seeded-chats $(MILLION_CHATS) $(MILLIONFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
