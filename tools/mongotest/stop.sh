#!/usr/bin/env bash
# Stops a test server started by start.sh.
#
#   tools/mongotest/stop.sh [PIDFILE]
#
# PIDFILE defaults to $MONGOTEST_PIDFILE (exported by start.sh); if neither is
# given, every server started from this checkout (bin/run/*/pid) is stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rundir="$here/bin/run"

pidfiles=()
if [ $# -gt 0 ]; then
	pidfiles=("$@")
elif [ -n "${MONGOTEST_PIDFILE:-}" ]; then
	pidfiles=("$MONGOTEST_PIDFILE")
else
	shopt -s nullglob
	pidfiles=("$rundir"/*/pid)
	shopt -u nullglob
fi

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st="$(ps -o stat= -p "$1" 2>/dev/null || true)"
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

status=0
for pf in ${pidfiles[@]+"${pidfiles[@]}"}; do
	if [ ! -f "$pf" ]; then
		echo "mongotest: no pid file $pf" >&2
		continue
	fi
	pid="$(cat "$pf")"
	# Only signal the process if it is still our server (pids get reused).
	if [ -n "$pid" ] && alive "$pid" && ps -p "$pid" -o args= 2>/dev/null | grep -q 'bin/mongotest'; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do # up to 15 s for a clean shutdown
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			echo "mongotest: pid $pid did not stop after SIGTERM; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			status=1
		fi
		echo "mongotest: stopped pid $pid" >&2
	fi
	run="$(cd "$(dirname "$pf")" && pwd)"
	# Remove the run dir only if it is one that start.sh created.
	if [ "$(dirname "$run")" = "$rundir" ]; then
		rm -rf "$run"
	else
		rm -f "$pf"
	fi
done
exit "$status"
