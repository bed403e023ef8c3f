"""Reads one Delta table the sink wrote with DuckDB and prints, as JSON,
the number of rows in its change log, the primary key kept in its
metadata (evodb.primaryKey), and its current state: the latest
change per primary key by _lsn (ties by _offset), deletes dropped, which
is the view docs/current-state.md documents.

    state.py <table path> <key columns, comma-separated> <column types as JSON> [MIRROR_PATH]

With MIRROR_PATH, the table's mirror table (tables.*.mirror) is read too,
as it is, with its deletion vectors and no view over it, and printed as
"mirror": its row count, columns and rows in the same canonical form.

Values are printed in the canonical form the test also asks PostgreSQL
for, chosen per PostgreSQL type, so one comparison covers both converter
modes (with schemas the sink stores Debezium's declared types; without,
the JSON values' inferred ones):

    integer types  JSON number
    numeric        text with the column's scale
    real           the float32 value, as a double
    double         JSON number
    date           YYYY-MM-DD
    timestamp(tz)  milliseconds since the epoch, UTC (the sink keeps ms)
    time           microseconds of the day
    jsonb, arrays  the JSON value
    bytea          lowercase hex
    anything else  text
"""

import base64
import datetime
import decimal
import json
import os
import pathlib
import struct
import sys

import deltalake
import duckdb
import duckdb_extension_delta

META = {"_op", "_lsn", "_ts", "_topic", "_partition", "_offset", "_rn"}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def millis(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        d = v - EPOCH
        return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000
    if isinstance(v, str):
        return millis(datetime.datetime.fromisoformat(v))
    raise TypeError(f"timestamp as {type(v).__name__}: {v!r}")


def canonical(pgtype, v):
    if v is None:
        return None
    if pgtype in ("integer", "bigint", "smallint"):
        return int(v)
    if pgtype == "numeric":
        return format(decimal.Decimal(v), "f") if not isinstance(v, float) else repr(v)
    if pgtype == "real":
        return struct.unpack("f", struct.pack("f", float(v)))[0]
    if pgtype == "double precision":
        return float(v)
    if pgtype == "boolean":
        return bool(v)
    if pgtype == "date":
        if isinstance(v, int):
            return (datetime.date(1970, 1, 1) + datetime.timedelta(days=v)).isoformat()
        return v.isoformat()
    if pgtype.startswith("timestamp"):
        if isinstance(v, int):  # MicroTimestamp without a schema
            return v // 1000
        return millis(v)
    if pgtype.startswith("time"):
        if isinstance(v, datetime.time):
            return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
        return int(v)
    if pgtype in ("jsonb", "json", "ARRAY"):
        return json.loads(v) if isinstance(v, str) else v
    if pgtype == "bytea":
        if isinstance(v, str):
            v = base64.b64decode(v)
        return bytes(v).hex()
    return str(v)


def read(con, path, keys, types, view):
    """A table's current state: the view over a change log, or, without
    view, a mirror table's rows as they are."""
    log = f"delta_scan('{path}')"
    rows = con.sql(f"SELECT count(*) FROM {log}").fetchone()[0]
    key = ", ".join(f'"{k}"' for k in keys)
    desc = con.sql(f"DESCRIBE SELECT * FROM {log}").fetchall()
    names = [d[0] for d in desc if d[0] not in META]
    unknown = [n for n in names if n not in types]
    names = [n for n in names if n in types]
    # Timestamps leave DuckDB as epoch milliseconds: fetching a zoned
    # timestamp as a Python object would need pytz, which the readers'
    # venv does not carry.
    ms = {d[0] for d in desc if d[1].startswith("TIMESTAMP")}
    select = ", ".join(f'epoch_ms("{n}")' if n in ms else f'"{n}"' for n in names)
    if view:
        # The current-state view of docs/current-state.md.
        rel = con.sql(f"""
            SELECT {select} FROM (
                SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _lsn DESC, _offset DESC) AS _rn
                FROM {log}
            ) WHERE _rn = 1 AND _op <> 'DELETE'
        """)
    else:
        rel = con.sql(f"SELECT {select} FROM {log}")
    state = []
    for row in rel.fetchall():
        state.append({n: (v if n in ms else canonical(types[n], v)) for n, v in zip(names, row)})
    return {"rows": rows, "columns": names, "unknown": unknown, "state": state}


def main():
    path, keys, types = sys.argv[1], sys.argv[2].split(","), json.loads(sys.argv[3])
    ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.sql(f"LOAD '{ext}'")
    con.sql("SET TimeZone = 'UTC'")
    out = read(con, path, keys, types, True)
    # The primary key the sink took from the Debezium record key.
    out["primary_key"] = deltalake.DeltaTable(path).metadata().configuration.get("evodb.primaryKey")
    if len(sys.argv) > 4:
        out["mirror"] = read(con, sys.argv[4], keys, types, False)
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
    # Done: skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
