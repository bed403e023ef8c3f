"""Reads a mirror table with independent Delta readers and prints, per
reader, its rows as [id, name, _op, _lsn, _offset] sorted by id, as JSON.

Usage: read_mirror.py <table directory>
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


def main():
    path = sys.argv[1]
    out = {}
    for name, fn in [("duckdb", duckdb_rows), ("polars", polars_rows), ("delta-rs", deltars_rows)]:
        try:
            out[name] = fn(path)
        except Exception as e:  # report, so the test names the reader
            out[name] = f"error: {e}"
    json.dump(out, sys.stdout)


main()
