#!/usr/bin/env bash
# PostgreSQL for the real CDC chain test: one throwaway cluster from
# Debian's postgresql package, set up for logical decoding (Debezium's
# pgoutput) and listening on 127.0.0.1 only.
#
#   postgres.sh install               apt-get install postgresql if initdb is missing
#   postgres.sh start <dir> <port>    initdb <dir>/data if new, start, wait for pg_isready
#   postgres.sh stop <dir>            fast shutdown (pg_ctl stop -m fast)
#   postgres.sh env <dir>             print the environment the tests read
#
# PostgreSQL refuses to run as root. When this script runs as root (as CI
# does) the cluster belongs to the system user "postgres", which the
# package creates, and every server command runs through runuser; <dir>
# and its parents must be traversable by that user. Otherwise the cluster
# belongs to the calling user.
#
# The cluster has one role, "evodb" (LOGIN, REPLICATION, superuser so it
# may create publications for all tables), trusted without a password on
# 127.0.0.1 only, and one database "evodb". wal_level is logical, with
# room for a few replication slots and WAL senders.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_USER="evodb"
PG_DB="evodb"

usage() {
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# pg_bindir prints the directory of initdb and pg_ctl: PATH first, else the
# newest version under Debian's /usr/lib/postgresql/<version>/bin.
pg_bindir() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v pg_ctl)")"
		return 0
	fi
	local d
	d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
	[[ -n "$d" && -x "$d/initdb" ]] || return 1
	echo "$d"
}

cmd_install() {
	if pg_bindir >/dev/null && command -v psql >/dev/null 2>&1; then
		return 0
	fi
	e2e_log "installing Debian's postgresql package"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	pg_bindir >/dev/null || e2e_die "initdb not found after installing postgresql"
}

# as_owner CMD... runs CMD as the cluster's owner.
as_owner() {
	if [[ "$(id -u)" == 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

cmd_start() {
	local dir="${1:-}" port="${2:-}"
	[[ -n "$dir" && -n "$port" ]] || usage
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	local bin
	bin="$(pg_bindir)" || e2e_die "PostgreSQL is not installed: run $0 install"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if e2e_port_open "$port"; then
		e2e_die "something already listens on 127.0.0.1:$port"
	fi
	if [[ "$(id -u)" == 0 ]]; then
		id postgres >/dev/null 2>&1 || e2e_die "running as root needs the system user postgres"
		chown postgres: "$dir"
	fi
	local data="$dir/data"
	if [[ ! -f "$data/PG_VERSION" ]]; then
		as_owner "$bin/initdb" -D "$data" -U "$PG_USER" --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			e2e_die "initdb $data failed"
		}
		# Trust only on loopback TCP and the cluster's own socket directory.
		as_owner tee "$data/pg_hba.conf" >/dev/null <<EOF
local all         all                trust
host  all         all  127.0.0.1/32  trust
host  replication all  127.0.0.1/32  trust
EOF
		as_owner tee -a "$data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
EOF
	fi
	echo "$port" >"$dir/port"
	as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
		tail -n 40 "$dir/server.log" >&2
		e2e_die "PostgreSQL did not start"
	}
	local i
	for ((i = 0; i < 120; i++)); do
		if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$PG_USER"; then
			break
		fi
		sleep 0.5
	done
	"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$PG_USER" ||
		e2e_die "PostgreSQL not ready on 127.0.0.1:$port"
	if ! psql -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
		psql -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres -qc "CREATE DATABASE $PG_DB" >/dev/null
	fi
	e2e_log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ready on 127.0.0.1:$port (dir $dir)"
}

cmd_stop() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/data/postmaster.pid" ]] || return 0
	local bin
	bin="$(pg_bindir)" || return 0
	as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

cmd_env() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no PostgreSQL was started in $dir"
	echo "export SINK_E2E_PG_HOST=127.0.0.1"
	echo "export SINK_E2E_PG_PORT=$(cat "$dir/port")"
	echo "export SINK_E2E_PG_USER=$PG_USER"
	echo "export SINK_E2E_PG_DB=$PG_DB"
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
