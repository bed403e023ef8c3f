#!/usr/bin/env bash
# Apache Kafka for the end-to-end tests: one broker in KRaft combined mode
# (broker and controller in one JVM) on 127.0.0.1, run from the release jars
# that Maven resolves, so it needs only a JDK (17 or newer) and Maven.
#
#   kafka.sh install                  resolve the jars into the cache (idempotent)
#   kafka.sh start <dir> <port>       format <dir> if new, start, wait until ready
#   kafka.sh stop <dir>               SIGTERM, then SIGKILL after 30 s
#   kafka.sh restart <dir>            stop and start again on the same data and port
#   kafka.sh env <dir>                print the environment the tests read
#   kafka.sh topics <dir> ARGS...     run kafka-topics against the broker
#   kafka.sh produce <dir> <topic>    console producer: one record per stdin line
#   kafka.sh run-class CLASS ARGS...  run any class from the Kafka jars (CLI tools)
#
# The broker listens on <port> (PLAINTEXT) and its controller on <port>+1;
# the same broker also listens on <port>+2 (SSL), <port>+3 (SASL_SSL with
# SCRAM-SHA-512) and <port>+4 (SSL requiring a client certificate), with a
# CA, certificates and a SCRAM user that start makes under <dir>/tls.
# Everything it writes (config, data, logs, certificates, pid file) stays
# under <dir>.
#
# start waits KAFKA_READY_TIMEOUT (a duration such as 300s) for the broker
# to serve; unset, 180s, times the load average per core (up to 4) on a busy
# machine. While it waits it says why the broker is not ready yet; if it
# gives up, it prints the broker's errors, not its whole log.
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION="4.3.1"
# Kafka logs through SLF4J 1.7 and ships Log4j 2 as its logging backend;
# log4j-slf4j-impl is the binding its own distribution puts beside it.
LOG4J_VERSION="2.25.4"
KAFKA_HOME="${KAFKA_HOME:-$E2E_CACHE_DIR/kafka-$KAFKA_VERSION}"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms128m}"

# ready_timeout prints how long start waits for the broker to serve:
# KAFKA_READY_TIMEOUT when set, else 180 s, multiplied by the load average
# per core (at most 4): a JVM sharing two cores with running tests takes
# minutes, not seconds, to start.
ready_timeout() {
	if [[ -n "${KAFKA_READY_TIMEOUT:-}" ]]; then
		echo "$KAFKA_READY_TIMEOUT"
		return
	fi
	local cores load
	cores="$(nproc 2>/dev/null || echo 1)"
	load="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
	awk -v l="$load" -v c="$cores" 'BEGIN { f = int(l / c + 0.5); if (f < 1) f = 1; if (f > 4) f = 4; print 180 * f "s" }'
}

usage() {
	# The comment block at the top of this file, whatever its length.
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 2
}

