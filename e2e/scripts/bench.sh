#!/usr/bin/env bash
# The full benchmark comparison against a real Apache Kafka broker and a
# real S3 server (versitygw), with the sink as a child process so its CPU
# time and peak RSS are its own:
#
#   bench.sh <dir> [extra `sink bench` flags...]
#
# It installs and starts both services under <dir>, builds the sink, runs
# `sink bench` for 8, 64 and 512 tables in both input formats, three runs
# each (medians), first with the filesystem store and then with versitygw,
# writes the tables and JSON next to each other under <dir>, and stops the
# services it started. Ports: BENCH_KAFKA_PORT (default 19092) and
# BENCH_S3_PORT (default 17070).
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

dir=${1:?usage: bench.sh <dir> [sink bench flags...]}
shift
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
kafka_port=${BENCH_KAFKA_PORT:-19092}
s3_port=${BENCH_S3_PORT:-17070}
scripts="$E2E_REPO_ROOT/e2e/scripts"

cleanup() {
	"$scripts/kafka.sh" stop "$dir/kafka" || true
	"$scripts/versitygw.sh" stop "$dir/s3" || true
}
trap cleanup EXIT

"$scripts/kafka.sh" install
"$scripts/versitygw.sh" install
"$scripts/kafka.sh" start "$dir/kafka" "$kafka_port"
"$scripts/versitygw.sh" start "$dir/s3" "$s3_port"

e2e_log "building the sink"
(cd "$E2E_REPO_ROOT" && go build -o "$dir/sink" ./cmd/sink)

{
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo || true
	grep -m1 MemTotal /proc/meminfo || true
	go version
} >"$dir/machine.txt"

run() {
	local name=$1
	shift
	e2e_log "sink bench: $name"
	"$dir/sink" bench -tables 8,64,512 -format evodb,debezium -runs 3 -process \
		-brokers "127.0.0.1:$kafka_port" -json-out "$dir/$name.json" "$@" | tee "$dir/$name.txt"
}

run kafka-filesystem "$@"

# The gateway's credentials, bucket and region, as the S3 client reads them.
eval "$("$scripts/versitygw.sh" env "$dir/s3")"
export AWS_ACCESS_KEY_ID="$SINK_TEST_S3_ACCESS_KEY"
export AWS_SECRET_ACCESS_KEY="$SINK_TEST_S3_SECRET_KEY"
export AWS_REGION="$SINK_TEST_S3_REGION"
run kafka-versitygw -store "s3://$SINK_TEST_S3_BUCKET/bench?endpoint=$SINK_TEST_S3_ENDPOINT&region=$SINK_TEST_S3_REGION&path_style=true" "$@"

e2e_log "results in $dir: kafka-filesystem.txt, kafka-versitygw.txt (and .json), machine.txt"
