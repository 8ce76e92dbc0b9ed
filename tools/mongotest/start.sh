#!/usr/bin/env bash
# Builds (if needed) and starts the embedded FerretDB test server in the
# background, waits until it accepts connections, and prints shell exports:
#
#   eval "$(tools/mongotest/start.sh)"   # sets MONGODB_TEST_URI, MONGOTEST_PIDFILE
#   ...
#   tools/mongotest/stop.sh
#
# Only the export lines go to stdout; build output and errors go to stderr.
# Env: MONGOTEST_ADDR (default 127.0.0.1:0 = free port), MONGOTEST_DIR
# (SQLite data dir; default a fresh temp dir deleted on stop),
# MONGOTEST_START_TIMEOUT (seconds to wait for the server, default 120).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/bin/mongotest"
rundir="$here/bin/run"
addr="${MONGOTEST_ADDR:-127.0.0.1:0}"
timeout="${MONGOTEST_START_TIMEOUT:-120}"

# Build when the binary is missing or older than any source file.
if [ ! -x "$bin" ] || [ -n "$(find "$here" -maxdepth 1 \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit)" ]; then
	echo "mongotest: building $bin (the first build downloads and compiles FerretDB; may take minutes)..." >&2
	(cd "$here" && GOWORK=off GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -o "$bin.tmp.$$" . && mv -f "$bin.tmp.$$" "$bin") >&2
fi

mkdir -p "$rundir"
run="$(mktemp -d "$rundir/XXXXXX")" # holds pid, out (the URI line) and log
args=(-addr "$addr")
if [ -n "${MONGOTEST_DIR:-}" ]; then
	args+=(-dir "$MONGOTEST_DIR")
fi

# stdin/stdout/stderr must not be the caller's pipe, or "$(start.sh)" would
# never return.
"$bin" "${args[@]}" </dev/null >"$run/out" 2>"$run/log" &
pid=$!
pidfile="$run/pid"
echo "$pid" >"$pidfile"

fail() {
	echo "mongotest: $*" >&2
	if [ -s "$run/log" ]; then
		echo "--- server log ($run/log) ---" >&2
		tail -n 40 "$run/log" >&2 || true
	fi
	kill -TERM "$pid" 2>/dev/null || true
	rm -rf "$run"
	exit 1
}

trap 'fail "interrupted"' INT TERM HUP

deadline=$((SECONDS + timeout))
uri=""
while :; do
	line="$(grep -m1 '^MONGODB_URI=' "$run/out" 2>/dev/null || true)"
	if [ -n "$line" ]; then
		uri="${line#MONGODB_URI=}"
		break
	fi
	kill -0 "$pid" 2>/dev/null || fail "server exited before becoming ready"
	[ "$SECONDS" -lt "$deadline" ] || fail "server not ready after ${timeout}s"
	sleep 0.05
done

echo "mongotest: FerretDB listening at $uri (pid $pid, log $run/log)" >&2
printf 'export MONGODB_TEST_URI=%q\n' "$uri"
printf 'export MONGOTEST_PIDFILE=%q\n' "$pidfile"
