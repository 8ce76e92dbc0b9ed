# storyflow — see README.md.
GO      ?= go
BIN     := bin/storyflow
PKGS    := ./...

.PHONY: run build test test-go test-node fuzz bench lint clean

build:
	$(GO) build -o $(BIN) ./cmd/storyflow

# Until the server lands: talk to the support example in the terminal, with
# the example webhook backend running on 127.0.0.1:8081.
run: build
	@$(GO) build -o bin/backend ./examples/backends/go
	@bin/backend & echo $$! > bin/backend.pid; \
	trap 'kill $$(cat bin/backend.pid) 2>/dev/null' EXIT; \
	sleep 0.5; $(BIN) chat examples/stories/support.yaml

# The whole suite: Go tests (the MongoDB store against a FerretDB server that
# this target starts on loopback, unless MONGODB_TEST_URI is set), Node tests.
test: test-go test-node

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

# A short fuzzing run of each fuzz target (CI runs it too).
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./stories -run='^$$' -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s

bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
