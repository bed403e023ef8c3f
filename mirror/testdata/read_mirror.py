"""Reads a mirror table with independent Delta readers and prints, per
reader, its rows as [id, name, _op, _lsn, _offset] sorted by id, as JSON.

Usage: read_mirror.py <table directory> [--spark]

With --spark it reads with Spark and Delta Lake too (the jars come from
Ivy's cache, as in e2e/readers).
"""

import json
import pathlib
import sys


def rows(records):
    return sorted([[r["id"], r["name"], r["_op"], r["_lsn"], r["_offset"]] for r in records], key=lambda r: (r[0] is None, r[0]))


def duckdb_rows(path):
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    con.sql(f"LOAD '{ext}'")
    rel = con.sql(f"SELECT id, name, _op, _lsn, _offset FROM delta_scan('{path}')")
    cols = rel.columns
    return rows([dict(zip(cols, r)) for r in rel.fetchall()])


def polars_rows(path):
    import polars as pl

    return rows(pl.read_delta(path).select(["id", "name", "_op", "_lsn", "_offset"]).to_dicts())


def deltars_rows(path):
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    # delta-rs reads deletion vectors through its SQL engine only; its
    # to_pyarrow_* entry points refuse such tables.
    dt = DeltaTable(path)
    result = QueryBuilder().register("m", dt).execute("SELECT id, name, _op, _lsn, _offset FROM m").read_all()
    return rows(pa.table(result).to_pylist())


def spark_rows(path):
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]")
        .appName("evodb-sink-mirror-readers")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.memory", "1g")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.format("delta").load(path).select("id", "name", "_op", "_lsn", "_offset")
        return rows([r.asDict() for r in df.collect()])
    finally:
        spark.stop()


def main():
    path = sys.argv[1]
    readers = [("duckdb", duckdb_rows), ("polars", polars_rows), ("delta-rs", deltars_rows)]
    if "--spark" in sys.argv[2:]:
        readers.append(("spark", spark_rows))
    out = {}
    for name, fn in readers:
        try:
            out[name] = fn(path)
        except Exception as e:  # report, so the test names the reader
            out[name] = f"error: {e}"
    json.dump(out, sys.stdout)


main()
