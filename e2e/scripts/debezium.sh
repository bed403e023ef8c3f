#!/usr/bin/env bash
# The Debezium PostgreSQL connector in Kafka Connect standalone, for the
# real CDC chain test (PostgreSQL → Debezium → Kafka → sink). Kafka Connect
# is the broker's own connect-runtime from kafka.sh's jars; the connector
# and its dependencies are resolved with Maven into a plugin directory, and
# so is Apicurio Registry's Avro converter, which writes the Confluent wire
# format to the registry of registry.sh.
#
#   debezium.sh install                          resolve the connector and the converter into
#                                                the cache (idempotent)
#   debezium.sh start <dir> <port> <config>...   run Connect standalone with its REST API on
#                                                127.0.0.1:<port> and the connectors in the
#                                                given .properties files; wait until every
#                                                connector and task reports RUNNING
#   debezium.sh stop <dir> [kill]                SIGTERM (or SIGKILL with "kill": no offset
#                                                flush, so a restart replays events), then wait
#   debezium.sh restart <dir> [kill]             stop and start again with the same connectors
#   debezium.sh status <dir>                     print each connector's state from the REST API
#
# Kafka must be installed (kafka.sh install). The worker reads the brokers
# from DEBEZIUM_KAFKA (host:port, default 127.0.0.1:9092). Connect's source
# offsets go to <dir>/offsets, so a restart resumes from the last flushed
# offset: at-least-once, like any Connect deployment.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEBEZIUM_VERSION="3.6.1.Final"
APICURIO_CONVERTER_VERSION="3.0.9"
KAFKA_VERSION="4.3.1"
DEBEZIUM_HOME="${DEBEZIUM_HOME:-$E2E_CACHE_DIR/debezium-$DEBEZIUM_VERSION}"
PLUGIN_DIR="$DEBEZIUM_HOME/plugins"
KAFKA_LIBS="${KAFKA_HOME:-$E2E_CACHE_DIR/kafka-$KAFKA_VERSION}/libs"
CONNECT_HEAP="${CONNECT_HEAP:--Xmx384m -Xms64m}"
READY_SECONDS="${DEBEZIUM_READY_SECONDS:-120}"