cmd_install() {
	if [[ -f "$KAFKA_HOME/.complete" ]]; then
		return 0
	fi
	e2e_require_cmd mvn java
	e2e_log "resolving Apache Kafka $KAFKA_VERSION into $KAFKA_HOME"
	mkdir -p "$KAFKA_HOME"
	local work="$KAFKA_HOME/.resolve"
	rm -rf "$work" "$KAFKA_LIBS"
	mkdir -p "$work"
	# kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool);
	# kafka-tools holds the CLI tools (topics, console producer and
	# consumer) and brings connect-runtime with it for Kafka Connect.
	cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.e2e</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
	e2e_maven_copy "$work" "Kafka $KAFKA_VERSION"
	[[ -f "$work/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || e2e_die "kafka_2.13-$KAFKA_VERSION.jar missing after resolve"
	mv "$work/libs" "$KAFKA_LIBS"
	rm -rf "$work"
	touch "$KAFKA_HOME/.complete"
	e2e_log "installed $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}

# make_certs DIR writes, once, what the TLS listeners and their tests need
# into DIR/tls: a CA, a server certificate for 127.0.0.1 and localhost, a
# client certificate for mutual TLS, a second CA that signed neither (for
# wrong-CA tests), and the SCRAM user's password.
make_certs() {
	local t="$1/tls"
	[[ -f "$t/.complete" ]] && return 0
	e2e_require_cmd openssl
	rm -rf "$t"
	mkdir -p "$t"
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
	# ossl runs openssl quietly, and shows what it said when it fails.
	ossl() {
		openssl "$@" 2>>"$t/openssl.log" || {
			cat "$t/openssl.log" >&2
			e2e_die "openssl $1 failed making the certificates in $t"
		}
	}
	ossl req -x509 "${ec[@]}" -keyout "$t/ca-key.pem" -out "$t/ca.pem" \
		-days 3650 -subj "/CN=evodb-sink e2e CA"
	ossl req -x509 "${ec[@]}" -keyout "$t/other-ca-key.pem" -out "$t/other-ca.pem" \
		-days 3650 -subj "/CN=evodb-sink e2e other CA"
	local name ext
	for name in server client; do
		if [[ "$name" == server ]]; then
			ext=$'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
		else
			ext=$'extendedKeyUsage=clientAuth'
		fi
		ossl req -new "${ec[@]}" -keyout "$t/$name-key.pem" -out "$t/$name.csr" -subj "/CN=$name"
		ossl x509 -req -in "$t/$name.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" \
			-CAcreateserial -days 3650 -out "$t/$name.pem" -extfile <(printf '%s\n' "$ext")
	done
	# The broker reads its key and certificate chain from one PEM file.
	cat "$t/server-key.pem" "$t/server.pem" "$t/ca.pem" >"$t/server-keystore.pem"
	openssl rand -hex 16 >"$t/scram-password"
	chmod 600 "$t"/*key*.pem "$t/scram-password"
	touch "$t/.complete"
}

write_config() {
	local dir="$1" port="$2" cport=$(($2 + 1))
	local ssl=$(($2 + 2)) sasl_ssl=$(($2 + 3)) mtls=$(($2 + 4))
	cat >"$dir/server.properties" <<EOF
# One node that is both the KRaft controller and the broker.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SSL://127.0.0.1:$ssl,SASL_SSL://127.0.0.1:$sasl_ssl,MTLS://127.0.0.1:$mtls
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SSL://127.0.0.1:$ssl,SASL_SSL://127.0.0.1:$sasl_ssl,MTLS://127.0.0.1:$mtls
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,MTLS:SSL
log.dirs=$dir/data

# The TLS listeners (clients only: brokers and controller talk plaintext).
# SSL and SASL_SSL verify the server only; MTLS also requires a client
# certificate signed by the same CA.
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

# A single replica everywhere, internal topics included.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests create their topics explicitly and want rebalances to start at once.
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# Lets the zombie and crash tests use short group session timeouts.
group.min.session.timeout.ms=1000

# Small enough for a shared two-core machine.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=67108864
log.retention.hours=24
log.retention.check.interval.ms=300000
EOF
	cat >"$dir/log4j2.properties" <<EOF
# The broker logs to $dir/logs/server.log only; the console stays quiet.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.filePattern = $dir/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
EOF
	echo "$port" >"$dir/port"
}

# tools_log4j writes a Log4j 2 config for the CLI tools that shows warnings
# on stderr and nothing else, so their output stays parseable.
tools_log4j() {
	local f="$KAFKA_HOME/tools-log4j2.properties"
	if [[ ! -f "$f" ]]; then
		cat >"$f" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF
	fi
	echo "$f"
}

# print_not_ready DIR TIMEOUT says why the broker in DIR did not become
# ready: what the JVM printed (it fails there before logging starts: a port
# in use, too little memory) and the broker's errors, not its routine log.
print_not_ready() {
	local dir="$1" timeout="$2" errors
	if [[ -s "$dir/stdout.log" ]]; then
		echo "--- the JVM's output ($dir/stdout.log), last lines:" >&2
		tail -n 20 "$dir/stdout.log" >&2
	fi
	if [[ -s "$dir/logs/server.log" ]]; then
		errors="$(grep -E '^\[[^]]*\] (ERROR|FATAL) |Exception' "$dir/logs/server.log" | tail -n 20 || true)"
		if [[ -n "$errors" ]]; then
			echo "--- the broker's errors ($dir/logs/server.log):" >&2
			echo "$errors" >&2
		else
			echo "--- no errors in $dir/logs/server.log: the broker is only slow; last line:" >&2
			tail -n 1 "$dir/logs/server.log" >&2
		fi
	fi
	e2e_log "waited $timeout; set KAFKA_READY_TIMEOUT (e.g. KAFKA_READY_TIMEOUT=600s) to wait longer on a loaded machine"
}

cmd_start() {
	local dir="${1:-}" port="${2:-}"
	[[ -n "$dir" && -n "$port" ]] || usage
	[[ "$port" =~ ^[0-9]+$ ]] || e2e_die "port must be a number, got $port"
	[[ -f "$KAFKA_HOME/.complete" ]] || e2e_die "Kafka is not installed: run $0 install"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/kafka.pid" ]] && e2e_pid_alive "$(cat "$dir/kafka.pid")"; then
		e2e_die "Kafka already running in $dir (pid $(cat "$dir/kafka.pid"))"
	fi
	# A broker already on the port would answer the readiness probe in
	# this one's place.
	local p
	for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)) $((port + 4)); do
		if e2e_port_open "$p"; then
			e2e_die "something already listens on 127.0.0.1:$p"
		fi
	done
	mkdir -p "$dir/logs"
	make_certs "$dir"
	write_config "$dir" "$port"
	local java cp="$KAFKA_LIBS/*"
	java="$(e2e_java)"

	if [[ ! -f "$dir/data/meta.properties" ]]; then
		local cluster_id
		cluster_id="$("$java" -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$cp" \
			kafka.tools.StorageTool random-uuid)"
		"$java" -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$cp" \
			kafka.tools.StorageTool format --standalone \
			--cluster-id "$cluster_id" --config "$dir/server.properties" \
			>"$dir/format.log" 2>&1 || {
			cat "$dir/format.log" >&2
			e2e_die "formatting $dir/data failed"
		}
	fi

	e2e_go_build ./e2e/cmd/kafkaready "$dir/kafkaready"

	# shellcheck disable=SC2086 # KAFKA_HEAP holds several JVM flags.
	nohup "$java" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-Dkafka.logs.dir="$dir/logs" \
		-cp "$cp" kafka.Kafka "$dir/server.properties" \
		</dev/null >"$dir/stdout.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/kafka.pid"

	# Once ready, kafkaready also creates (or updates) the SCRAM user of
	# the SASL_SSL listener through the admin API.
	local timeout
	timeout="$(ready_timeout)"
	if ! "$dir/kafkaready" -brokers "127.0.0.1:$port" -timeout "$timeout" -pid "$pid" \
		-scram-user sink -scram-password-file "$dir/tls/scram-password"; then
		print_not_ready "$dir" "$timeout"
		e2e_stop_pidfile "$dir/kafka.pid" 10
		e2e_die "Kafka did not become ready on 127.0.0.1:$port"
	fi
	e2e_log "Kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $pid, dir $dir)"
}

cmd_stop() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	e2e_stop_pidfile "$dir/kafka.pid" 30
}

cmd_restart() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no Kafka was started in $dir"
	cmd_stop "$dir"
	cmd_start "$dir" "$(cat "$dir/port")"
}

cmd_env() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no Kafka was started in $dir"
	echo "export SINK_E2E_KAFKA=127.0.0.1:$(cat "$dir/port")"
	# The broker-restart scenario runs `kafka.sh restart "$SINK_E2E_KAFKA_DIR"`.
	local abs port t
	abs="$(cd "$dir" && pwd)"
	port="$(cat "$dir/port")"
	t="$abs/tls"
	echo "export SINK_E2E_KAFKA_DIR=$abs"
	# The same broker's TLS listeners, their CA, a client certificate for
	# mutual TLS, a CA that signed nothing of it, and the SCRAM user.
	echo "export SINK_E2E_KAFKA_SSL=127.0.0.1:$((port + 2))"
	echo "export SINK_E2E_KAFKA_SASL_SSL=127.0.0.1:$((port + 3))"
	echo "export SINK_E2E_KAFKA_MTLS=127.0.0.1:$((port + 4))"
	echo "export SINK_E2E_KAFKA_CA=$t/ca.pem"
	echo "export SINK_E2E_KAFKA_OTHER_CA=$t/other-ca.pem"
	echo "export SINK_E2E_KAFKA_CLIENT_CERT=$t/client.pem"
	echo "export SINK_E2E_KAFKA_CLIENT_KEY=$t/client-key.pem"
	echo "export SINK_E2E_KAFKA_SCRAM_USER=sink"
	echo "export SINK_E2E_KAFKA_SCRAM_PASSWORD=$(cat "$t/scram-password")"
}

cmd_run_class() {
	local class="${1:-}"
	[[ -n "$class" ]] || usage
	shift
	[[ -f "$KAFKA_HOME/.complete" ]] || e2e_die "Kafka is not installed: run $0 install"
	exec "$(e2e_java)" -Xmx256m -Dlog4j2.configurationFile="$(tools_log4j)" \
		-cp "$KAFKA_LIBS/*" "$class" "$@"
}

cmd_topics() {
	local dir="${1:-}"
	[[ -n "$dir" ]] || usage
	shift
	[[ -f "$dir/port" ]] || e2e_die "no Kafka was started in $dir"
	cmd_run_class org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "127.0.0.1:$(cat "$dir/port")" "$@"
}

cmd_produce() {
	local dir="${1:-}" topic="${2:-}"
	[[ -n "$dir" && -n "$topic" ]] || usage
	[[ -f "$dir/port" ]] || e2e_die "no Kafka was started in $dir"
	cmd_run_class org.apache.kafka.tools.ConsoleProducer \
		--bootstrap-server "127.0.0.1:$(cat "$dir/port")" --topic "$topic"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
restart) cmd_restart "$@" ;;
env) cmd_env "$@" ;;
topics) cmd_topics "$@" ;;
produce) cmd_produce "$@" ;;
run-class) cmd_run_class "$@" ;;
*) usage ;;
esac
