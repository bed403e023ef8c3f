# shellcheck shell=bash
# Shared helpers for the service scripts under e2e/scripts. Source it; do not run it.
#
# Every service script follows the same shape: `install` is idempotent and
# touches only a cache directory, `start <dir> ...` keeps all state (config,
# data, log, pid file) under <dir>, and `stop <dir>` ends exactly the process
# recorded in <dir>'s pid file.

# The repository root, so scripts can build the Go helpers under e2e/cmd
# whatever the caller's working directory is.
E2E_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Where installs are cached between runs: outside the work tree, so a fresh
# clone on the same machine reuses them.
export E2E_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/evodb-sink"

e2e_log() {
	printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

e2e_die() {
	e2e_log "$*"
	exit 1
}

# e2e_require_cmd NAME... fails unless every NAME is on PATH.
e2e_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || e2e_die "$c is required but not on PATH"
	done
}

# e2e_pid_alive PID reports whether PID is a live process (zombies count as
# dead, so a killed child that is not yet reaped is not waited on forever).
e2e_pid_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
	[[ -n "$state" && "$state" != Z* ]]
}

# e2e_stop_pidfile PIDFILE [GRACE_SECONDS] sends SIGTERM to the process in
# PIDFILE, waits up to GRACE_SECONDS (default 30) for it to exit, then sends
# SIGKILL. A missing pid file or a dead process is not an error, so stop is
# safe to call twice and from EXIT traps.
e2e_stop_pidfile() {
	local pidfile="$1" grace="${2:-30}" pid i
	[[ -f "$pidfile" ]] || return 0
	pid="$(cat "$pidfile")"
	if [[ -z "$pid" ]] || ! e2e_pid_alive "$pid"; then
		rm -f "$pidfile"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		e2e_pid_alive "$pid" || break
		sleep 0.1
	done
	if e2e_pid_alive "$pid"; then
		e2e_log "pid $pid still running after ${grace}s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			e2e_pid_alive "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$pidfile"
}

# e2e_port_open PORT reports whether something accepts connections on
# 127.0.0.1:PORT.
e2e_port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# e2e_go_build PKG OUT builds a Go helper from this module into OUT. Go's
# build cache makes repeated calls cheap.
e2e_go_build() {
	(cd "$E2E_REPO_ROOT" && go build -o "$2" "$1")
}

# e2e_java prints the java command: $JAVA_HOME/bin/java, or java on PATH.
e2e_java() {
	if [[ -n "${JAVA_HOME:-}" ]]; then
		echo "$JAVA_HOME/bin/java"
	else
		echo java
	fi
}

# e2e_maven_copy WORK WHAT [MVN ARGS...] resolves the runtime dependency
# closure of WORK/pom.xml with Maven into WORK/libs; on failure it prints
# the end of Maven's log and dies naming WHAT.
e2e_maven_copy() {
	local work="$1" what="$2"
	shift 2
	mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$work/libs" "$@" >"$work/mvn.log" 2>&1 ||
		{
			tail -n 40 "$work/mvn.log" >&2
			e2e_die "maven could not resolve $what"
		}
}
