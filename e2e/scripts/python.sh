#!/usr/bin/env bash
# A Python virtual environment with the independent table readers the
# end-to-end verification uses: delta-rs (deltalake), pyarrow, PyIceberg,
# DuckDB with its Delta and Iceberg extensions, Polars, Apache Spark with
# Delta Lake, and confluent-kafka for the peer of `sink bench -peer python`
# (see requirements.txt for the pinned versions; Spark needs Java 17+).
#
#   python.sh install <venvdir>   create the venv and install the readers (idempotent),
#                                 then run the check below
#   python.sh check <venvdir>     write a small Delta table with delta-rs and read it
#                                 back with every reader (offline but for Spark's
#                                 first start, which fetches the Delta jars)
#   python.sh env <venvdir>       print the environment the tests read
set -euo pipefail

# shellcheck source=e2e/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REQUIREMENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"
PYTHON="${PYTHON:-python3}"

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd_install() {
	local venv="${1:-}"
	[[ -n "$venv" ]] || usage
	e2e_require_cmd "$PYTHON" java
	# The stamp records which requirements the venv was built from, so a
	# changed pin reinstalls and an unchanged one costs nothing.
	local want have=""
	want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
	[[ -f "$venv/.requirements.sha256" ]] && have="$(cat "$venv/.requirements.sha256")"
	if [[ "$want" == "$have" && -x "$venv/bin/python" ]]; then
		return 0
	fi
	e2e_log "installing the Python readers into $venv"
	"$PYTHON" -m venv "$venv"
	"$venv/bin/python" -m pip install -q --disable-pip-version-check \
		--no-input -r "$REQUIREMENTS"
	cmd_check "$venv"
	echo "$want" >"$venv/.requirements.sha256"
}

cmd_check() {
	local venv="${1:-}"
	[[ -n "$venv" ]] || usage
	local tmp
	tmp="$(mktemp -d)"
	# The check must not reach any network but Maven Central: DuckDB's
	# automatic extension install is off, so a missing extension fails here
	# instead of later; Spark resolves the Delta jars into Ivy's cache the
	# first time, so the tests find them there.
	if ! "$venv/bin/python" - "$tmp/table" <<'EOF'; then
import os
import pathlib
import sys

import confluent_kafka
import deltalake
import duckdb
import duckdb_extension_avro
import duckdb_extension_delta
import duckdb_extension_httpfs
import duckdb_extension_iceberg
import pyarrow as pa
import pyiceberg
import pyarrow.parquet as pq

path = sys.argv[1]
deltalake.write_deltalake(path, pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}))

dt = deltalake.DeltaTable(path)
assert dt.to_pyarrow_table().num_rows == 3, "delta-rs read"

files = [pathlib.Path(f.removeprefix("file://")) for f in dt.file_uris()]
assert sum(pq.read_table(f).num_rows for f in files) == 3, "pyarrow read"

ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.sql(f"LOAD '{ext}'")
got = con.sql(f"SELECT count(*), sum(id) FROM delta_scan('{path}')").fetchone()
assert got == (3, 6), f"duckdb delta_scan returned {got}"
# The Iceberg reader's extensions load by path too; reading a table takes a
# catalog, which e2e/readers/iceberg_tables.py gets from the tests.
for mod, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
    con.sql(f"LOAD '{next(pathlib.Path(mod.__file__).parent.glob(f'extensions/*/{name}.duckdb_extension'))}'")
assert con.sql("SELECT count(*) FROM duckdb_extensions() WHERE loaded AND extension_name = 'iceberg'").fetchone() == (1,), "duckdb iceberg extension"

import polars as pl
assert pl.read_delta(path)["id"].sum() == 6, "polars read"

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession
builder = (SparkSession.builder.master("local[1]").appName("python.sh-check")
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false"))
spark = configure_spark_with_delta_pip(builder).getOrCreate()
got = spark.read.format("delta").load(path).selectExpr("count(*)", "sum(id)").first()
assert tuple(got) == (3, 6), f"spark returned {got}"
print(f"readers ok: deltalake {deltalake.__version__}, pyarrow {pa.__version__}, duckdb {duckdb.__version__} with delta and iceberg extensions, pyiceberg {pyiceberg.__version__}, polars {pl.__version__}, spark {spark.version} with delta-spark; confluent-kafka {confluent_kafka.version()}")
# delta-rs can abort the interpreter while its runtime threads shut down;
# every check has passed by now, so leave without that teardown.
sys.stdout.flush()
os._exit(0)
EOF
		rm -rf "$tmp"
		e2e_die "the Python readers in $venv failed their check"
	fi
	rm -rf "$tmp"
}

cmd_env() {
	local venv="${1:-}"
	[[ -n "$venv" ]] || usage
	[[ -x "$venv/bin/python" ]] || e2e_die "no venv at $venv: run $0 install $venv"
	echo "export SINK_TEST_PYTHON=$(cd "$venv" && pwd)/bin/python"
	# The same venv has pyspark and delta-spark: the tests that need a
	# Spark writer (a table Spark appended to) run with it too.
	echo "export SINK_TEST_SPARK=$(cd "$venv" && pwd)/bin/python"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
install) cmd_install "$@" ;;
check) cmd_check "$@" ;;
env) cmd_env "$@" ;;
*) usage ;;
esac
