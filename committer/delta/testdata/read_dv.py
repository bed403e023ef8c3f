"""Reads a Delta table with deletion vectors with independent readers and
prints, as JSON, the ids each one sees.

Usage: read_dv.py TABLE_PATH [VERSION] [--spark]

Readers: DuckDB's delta_scan, delta-rs through its DataFusion QueryBuilder,
Polars' read_delta, and with --spark Apache Spark with Delta Lake. delta-rs'
pyarrow entry point (to_pyarrow_table) does not apply deletion vectors: it
must refuse the table, and its answer is reported as {"refused": message}
or, were it to return rows, as those ids. A reader that fails is reported
as {"error": message}.
"""

import json
import os
import pathlib
import sys


def duckdb_ids(path, version):
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    con.sql(f"LOAD '{ext}'")
    at = f", version := {version}" if version is not None else ""
    return sorted(r[0] for r in con.sql(f"SELECT id FROM delta_scan('{path}'{at})").fetchall())


def deltars_ids(path, version):
    import pyarrow
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(path, version=version)
    res = QueryBuilder().register("t", dt).execute("SELECT id FROM t")
    table = pyarrow.table(res.read_all() if hasattr(res, "read_all") else res)
    return sorted(table.column("id").to_pylist())


def deltars_pyarrow(path, version):
    from deltalake import DeltaTable

    try:
        table = DeltaTable(path, version=version).to_pyarrow_table(columns=["id"])
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        return {"refused": f"{type(e).__name__}: {e}"}
    return sorted(table.column("id").to_pylist())


def polars_ids(path, version):
    import polars as pl

    return sorted(pl.read_delta(path, version=version)["id"].to_list())


def spark_ids(path, version):
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]")
        .appName("read-dv")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.databricks.delta.snapshotPartitions", "1")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(r[0] for r in reader.load(path).select("id").collect())


def attempt(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - reported to the test
        return {"error": f"{type(e).__name__}: {e}"}


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--spark"]
    path = args[0]
    version = int(args[1]) if len(args) > 1 else None
    if "--spark" in sys.argv:
        out = {"spark": attempt(spark_ids, path, version)}
    else:
        out = {
            "duckdb": attempt(duckdb_ids, path, version),
            "deltars": attempt(deltars_ids, path, version),
            "deltars_pyarrow": attempt(deltars_pyarrow, path, version),
            "polars": attempt(polars_ids, path, version),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
    # Done: skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
