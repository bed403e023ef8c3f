#!/usr/bin/env bash
# A Confluent-compatible Schema Registry for the end-to-end tests, served
# on 127.0.0.1 by e2e/cmd/schemaregistry (franz-go's in-memory registry
# behind the Confluent REST API). It needs only Go.
#
#   registry.sh install               build the server into the cache (idempotent)
#   registry.sh start <dir> <port>    start it on <port>, wait until it answers
#   registry.sh stop <dir>            SIGTERM, then SIGKILL after 10 s
#   registry.sh env <dir>             print the environment the tests read
#
# Everything it writes (pid file, port, log) stays under <dir>. Schemas
# live in the server's memory only: a restart forgets them.
#
# start waits REGISTRY_READY_TIMEOUT seconds (default 30, times the load
# average per core, up to 4) for GET /subjects to answer 200.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REGISTRY_BIN="$E2E_CACHE_DIR/schemaregistry/schemaregistry"

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 2
}

ready_timeout() {
	if [[ -n "${REGISTRY_READY_TIMEOUT:-}" ]]; then
		echo "$REGISTRY_READY_TIMEOUT"
		return
	fi
	local cores load
	cores="$(nproc 2>/dev/null || echo 1)"
	load="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
	awk -v l="$load" -v c="$cores" 'BEGIN { f = int(l / c + 0.5); if (f < 1) f = 1; if (f > 4) f = 4; print 30 * f }'
}

# Built on every install: Go's build cache makes an unchanged build cheap,
# and the server always matches the module's franz-go version.
cmd_install() {
	e2e_require_cmd go
	mkdir -p "$(dirname "$REGISTRY_BIN")"
	e2e_go_build ./e2e/cmd/schemaregistry "$REGISTRY_BIN"
}

http_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

cmd_start() {
	local dir="${1:-}" port="${2:-}"
	[[ -n "$dir" && -n "$port" ]] || usage
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	e2e_require_cmd curl
	cmd_install
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/registry.pid" ]] && e2e_pid_alive "$(cat "$dir/registry.pid")"; then
		e2e_die "the registry already runs in $dir (pid $(cat "$dir/registry.pid"))"
	fi
	if e2e_port_open "$port"; then
		e2e_die "something already listens on 127.0.0.1:$port"
	fi
	nohup "$REGISTRY_BIN" -addr "127.0.0.1:$port" </dev/null >"$dir/registry.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/registry.pid"
	echo "$port" >"$dir/port"

	local timeout i status=""
	timeout="$(ready_timeout)"
	for ((i = 0; i < timeout * 10; i++)); do
		status="$(http_status "http://127.0.0.1:$port/subjects")"
		[[ "$status" == 200 ]] && break
		if ! e2e_pid_alive "$pid"; then
			tail -n 20 "$dir/registry.log" >&2
			e2e_die "the registry exited during start-up"
		fi
		sleep 0.1
	done
	if [[ "$status" != 200 ]]; then
		tail -n 20 "$dir/registry.log" >&2
		e2e_stop_pidfile "$dir/registry.pid" 10
		e2e_die "the registry did not answer on 127.0.0.1:$port within ${timeout}s (last status ${status:-none}); set REGISTRY_READY_TIMEOUT to wait longer"
	fi
	e2e_log "schema registry ready on http://127.0.0.1:$port (pid $pid, dir $dir)"
}

cmd_stop() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	e2e_stop_pidfile "$dir/registry.pid" 10
}

cmd_env() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no registry was started in $dir"
	echo "export EVODB_SCHEMA_REGISTRY_URL=http://127.0.0.1:$(cat "$dir/port")"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
env) cmd_env "$@" ;;
*) usage ;;
esac
