#!/usr/bin/env bash
# kafka-delta-ingest (delta-io, Rust), the second peer of `sink bench -peer`,
# built from source at a pinned commit. A manual tool: the release build
# takes about 25 minutes on 2 cores, beyond the CI budget, so .ci/run does
# not call it (see BENCHMARKS.md "Against kafka-delta-ingest").
#
#   kafka-delta-ingest.sh install [DIR]   build the pinned commit into DIR (idempotent: a
#                                         binary built from the pin is reused) and print
#                                         the binary's path
#   kafka-delta-ingest.sh path [DIR]      print the binary's path, failing if not built
#
# DIR defaults to the cache ($E2E_CACHE_DIR/kafka-delta-ingest-<commit>). The
# source is KDI_SRC when set (a checkout or an unpacked archive of the pinned
# commit; a git checkout at another commit is refused), else a clone of the
# project's public repository into DIR/src. The build is cargo's release
# profile with thin LTO and the azure feature (its build script wants s3 or
# azure; neither is used on a filesystem table); librdkafka builds from
# source and needs a C toolchain, make, pkg-config, and the OpenSSL and zlib
# headers (Debian: build-essential pkg-config libssl-dev zlib1g-dev).
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KDI_REPO="https://github.com/delta-io/kafka-delta-ingest"
KDI_COMMIT="c6d42def1f65badaac417203591d2d47daf5f0d8"
KDI_FEATURES="azure"

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

kdi_dir() {
	echo "${1:-$E2E_CACHE_DIR/kafka-delta-ingest-${KDI_COMMIT:0:7}}"
}

# kdi_source DIR prints the source tree to build: KDI_SRC, checked against
# the pin when it is a git checkout, or a clone at the pin under DIR/src.
kdi_source() {
	local dir="$1" head
	if [[ -n "${KDI_SRC:-}" ]]; then
		[[ -f "$KDI_SRC/Cargo.toml" ]] || e2e_die "KDI_SRC=$KDI_SRC has no Cargo.toml: give a checkout of $KDI_REPO at $KDI_COMMIT"
		if git -C "$KDI_SRC" rev-parse --git-dir >/dev/null 2>&1; then
			head="$(git -C "$KDI_SRC" rev-parse HEAD)"
			[[ "$head" == "$KDI_COMMIT" ]] || e2e_die "KDI_SRC=$KDI_SRC is at $head, not the pinned $KDI_COMMIT: check the pin out there"
		else
			e2e_log "KDI_SRC=$KDI_SRC is not a git checkout: building it as the pinned $KDI_COMMIT"
		fi
		echo "$KDI_SRC"
		return
	fi
	e2e_require_cmd git
	if [[ ! -d "$dir/src/.git" ]]; then
		e2e_log "cloning $KDI_REPO into $dir/src"
		git clone -q "$KDI_REPO" "$dir/src"
	fi
	git -C "$dir/src" checkout -q "$KDI_COMMIT"
	echo "$dir/src"
}

cmd_install() {
	local dir src
	dir="$(kdi_dir "${1:-}")"
	if [[ -x "$dir/bin/kafka-delta-ingest" && "$(cat "$dir/bin/.commit" 2>/dev/null)" == "$KDI_COMMIT" ]]; then
		echo "$dir/bin/kafka-delta-ingest"
		return 0
	fi
	e2e_require_cmd cargo cc make pkg-config
	mkdir -p "$dir/bin"
	src="$(kdi_source "$dir")"
	e2e_log "building kafka-delta-ingest $KDI_COMMIT in $src (release, thin LTO, --features $KDI_FEATURES; about 25 minutes on 2 cores)"
	(cd "$src" && CARGO_PROFILE_RELEASE_LTO=thin cargo build --release --locked --features "$KDI_FEATURES" >&2)
	cp "$src/target/release/kafka-delta-ingest" "$dir/bin/kafka-delta-ingest.tmp"
	mv "$dir/bin/kafka-delta-ingest.tmp" "$dir/bin/kafka-delta-ingest"
	echo "$KDI_COMMIT" >"$dir/bin/.commit"
	echo "$dir/bin/kafka-delta-ingest"
}

cmd_path() {
	local dir
	dir="$(kdi_dir "${1:-}")"
	[[ -x "$dir/bin/kafka-delta-ingest" ]] || e2e_die "kafka-delta-ingest is not built in $dir: run $0 install"
	echo "$dir/bin/kafka-delta-ingest"
}

case "${1:-}" in
install) cmd_install "${2:-}" ;;
path) cmd_path "${2:-}" ;;
*) usage ;;
esac
