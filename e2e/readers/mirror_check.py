"""Mirror tables against their change logs, for the end-to-end tests.

A mirror table holds one row per primary key of its change log, maintained
from the log; its rule (README, "Mirror tables") is: the mirror at version
V equals the current-state view (docs/current-state.md) of the change log
at version W, where W is the change-log version the mirror's txn for appId
"evodb-mirror/<change log id>" records at V.

For each (change log, mirror) pair this script reads the mirror's latest
version V and its W, computes the view of the change log at W with DuckDB
(delta_scan with version := W, the window query of docs/current-state.md
ordered by _lsn, _partition, _offset), reads the mirror at V with every
reader that applies deletion vectors: DuckDB's delta_scan, delta-rs through
its DataFusion QueryBuilder (its to_pyarrow_* entry points refuse tables
with deletion vectors), Polars' read_delta, and Spark with Delta Lake's own
reader when the bucket has a local copy; and compares row for row, every
column. It prints one JSON object and exits non-zero when any reader
differs from the view or fails.

Usage: mirror_check.py CONFIG_JSON
  CONFIG_JSON: check_tables.py's (endpoint, bucket, prefix, access_key,
               secret_key, region, local_root) plus "mirrors": a list of
               {"changelog": table, "mirror": table, "key": [columns]
               (optional: the mirror's evodb.mirrorKey, else the change
               log's evodb.primaryKey),
               "app_id": (optional: "evodb-mirror/<change log id>")},
               and optionally "readers": the readers to run.

check_tables.py --serve takes the same CONFIG_JSON lines and answers them
with this script's check(), so one Spark JVM serves both.
"""

import datetime
import decimal
import json
import math
import os
import sys

from check_tables import attempt

READERS = ["duckdb", "deltalake", "polars", "spark"]
# The most differences reported per reader and table: enough to see the
# pattern, few enough to read.
MAX_DIFFS = 20


def normalize_table(tbl):
    """Rows of an Arrow table as dicts of comparable Python values.

    Readers disagree on representations that mean the same value: a
    timestamp's unit and time zone, string vs large_string, an Arrow
    view type. Timestamps become microseconds since the epoch (UTC), every
    other value its Python form, a float NaN the string "NaN".
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for name in tbl.column_names:
        col = tbl.column(name)
        t = col.type
        if pa.types.is_timestamp(t):
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz=t.tz)), pa.int64())
        elif pa.types.is_string_view(t) or pa.types.is_large_string(t):
            col = pc.cast(col, pa.string())
        elif pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
            col = pc.cast(col, pa.binary())
        cols[name] = [value(v) for v in col.to_pylist()]
    n = tbl.num_rows
    return [{name: cols[name][i] for name in cols} for i in range(n)]


def value(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, decimal.Decimal):
        # 1.50 and 1.5 are one value; scale is the column type's business.
        return v.normalize() if v == v else "NaN"
    if isinstance(v, datetime.datetime):
        # A reader that hands back datetime objects: microseconds UTC.
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int(v.timestamp()) * 1_000_000 + v.microsecond
    return v


def show(v):
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return v


def compare(view, got, key):
    """Differences between the view's rows and a reader's rows of the mirror.

    Returns (differences, summary): every key the two hold with different
    values, a key only one of them holds, and a key the mirror holds twice.
    """
    diffs = []
    counts = {"missing": 0, "extra": 0, "different": 0, "duplicate": 0}

    def add(kind, k, **kw):
        counts[kind] += 1
        if len(diffs) < MAX_DIFFS:
            diffs.append({"kind": kind, "key": [show(x) for x in k], **kw})

    want = {tuple(r[c] for c in key): r for r in view}
    have = {}
    for r in got:
        k = tuple(r.get(c) for c in key)
        if k in have:
            add("duplicate", k)
        have[k] = r
    vcols = set(view[0]) if view else set()
    gcols = set(got[0]) if got else set()
    for k in sorted(want.keys() - have.keys(), key=repr):
        add("missing", k, view={c: show(v) for c, v in want[k].items()})
    for k in sorted(have.keys() - want.keys(), key=repr):
        add("extra", k, mirror={c: show(v) for c, v in have[k].items()})
    for k in sorted(want.keys() & have.keys(), key=repr):
        w, h = want[k], have[k]
        cols = sorted(set(w) | set(h))
        bad = {c: {"view": show(w.get(c)), "mirror": show(h.get(c))} for c in cols if w.get(c) != h.get(c)}
        if bad:
            add("different", k, columns=bad)
    summary = {"rows": len(got), **{k: v for k, v in counts.items() if v}}
    if view and got and vcols != gcols:
        summary["columns_only_in_view"] = sorted(vcols - gcols)
        summary["columns_only_in_mirror"] = sorted(gcols - vcols)
    return diffs, summary


def quote(name):
    return '"' + name.replace('"', '""') + '"'


class Locations:
    """Where the tables are, for each reader: S3 URIs with credentials,
    or the S3 server's local copy of the bucket."""

    def __init__(self, cfg):
        from urllib.parse import urlparse

        self.cfg = cfg
        self.host = urlparse(cfg["endpoint"]).netloc if cfg.get("endpoint") else ""
        self.opts = {
            "AWS_ENDPOINT_URL": cfg.get("endpoint", ""),
            "AWS_ACCESS_KEY_ID": cfg.get("access_key", ""),
            "AWS_SECRET_ACCESS_KEY": cfg.get("secret_key", ""),
            "AWS_REGION": cfg.get("region", ""),
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            "AWS_FORCE_PATH_STYLE": "true",
        }

    def key(self, table):
        return "/".join(p for p in (self.cfg.get("prefix", ""), table) if p)

    def uri(self, table):
        if not self.cfg.get("endpoint"):
            return self.local(table)
        return f"s3://{self.cfg['bucket']}/{self.key(table)}"

    def local(self, table):
        root = self.cfg.get("local_root")
        if not root:
            return ""
        return os.path.join(root, self.cfg.get("bucket", ""), self.key(table))

    def storage(self):
        return self.opts if self.cfg.get("endpoint") else None