usage() {
	sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd_install() {
	install_connector
	install_converter
}

install_connector() {
	if [[ -f "$DEBEZIUM_HOME/.complete" ]]; then
		return 0
	fi
	e2e_require_cmd mvn java
	e2e_log "resolving the Debezium PostgreSQL connector $DEBEZIUM_VERSION into $PLUGIN_DIR"
	local work="$DEBEZIUM_HOME/.resolve"
	rm -rf "$work" "$PLUGIN_DIR"
	mkdir -p "$work"
	# Connect's own API and the Kafka clients come from the worker's
	# classpath; a second copy in the plugin directory would shadow them.
	# Every Debezium artifact is pinned to one version through the BOM.
	cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.e2e</groupId>
  <artifactId>debezium-plugin</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.debezium</groupId>
        <artifactId>debezium-bom</artifactId>
        <version>$DEBEZIUM_VERSION</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.debezium</groupId>
      <artifactId>debezium-connector-postgres</artifactId>
      <version>$DEBEZIUM_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
	e2e_maven_copy "$work" "debezium-connector-postgres $DEBEZIUM_VERSION" \
		-DexcludeGroupIds=org.apache.kafka,org.slf4j
	[[ -f "$work/libs/debezium-connector-postgres-$DEBEZIUM_VERSION.jar" ]] ||
		e2e_die "debezium-connector-postgres-$DEBEZIUM_VERSION.jar missing after resolve"
	local other
	other="$(find "$work/libs" -name 'debezium-*.jar' ! -name "*-$DEBEZIUM_VERSION.jar")"
	[[ -z "$other" ]] || e2e_die "Debezium artifacts of another version resolved: $other"
	mkdir -p "$PLUGIN_DIR"
	mv "$work/libs" "$PLUGIN_DIR/debezium-connector-postgres"
	rm -rf "$work"
	touch "$DEBEZIUM_HOME/.complete"
	e2e_log "installed $(find "$PLUGIN_DIR" -name '*.jar' | wc -l) plugin jars"
}

# Apicurio's converter (io.apicurio.registry.utils.converter.AvroConverter)
# in a plugin directory of its own, so its Jackson and Avro stay apart from
# Debezium's. Its 3.0.9 modules name the 3.0.9 parent POM, so it is
# resolved in the Maven repository where registry.sh keeps that POM's
# stand-in; the Java SDK it uses is the 3.0.7 one, the 3.0.9 build not
# being served.
install_converter() {
	local dir="$PLUGIN_DIR/apicurio-converter"
	if [[ -f "$dir/.complete" ]]; then
		return 0
	fi
	local repo work="$DEBEZIUM_HOME/.resolve-converter"
	repo="$("$(dirname "${BASH_SOURCE[0]}")/registry.sh" maven-repo)"
	e2e_log "resolving Apicurio's Avro converter $APICURIO_CONVERTER_VERSION into $dir"
	rm -rf "$work" "$dir"
	mkdir -p "$work"
	cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.e2e</groupId>
  <artifactId>apicurio-converter-plugin</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-registry-java-sdk</artifactId>
        <version>3.0.7</version>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-utils-converter</artifactId>
      <version>$APICURIO_CONVERTER_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
	e2e_maven_copy "$work" "apicurio-registry-utils-converter $APICURIO_CONVERTER_VERSION" \
		-Dmaven.repo.local="$repo" -DexcludeGroupIds=org.apache.kafka,org.slf4j
	[[ -f "$work/libs/apicurio-registry-utils-converter-$APICURIO_CONVERTER_VERSION.jar" ]] ||
		e2e_die "apicurio-registry-utils-converter-$APICURIO_CONVERTER_VERSION.jar missing after resolve"
	mkdir -p "$PLUGIN_DIR"
	mv "$work/libs" "$dir"
	rm -rf "$work"
	touch "$dir/.complete"
}

write_worker_config() {
	local dir="$1" port="$2"
	cat >"$dir/worker.properties" <<EOF
bootstrap.servers=${DEBEZIUM_KAFKA:-127.0.0.1:9092}
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$port
plugin.path=$PLUGIN_DIR
# Connectors choose their own converters; these are the fallback.
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
offset.storage.file.filename=$dir/offsets
# Offsets are flushed rarely, so a killed worker replays what it sent since
# the last flush: the at-least-once case the sink's dedupe is for.
offset.flush.interval.ms=${DEBEZIUM_OFFSET_FLUSH_MS:-60000}
# The broker does not auto-create topics; connectors create theirs through
# topic.creation.default.* in their own config.
topic.creation.enable=true
EOF
	cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/connect.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = org.apache.kafka
logger.kafka.level = warn
logger.connectruntime.name = org.apache.kafka.connect.runtime
logger.connectruntime.level = info
logger.reflections.name = org.reflections
logger.reflections.level = error
EOF
	echo "$port" >"$dir/port"
}

# connector_states PORT prints "name connector-state task-states..." per
# connector, from the REST API.
connector_states() {
	local port="$1" names name body
	names="$(curl -fsS "http://127.0.0.1:$port/connectors" 2>/dev/null)" || return 1
	for name in $(echo "$names" | tr -d '[]"' | tr ',' ' '); do
		body="$(curl -fsS "http://127.0.0.1:$port/connectors/$name/status" 2>/dev/null)" || return 1
		# The status JSON is small and flat enough for grep: the first
		# "state" is the connector's, the rest are its tasks'.
		echo "$name $(echo "$body" | grep -o '"state":"[A-Z]*"' | cut -d'"' -f4 | tr '\n' ' ')"
	done
}

print_log_tail() {
	local dir="$1" f
	for f in "$dir/stdout.log" "$dir/connect.log"; do
		if [[ -s "$f" ]]; then
			echo "--- last lines of $f" >&2
			tail -n 60 "$f" >&2
		fi
	done
}

cmd_start() {
	local dir="${1:-}" port="${2:-}"
	[[ -n "$dir" && -n "$port" && $# -ge 3 ]] || usage
	shift 2
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	[[ -f "$DEBEZIUM_HOME/.complete" ]] || e2e_die "Debezium is not installed: run $0 install"
	[[ -d "$KAFKA_LIBS" ]] || e2e_die "Kafka is not installed: run kafka.sh install"
	e2e_require_cmd curl
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/connect.pid" ]] && e2e_pid_alive "$(cat "$dir/connect.pid")"; then
		e2e_die "Kafka Connect already running in $dir (pid $(cat "$dir/connect.pid"))"
	fi
	# A worker that was just stopped may hold its port for a moment.
	local i
	for ((i = 0; i < 100; i++)); do
		e2e_port_open "$port" || break
		sleep 0.1
	done
	if e2e_port_open "$port"; then
		e2e_die "something already listens on 127.0.0.1:$port"
	fi
	local c configs=()
	for c in "$@"; do
		[[ -f "$c" ]] || e2e_die "no connector config $c"
		configs+=("$(cd "$(dirname "$c")" && pwd)/$(basename "$c")")
	done
	printf '%s\n' "${configs[@]}" >"$dir/connectors"
	write_worker_config "$dir" "$port"

	# shellcheck disable=SC2086 # CONNECT_HEAP holds several JVM flags.
	nohup "$(e2e_java)" $CONNECT_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-cp "$KAFKA_LIBS/*" org.apache.kafka.connect.cli.ConnectStandalone \
		"$dir/worker.properties" "${configs[@]}" \
		</dev/null >>"$dir/stdout.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/connect.pid"

	local states want=${#configs[@]}
	for ((i = 0; i < READY_SECONDS * 2; i++)); do
		if ! e2e_pid_alive "$pid"; then
			print_log_tail "$dir"
			rm -f "$dir/connect.pid"
			e2e_die "Kafka Connect exited during start"
		fi
		states="$(connector_states "$port" || true)"
		if grep -q FAILED <<<"$states"; then
			echo "$states" >&2
			print_log_tail "$dir"
			e2e_stop_pidfile "$dir/connect.pid" 10
			e2e_die "a connector failed"
		fi
		# Ready when every connector and its task report RUNNING.
		if [[ "$(grep -c '^[^ ]* RUNNING RUNNING' <<<"$states" || true)" == "$want" ]]; then
			e2e_log "Kafka Connect ready on 127.0.0.1:$port (pid $pid): $(tr '\n' ';' <<<"$states")"
			return 0
		fi
		sleep 0.5
	done
	print_log_tail "$dir"
	e2e_stop_pidfile "$dir/connect.pid" 10
	e2e_die "connectors not RUNNING after ${READY_SECONDS}s"
}

cmd_stop() {
	local dir="${1:-}" how="${2:-}"
	[[ -n "$dir" ]] || usage
	if [[ "$how" == kill && -f "$dir/connect.pid" ]]; then
		local pid i
		pid="$(cat "$dir/connect.pid")"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			e2e_pid_alive "$pid" || break
			sleep 0.1
		done
		rm -f "$dir/connect.pid"
		return 0
	fi
	e2e_stop_pidfile "$dir/connect.pid" 30
}

cmd_restart() {
	local dir="${1:-}" how="${2:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" && -f "$dir/connectors" ]] || e2e_die "no Kafka Connect was started in $dir"
	local configs=()
	mapfile -t configs <"$dir/connectors"
	cmd_stop "$dir" "$how"
	cmd_start "$dir" "$(cat "$dir/port")" "${configs[@]}"
}

cmd_status() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no Kafka Connect was started in $dir"
	connector_states "$(cat "$dir/port")"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
restart) cmd_restart "$@" ;;
status) cmd_status "$@" ;;
*) usage ;;
esac
