#!/usr/bin/env bash
# A Confluent-compatible Schema Registry for the end-to-end tests: Apicurio
# Registry 3.0.9 with its in-memory H2 storage, serving the Confluent REST API
# under /apis/ccompat/v7 on 127.0.0.1. It needs Java 17 and Maven.
#
#   registry.sh install               build the registry into the cache (idempotent)
#   registry.sh start <dir> <port>    start it on <port>, wait until it answers
#   registry.sh stop <dir>            SIGTERM, then SIGKILL after 10 s
#   registry.sh env <dir>             print the environment the tests read
#   registry.sh maven-repo            install, then print the Maven local repository
#                                     that holds the 3.0.9 stand-ins (for Apicurio's
#                                     Kafka Connect converter, debezium.sh)
#
# Everything it writes (pid file, port, log) stays under <dir>. Schemas
# live in the server's memory only: a restart forgets them.
#
# Apicurio publishes the registry as a library jar (apicurio-registry-app);
# install turns it into a Quarkus application with e2e/apicurio/runner, in a
# Maven local repository of its own under the cache, because it first puts
# stand-ins there for three 3.0.9 artifacts that are not served (see the
# POMs under e2e/apicurio). A rebuild happens only when e2e/apicurio or the
# versions below change.
#
# start waits REGISTRY_READY_TIMEOUT seconds (default 90, times the load
# average per core, up to 4) for GET /apis/ccompat/v7/subjects to answer
# 200, and prints how long the start took.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APICURIO_VERSION=3.0.9
# The published releases the stand-ins are made from: the parent POM, and
# the config-index deployment jar.
APICURIO_PARENT_FROM=3.0.7
APICURIO_CONFIG_INDEX_FROM=3.0.6
APICURIO_HOME="$E2E_CACHE_DIR/apicurio-registry-$APICURIO_VERSION"
APICURIO_APP="$APICURIO_HOME/app"
APICURIO_SRC="$E2E_REPO_ROOT/e2e/apicurio"
CCOMPAT_PATH=/apis/ccompat/v7

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
	awk -v l="$load" -v c="$cores" 'BEGIN { f = int(l / c + 0.5); if (f < 1) f = 1; if (f > 4) f = 4; print 90 * f }'
}

