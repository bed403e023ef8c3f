#!/usr/bin/env bash
# Apache Iceberg's REST catalog server for the end-to-end tests
# (org.apache.iceberg.rest.RESTCatalogServer, from the test-fixtures jar of
# iceberg-open-api), run from the jars that Maven resolves for
# e2e/iceberg-rest/pom.xml, so it needs only a JDK (17 or newer) and Maven.
#
#   iceberg-rest.sh install                  resolve the jars into the cache (idempotent)
#   iceberg-rest.sh start <dir> <port> <s3-endpoint> [bucket]
#                                            start on 127.0.0.1:<port>, wait until ready
#   iceberg-rest.sh stop <dir>               SIGTERM, then SIGKILL after 30 s
#   iceberg-rest.sh env <dir>                print the environment the tests read
#
# The catalog keeps its tables' pointers in a SQLite file, <dir>/catalog.db,
# so a restart on the same <dir> finds the same tables. The warehouse is
# s3://<bucket>/iceberg on the S3 server at <s3-endpoint> (path-style
# requests), written through Iceberg's S3FileIO. The bucket (default
# evodb-test), the credentials and the region come from VGW_BUCKET,
# VGW_ACCESS_KEY, VGW_SECRET_KEY and VGW_REGION with versitygw.sh's
# defaults, so `versitygw.sh start` then `iceberg-rest.sh start` need no
# settings. The server asks for no authentication and ignores any token.
#
# start waits ICEBERG_REST_READY_TIMEOUT (a duration such as 120s) for
# GET /v1/config to answer; unset, 60s, times the load average per core (up
# to 4) on a busy machine. If it gives up, it prints the server's errors.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

POM="$E2E_REPO_ROOT/e2e/iceberg-rest/pom.xml"
ICEBERG_VERSION="$(sed -n 's:.*<iceberg.version>\(.*\)</iceberg.version>.*:\1:p' "$POM")"
ICEBERG_REST_HOME="${ICEBERG_REST_HOME:-$E2E_CACHE_DIR/iceberg-rest-$ICEBERG_VERSION}"
# The install stamp holds the pom's hash, so a changed dependency list
# resolves again instead of reusing the old jars.
POM_SHA="$(sha256sum "$POM" | cut -d' ' -f1)"
ICEBERG_REST_HEAP="${ICEBERG_REST_HEAP:--Xmx384m -Xms64m}"
ACCESS_KEY="${VGW_ACCESS_KEY:-evodbtest}"
SECRET_KEY="${VGW_SECRET_KEY:-evodbtestsecret}"
REGION="${VGW_REGION:-auto}"

usage() {
	# The comment block at the top of this file, whatever its length.
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 2
}

# ready_timeout prints how long start waits for the catalog: the JVM starts
# in about a second on an idle machine, but several times that on two cores
# shared with running tests.
ready_timeout() {
	if [[ -n "${ICEBERG_REST_READY_TIMEOUT:-}" ]]; then
		echo "$ICEBERG_REST_READY_TIMEOUT"
		return
	fi
	local cores load
	cores="$(nproc 2>/dev/null || echo 1)"
	load="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
	awk -v l="$load" -v c="$cores" 'BEGIN { f = int(l / c + 0.5); if (f < 1) f = 1; if (f > 4) f = 4; print 60 * f "s" }'
}

installed() {
	[[ "$(cat "$ICEBERG_REST_HOME/.complete" 2>/dev/null)" == "$POM_SHA" ]]
}

cmd_install() {
	if installed; then
		return 0
	fi
	e2e_require_cmd mvn java
	e2e_log "resolving the Iceberg $ICEBERG_VERSION REST catalog server into $ICEBERG_REST_HOME"
	mkdir -p "$ICEBERG_REST_HOME"
	local work="$ICEBERG_REST_HOME/.resolve"
	rm -rf "$work" "$ICEBERG_REST_HOME/libs"
	mkdir -p "$work"
	cp "$POM" "$work/pom.xml"
	e2e_maven_copy "$work" "the Iceberg $ICEBERG_VERSION REST catalog server"
	[[ -f "$work/libs/iceberg-open-api-$ICEBERG_VERSION-test-fixtures.jar" ]] ||
		e2e_die "iceberg-open-api-$ICEBERG_VERSION-test-fixtures.jar missing after resolve"
	mv "$work/libs" "$ICEBERG_REST_HOME/libs"
	rm -rf "$work"
	echo "$POM_SHA" >"$ICEBERG_REST_HOME/.complete"
	e2e_log "installed $(find "$ICEBERG_REST_HOME/libs" -name '*.jar' | wc -l) jars"
}

# config_status URL prints the HTTP status of GET URL/v1/config, 000 when
# nothing answers.
config_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1/v1/config" || true
}

