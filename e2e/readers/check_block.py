"""Reads one block (a Parquet file the sink's block writer wrote) with
pyarrow (Arrow C++) and with DuckDB's own Parquet reader, and compares
every value with what the Go test expects.

The block has many pages per column and many row groups, a column of
every type, nulls, NaN and signed zeros, and wide decimals of both signs.
DuckDB also runs filtered counts, which it may answer in part from the
row groups' statistics and the page index.

Usage: check_block.py BLOCK EXPECTED_JSON
  EXPECTED_JSON: {"columns": [...], "rows": [[canonical value or null, ...], ...],
                  "counts": {"SQL condition": count, ...}}
Prints one JSON object: per reader "ok" or what differed.
"""

import datetime
import decimal
import json
import math
import struct
import sys

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def canonical(v):
    """The Go test's canonical text of a value (see e2e/blocks_test.go)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else struct.pack(">d", v).hex()
    if isinstance(v, decimal.Decimal):
        with decimal.localcontext() as ctx:
            ctx.prec = 100
            return str(int(v.scaleb(-v.as_tuple().exponent))) + "e" + str(v.as_tuple().exponent)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return str((v - EPOCH) // datetime.timedelta(milliseconds=1))
    if isinstance(v, datetime.date):
        return str((v - datetime.date(1970, 1, 1)).days)
    return str(v)


def compare(name, cols, rows, want):
    if sorted(cols) != sorted(want["columns"]):
        return f"{name}: columns {cols}, want {want['columns']}"
    at = [cols.index(c) for c in want["columns"]]
    rows = [[r[i] for i in at] for r in rows]
    cols = want["columns"]
    if len(rows) != len(want["rows"]):
        return f"{name}: {len(rows)} rows, want {len(want['rows'])}"
    for i, (got, exp) in enumerate(zip(rows, want["rows"])):
        got = [canonical(v) for v in got]
        if got != exp:
            diff = [(c, g, e) for c, g, e in zip(cols, got, exp) if g != e]
            return f"{name}: row {i} differs (column, got, want): {diff[:5]}"
    return "ok"


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # a reader's failure is a result, not a crash
        return f"error: {type(e).__name__}: {e}"


def main():
    path, want = sys.argv[1], json.load(open(sys.argv[2]))
    out = {}

    def with_pyarrow():
        import pyarrow.parquet as pq

        tbl = pq.read_table(path)
        cols = tbl.column_names
        data = [tbl.column(c).to_pylist() for c in cols]
        return compare("pyarrow", cols, list(zip(*data)), want)

    out["pyarrow"] = attempt(with_pyarrow)

    def with_duckdb():
        import duckdb

        con = duckdb.connect()
        # Timestamps with a time zone as epoch milliseconds: DuckDB's
        # Python conversion of them needs pytz.
        kinds = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        select = ", ".join(
            f'epoch_ms("{c[0]}") AS "{c[0]}"' if c[1] == "TIMESTAMP WITH TIME ZONE" else f'"{c[0]}"' for c in kinds
        )
        cur = con.execute(f"SELECT {select} FROM read_parquet(?)", [path])
        cols = [d[0] for d in cur.description]
        res = compare("duckdb", cols, cur.fetchall(), want)
        if res != "ok":
            return res
        for cond, n in want["counts"].items():
            got = con.execute(f"SELECT count(*) FROM read_parquet(?) WHERE {cond}", [path]).fetchone()[0]
            if got != n:
                return f"duckdb: {got} rows where {cond}, want {n}"
        return "ok"

    out["duckdb"] = attempt(with_duckdb)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