# install_stamp names what the built registry was made from, so a change to
# e2e/apicurio or to a version rebuilds it and nothing else does.
install_stamp() {
	{
		echo "$APICURIO_VERSION $APICURIO_PARENT_FROM $APICURIO_CONFIG_INDEX_FROM"
		(cd "$APICURIO_SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# mvn_in WHAT ARGS... runs Maven against the private local repository; on
# failure it prints the end of Maven's log and dies naming WHAT.
mvn_in() {
	local what="$1"
	shift
	mvn -B -Dmaven.repo.local="$APICURIO_HOME/m2" "$@" >"$APICURIO_HOME/mvn.log" 2>&1 ||
		{
			grep -E 'ERROR' "$APICURIO_HOME/mvn.log" | head -n 20 >&2 || true
			tail -n 20 "$APICURIO_HOME/mvn.log" >&2
			e2e_die "maven failed: $what (full log: $APICURIO_HOME/mvn.log)"
		}
}

cmd_install() {
	e2e_require_cmd mvn java sha256sum
	local stamp
	stamp="$(install_stamp)"
	if [[ -f "$APICURIO_APP/stamp" && "$(cat "$APICURIO_APP/stamp")" == "$stamp" ]]; then
		return 0
	fi
	e2e_log "building Apicurio Registry $APICURIO_VERSION (first time: a few minutes)"
	local work="$APICURIO_HOME/build" started=$SECONDS
	rm -rf "$work" "$APICURIO_APP"
	mkdir -p "$work"
	cp -R "$APICURIO_SRC/." "$work/"

	# The 3.0.9 parent POM is not served; the $APICURIO_PARENT_FROM one,
	# relabelled and without its module list, manages the same third-party
	# versions closely enough for the registry's own modules to resolve.
	mvn_in "the parent POM $APICURIO_PARENT_FROM" dependency:copy \
		-Dartifact="io.apicurio:apicurio-registry:$APICURIO_PARENT_FROM:pom" -DoutputDirectory="$work"
	sed -e "0,/<version>$APICURIO_PARENT_FROM<\/version>/s//<version>$APICURIO_VERSION<\/version>/" \
		-e '/<modules>/,/<\/modules>/d' \
		"$work/apicurio-registry-$APICURIO_PARENT_FROM.pom" >"$work/parent.pom"
	mvn_in "installing the parent POM stand-in" install:install-file \
		-Dfile="$work/parent.pom" -DpomFile="$work/parent.pom" -Dpackaging=pom

	mvn_in "the config-index deployment jar $APICURIO_CONFIG_INDEX_FROM" dependency:copy \
		-Dartifact="io.apicurio:apicurio-registry-config-index-deployment:$APICURIO_CONFIG_INDEX_FROM" \
		-DoutputDirectory="$work"
	mvn_in "installing the config-index deployment stand-in" install:install-file \
		-Dfile="$work/apicurio-registry-config-index-deployment-$APICURIO_CONFIG_INDEX_FROM.jar" \
		-DpomFile="$work/config-index-deployment.pom"

	mvn_in "the config definitions stand-in" -f "$work/definitions/pom.xml" install
	mvn_in "the registry application" -f "$work/runner/pom.xml" package -DskipTests

	mkdir -p "$APICURIO_APP"
	cp "$work/runner/target/apicurio-registry-runner-1-runner.jar" "$APICURIO_APP/registry.jar"
	cp -R "$work/runner/target/lib" "$APICURIO_APP/lib"
	echo "$stamp" >"$APICURIO_APP/stamp"
	rm -rf "$work"
	e2e_log "built Apicurio Registry $APICURIO_VERSION in $((SECONDS - started))s"
}

http_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

cmd_start() {
	local dir="${1:-}" port="${2:-}"
	[[ -n "$dir" && -n "$port" ]] || usage
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	e2e_require_cmd curl java
	cmd_install
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/registry.pid" ]] && e2e_pid_alive "$(cat "$dir/registry.pid")"; then
		e2e_die "the registry already runs in $dir (pid $(cat "$dir/registry.pid"))"
	fi
	if e2e_port_open "$port"; then
		e2e_die "something already listens on 127.0.0.1:$port"
	fi
	# Deletions are enabled so that tests may remove what they registered,
	# as against a Confluent registry. Tiered compilation stopped at C1 and
	# one GC thread keep start-up short on a small, shared machine.
	local started=$SECONDS
	nohup "$(e2e_java)" -Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
		-Dapicurio.rest.deletion.group.enabled=true \
		-Dapicurio.rest.deletion.artifact.enabled=true \
		-Dapicurio.rest.deletion.artifact-version.enabled=true \
		-jar "$APICURIO_APP/registry.jar" </dev/null >"$dir/registry.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/registry.pid"
	echo "$port" >"$dir/port"

	local timeout i status=""
	timeout="$(ready_timeout)"
	for ((i = 0; i < timeout * 10; i++)); do
		status="$(http_status "http://127.0.0.1:$port$CCOMPAT_PATH/subjects")"
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
	e2e_log "Apicurio Registry $APICURIO_VERSION ready on http://127.0.0.1:$port$CCOMPAT_PATH in $((SECONDS - started))s (pid $pid, dir $dir)"
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
	echo "export EVODB_SCHEMA_REGISTRY_URL=http://127.0.0.1:$(cat "$dir/port")$CCOMPAT_PATH"
}

cmd_maven_repo() {
	cmd_install
	echo "$APICURIO_HOME/m2"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
env) cmd_env "$@" ;;
maven-repo) cmd_maven_repo ;;
*) usage ;;
esac