# print_not_ready DIR TIMEOUT says why the server did not answer: its
# exceptions (a class missing from the classpath, a bad property), not its
# whole log.
print_not_ready() {
	local dir="$1" timeout="$2" errors
	if [[ -s "$dir/server.log" ]]; then
		errors="$(grep -E 'ERROR|Exception|Caused by' "$dir/server.log" | tail -n 20 || true)"
		if [[ -n "$errors" ]]; then
			echo "--- the server's errors ($dir/server.log):" >&2
			echo "$errors" >&2
		else
			echo "--- no errors in $dir/server.log: the server is only slow; last lines:" >&2
			tail -n 5 "$dir/server.log" >&2
		fi
	fi
	e2e_log "waited $timeout; set ICEBERG_REST_READY_TIMEOUT (e.g. ICEBERG_REST_READY_TIMEOUT=300s) to wait longer on a loaded machine"
}

cmd_start() {
	local dir="${1:-}" port="${2:-}" endpoint="${3:-}" bucket="${4:-${VGW_BUCKET:-evodb-test}}"
	[[ -n "$dir" && -n "$port" && -n "$endpoint" ]] || usage
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	installed || e2e_die "the REST catalog server is not installed: run $0 install"
	e2e_require_cmd curl
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/iceberg-rest.pid" ]] && e2e_pid_alive "$(cat "$dir/iceberg-rest.pid")"; then
		e2e_die "the REST catalog already runs in $dir (pid $(cat "$dir/iceberg-rest.pid"))"
	fi
	# The server binds its port with SO_REUSEPORT, so a second one would
	# start beside a server already there and share its requests.
	if e2e_port_open "$port"; then
		e2e_die "something already listens on 127.0.0.1:$port"
	fi
	local url="http://127.0.0.1:$port"

	# RESTCatalogServer reads its catalog's properties from CATALOG_*
	# variables: the prefix goes, "__" becomes "-", "_" becomes ".", so
	# CATALOG_S3_PATH__STYLE__ACCESS is s3.path-style-access. rest.port is
	# one of them. RESTCatalogServer has no bind address: it listens on
	# every interface and asks for no credentials, so it is for test
	# machines whose ports are not reachable from elsewhere.
	env CATALOG_CATALOG__IMPL=org.apache.iceberg.jdbc.JdbcCatalog \
		CATALOG_URI="jdbc:sqlite:$dir/catalog.db" \
		CATALOG_JDBC_SCHEMA__VERSION=V1 \
		CATALOG_WAREHOUSE="s3://$bucket/iceberg" \
		CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO \
		CATALOG_S3_ENDPOINT="$endpoint" \
		CATALOG_S3_PATH__STYLE__ACCESS=true \
		CATALOG_S3_ACCESS__KEY__ID="$ACCESS_KEY" \
		CATALOG_S3_SECRET__ACCESS__KEY="$SECRET_KEY" \
		CATALOG_CLIENT_REGION="$REGION" \
		CATALOG_REST_PORT="$port" \
		nohup "$(e2e_java)" $ICEBERG_REST_HEAP -XX:+UseSerialGC \
		-Djava.awt.headless=true \
		-cp "$ICEBERG_REST_HOME/libs/*" org.apache.iceberg.rest.RESTCatalogServer \
		</dev/null >"$dir/server.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/iceberg-rest.pid"
	echo "$port" >"$dir/port"
	echo "$bucket" >"$dir/bucket"

	# Ready means the catalog answers its configuration endpoint, which it
	# does only once the backend catalog (SQLite, S3FileIO) is built.
	local timeout limit status start=$SECONDS
	timeout="$(ready_timeout)"
	limit="${timeout%s}"
	while :; do
		status="$(config_status "$url")"
		[[ "$status" == 200 ]] && break
		if ! e2e_pid_alive "$pid"; then
			print_not_ready "$dir" "$timeout"
			rm -f "$dir/iceberg-rest.pid"
			e2e_die "the REST catalog server exited during start-up"
		fi
		if ((SECONDS - start >= limit)); then
			print_not_ready "$dir" "$timeout"
			e2e_stop_pidfile "$dir/iceberg-rest.pid" 10
			e2e_die "the REST catalog did not answer on $url (last status $status)"
		fi
		sleep 0.2
	done
	e2e_log "Iceberg $ICEBERG_VERSION REST catalog ready on $url after $((SECONDS - start))s (pid $pid, warehouse s3://$bucket/iceberg, dir $dir)"
}

cmd_stop() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	e2e_stop_pidfile "$dir/iceberg-rest.pid" 30
}

cmd_env() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no REST catalog was started in $dir"
	echo "export EVODB_ICEBERG_REST_URL=http://127.0.0.1:$(cat "$dir/port")"
	echo "export EVODB_ICEBERG_WAREHOUSE=s3://$(cat "$dir/bucket")/iceberg"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
env) cmd_env "$@" ;;
*) usage ;;
esac
