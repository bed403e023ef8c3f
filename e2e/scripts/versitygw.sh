#!/usr/bin/env bash
# versitygw.sh runs a local versitygw (an Apache-2.0 S3-compatible gateway
# over a POSIX directory) so the object-store acceptance test and the e2e
# suite can talk to a real S3 server.
#
# Usage:
#   versitygw.sh install              build versitygw unless it is already installed
#   versitygw.sh start <dir> <port>   start it on 127.0.0.1:<port>, storing under <dir>,
#                                     wait until it answers, create the test bucket
#   versitygw.sh env <dir>            print the SINK_TEST_S3_* and EVODB_* exports (for eval)
#   versitygw.sh stop <dir>           stop the gateway started in <dir>
#
# The credentials, region and bucket come from VGW_ACCESS_KEY, VGW_SECRET_KEY,
# VGW_REGION and VGW_BUCKET, with fixed test defaults: the server only listens
# on the loopback interface.
set -euo pipefail

VERSION=v1.8.0
ACCESS_KEY=${VGW_ACCESS_KEY:-evodbtest}
SECRET_KEY=${VGW_SECRET_KEY:-evodbtestsecret}
REGION=${VGW_REGION:-auto}
BUCKET=${VGW_BUCKET:-evodb-test}
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

die() {
	echo "versitygw.sh: $*" >&2
	exit 1
}

# binary prints the path of the versitygw binary, or nothing if there is none.
binary() {
	if command -v versitygw >/dev/null 2>&1; then
		command -v versitygw
		return
	fi
	local gobin
	gobin=$(go env GOBIN)
	if [ -z "$gobin" ]; then
		gobin="$(go env GOPATH)/bin"
	fi
	if [ -x "$gobin/versitygw" ]; then
		echo "$gobin/versitygw"
	fi
}

cmd_install() {
	if [ -n "$(binary)" ]; then
		return
	fi
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
	[ -n "$(binary)" ] || die "versitygw is not on PATH or in GOBIN after go install"
}

# s3 sends a SigV4-signed request to the gateway and prints the HTTP status.
s3() {
	local method=$1 url=$2
	# The body is always empty; the gateway requires its hash header.
	curl -s -o /dev/null -w '%{http_code}' -X "$method" \
		-H "x-amz-content-sha256: $EMPTY_SHA256" \
		--aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
		--max-time 5 "$url" || true
}

cmd_start() {
	local dir=${1:?usage: start <dir> <port>} port=${2:?usage: start <dir> <port>}
	local bin
	bin=$(binary)
	[ -n "$bin" ] || die "versitygw is not installed: run $0 install"
	mkdir -p "$dir/data"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/versitygw.pid" ] && kill -0 "$(cat "$dir/versitygw.pid")" 2>/dev/null; then
		die "already running in $dir (pid $(cat "$dir/versitygw.pid"))"
	fi
	local url="http://127.0.0.1:$port"
	if [ "$(s3 GET "$url/")" != "000" ]; then
		die "something already listens on 127.0.0.1:$port"
	fi

	# --keep-alive: S3 and R2 keep connections open between requests;
	# without it versitygw closes every connection after one response, and
	# each request would pay for a new TCP connection.
	ROOT_ACCESS_KEY_ID="$ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$SECRET_KEY" \
		nohup "$bin" --port "127.0.0.1:$port" --region "$REGION" --quiet --keep-alive \
		posix "$dir/data" >"$dir/versitygw.log" 2>&1 &
	echo $! >"$dir/versitygw.pid"
	echo "$port" >"$dir/versitygw.port"

	# Ready means a signed ListBuckets succeeds, which proves both the
	# listener and the credentials.
	local status
	for _ in $(seq 1 100); do
		status=$(s3 GET "$url/")
		if [ "$status" = "200" ]; then
			break
		fi
		if ! kill -0 "$(cat "$dir/versitygw.pid")" 2>/dev/null; then
			cat "$dir/versitygw.log" >&2
			die "versitygw exited during startup"
		fi
		sleep 0.1
	done
	[ "$status" = "200" ] || die "versitygw not ready on $url after 10s (last status $status); log: $dir/versitygw.log"

	# Create the bucket through the S3 API so the gateway records its owner
	# and ACL; 409 means it exists from an earlier run on the same dir.
	status=$(s3 PUT "$url/$BUCKET")
	case "$status" in
	200 | 409) ;;
	*) die "create bucket $BUCKET: HTTP $status" ;;
	esac
	echo "versitygw listening on $url, bucket $BUCKET, pid $(cat "$dir/versitygw.pid")" >&2
}

cmd_env() {
	local dir=${1:?usage: env <dir>}
	[ -f "$dir/versitygw.port" ] || die "no gateway was started in $dir"
	local port
	port=$(cat "$dir/versitygw.port")
	echo "export SINK_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
	echo "export SINK_TEST_S3_BUCKET=$BUCKET"
	echo "export SINK_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
	echo "export SINK_TEST_S3_SECRET_KEY=$SECRET_KEY"
	echo "export SINK_TEST_S3_REGION=$REGION"
	# The same server under the names config.example.yaml reads, so that
	# `sink run -c config.example.yaml` writes its tables there.
	echo "export EVODB_STORE_URL='s3://$BUCKET/evodb?path_style=true'"
	echo "export EVODB_S3_ENDPOINT=http://127.0.0.1:$port"
	echo "export EVODB_S3_REGION=$REGION"
	echo "export EVODB_S3_ACCESS_KEY_ID=$ACCESS_KEY"
	echo "export EVODB_S3_SECRET_ACCESS_KEY=$SECRET_KEY"
}

cmd_stop() {
	local dir=${1:?usage: stop <dir>}
	local pidfile="$dir/versitygw.pid"
	[ -f "$pidfile" ] || return 0
	local pid
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pidfile"
}

case "${1:-}" in
install) cmd_install ;;
start) shift && cmd_start "$@" ;;
env) shift && cmd_env "$@" ;;
stop) shift && cmd_stop "$@" ;;
*) die "usage: $0 install | start <dir> <port> | env <dir> | stop <dir>" ;;
esac