def duckdb_connection(loc):
    import pathlib

    import duckdb
    import duckdb_extension_delta
    import duckdb_extension_httpfs

    # The extensions come from their Python packages: nothing is fetched.
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for mod, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_delta, "delta")):
        ext = next(pathlib.Path(mod.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
        con.sql(f"LOAD '{ext}'")
    if loc.cfg.get("endpoint"):
        con.execute(
            "CREATE SECRET e2e (TYPE S3, KEY_ID $key, SECRET $secret, ENDPOINT $host, URL_STYLE 'path', USE_SSL false, REGION $region)",
            {"key": loc.cfg["access_key"], "secret": loc.cfg["secret_key"], "host": loc.host, "region": loc.cfg["region"]},
        )
    return con


def duckdb_src(con, loc, table):
    """The path DuckDB reads table from: S3, or the local copy when DuckDB
    cannot reach the S3 server."""
    uri = loc.uri(table)
    try:
        con.sql(f"SELECT 1 FROM delta_scan('{uri}') LIMIT 0").fetchall()
        return uri
    except Exception:
        if not loc.local(table):
            raise
        return loc.local(table)


def mirror_state(loc, m):
    """The mirror's latest version V, the change-log version W its txn
    records at V (None before its first commit), the appId, and the
    primary key."""
    import deltalake

    cl = deltalake.DeltaTable(loc.uri(m["changelog"]), storage_options=loc.storage())
    mt = deltalake.DeltaTable(loc.uri(m["mirror"]), storage_options=loc.storage())
    app_id = m.get("app_id") or f"evodb-mirror/{cl.metadata().id}"
    w = mt.transaction_version(app_id)
    # The key: given, else the one the mirror records it was built with,
    # else the change log's primary key.
    key = m.get("key")
    if not key:
        for conf, name in ((mt.metadata().configuration, "evodb.mirrorKey"), (cl.metadata().configuration, "evodb.primaryKey")):
            if conf.get(name):
                key = conf[name].split(",")
                break
    if not key:
        raise ValueError(
            f"mirror {m['mirror']}: no primary key: give the pair a \"key\" or the change log an evodb.primaryKey"
        )
    return mt.version(), w, app_id, [k.strip() for k in key]


def view_at(con, src, w, key, columns):
    """The current-state view of the change log at version w, all columns."""
    import pyarrow as pa

    if w is None or w < 0:
        return []
    order = ", ".join(f"{quote(c)} DESC" for c in ("_lsn", "_partition", "_offset") if c in columns)
    part = ", ".join(quote(k) for k in key)
    tbl = con.sql(
        f"""SELECT * EXCLUDE (_rn) FROM (
              SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY {order}) AS _rn
              FROM delta_scan('{src}', version := {int(w)}))
            WHERE _rn = 1 AND _op <> 'DELETE'"""
    ).to_arrow_table()
    assert isinstance(tbl, pa.Table)
    return normalize_table(tbl)


def read_duckdb(con, src, v):
    return normalize_table(con.sql(f"SELECT * FROM delta_scan('{src}', version := {int(v)})").to_arrow_table())


def read_deltalake(loc, table, v):
    import deltalake
    import pyarrow as pa

    dt = deltalake.DeltaTable(loc.uri(table), storage_options=loc.storage(), version=v)
    reader = deltalake.QueryBuilder().register("m", dt).execute("SELECT * FROM m")
    return normalize_table(pa.RecordBatchReader.from_stream(reader).read_all())


def read_polars(loc, table, v):
    import polars as pl

    df = pl.read_delta(loc.uri(table), version=v, storage_options=loc.storage())
    return normalize_table(df.to_arrow())


def read_spark(spark, loc, table, v):
    local = loc.local(table)
    if not local:
        raise RuntimeError("no local copy of the bucket (local_root): Spark reads only local tables here")
    df = spark.get().read.format("delta").option("versionAsOf", int(v)).load(local)
    return normalize_table(df.toArrow())


def check(cfg, spark=None):
    """Checks every pair of cfg["mirrors"]; the answer is JSON-ready."""
    loc = Locations(cfg)
    readers = cfg.get("readers") or READERS
    if spark is None and "spark" in readers:
        from check_tables import Spark

        spark = Spark()
    out = {"ok": True, "mirrors": {}}
    con = None
    for m in cfg["mirrors"]:
        res = {"changelog": m["changelog"], "readers": {}}
        out["mirrors"][m["mirror"]] = res
        try:
            if con is None:
                con = duckdb_connection(loc)
            v, w, app_id, key = mirror_state(loc, m)
            res.update({"mirror_version": v, "w": w, "app_id": app_id, "key": key})
            cl_src = duckdb_src(con, loc, m["changelog"])
            columns = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM delta_scan('{cl_src}')").fetchall()]
            view = view_at(con, cl_src, w, key, columns)
            m_src = duckdb_src(con, loc, m["mirror"])
        except Exception as e:
            res["error"] = f"{type(e).__name__}: {e}"
            out["ok"] = False
            continue
        res["view_rows"] = len(view)
        fns = {
            "duckdb": lambda: read_duckdb(con, m_src, v),
            "deltalake": lambda: read_deltalake(loc, m["mirror"], v),
            "polars": lambda: read_polars(loc, m["mirror"], v),
            "spark": lambda: read_spark(spark, loc, m["mirror"], v),
        }
        for name in readers:

            def one(fn=fns[name]):
                diffs, summary = compare(view, fn(), key)
                if diffs:
                    summary["diffs"] = diffs
                return summary

            r = attempt(one)
            res["readers"][name] = r
            if r.get("error") or r.get("diffs") or r.get("columns_only_in_view") or r.get("columns_only_in_mirror"):
                out["ok"] = False
    return out


def main():
    out = check(json.loads(sys.argv[1]))
    print(json.dumps(out, default=str))
    sys.stdout.flush()
    # Skip the interpreter teardown, where delta-rs can abort.
    os._exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
