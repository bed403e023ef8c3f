"""Independent readers for the end-to-end tests.

Reads every table named on the command line with delta-rs (deltalake),
with pyarrow over the data files the Delta log lists, and with DuckDB's
delta_scan, and prints one JSON object: per table and reader, the row
count, the number of distinct (_topic, _partition, _offset) coordinates,
and a SHA-256 digest of the sorted coordinates ("topic/partition/offset"
lines). The Go test compares these with what it produced.

Usage: check_tables.py CONFIG_JSON
  CONFIG_JSON: {"endpoint", "bucket", "prefix", "access_key", "secret_key",
                "region", "tables": [...], "local_root": optional dir where
                the S3 server keeps bucket objects as files}
"""

import hashlib
import json
import os
import pathlib
import sys
from urllib.parse import urlparse

COLS = ["_topic", "_partition", "_offset"]


def summarize(topics, partitions, offsets):
    coords = sorted(f"{t}/{p}/{o}" for t, p, o in zip(topics, partitions, offsets))
    distinct = sorted(set(coords))
    digest = hashlib.sha256("\n".join(distinct).encode()).hexdigest()
    return {"rows": len(coords), "distinct": len(distinct), "digest": digest}


def from_arrow(tbl):
    return summarize(
        tbl.column("_topic").to_pylist(),
        tbl.column("_partition").to_pylist(),
        tbl.column("_offset").to_pylist(),
    )


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # a reader failing is a result, not a crash
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    cfg = json.loads(sys.argv[1])
    import deltalake
    import pyarrow.fs
    import pyarrow.parquet as pq

    endpoint = cfg["endpoint"]
    host = urlparse(endpoint).netloc
    opts = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": cfg["access_key"],
        "AWS_SECRET_ACCESS_KEY": cfg["secret_key"],
        "AWS_REGION": cfg["region"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        "AWS_FORCE_PATH_STYLE": "true",
    }
    s3 = pyarrow.fs.S3FileSystem(
        access_key=cfg["access_key"],
        secret_key=cfg["secret_key"],
        endpoint_override=host,
        scheme="http",
        region=cfg["region"],
    )
    duck = attempt(lambda: duckdb_connection(cfg, host))
    out = {}
    for table in cfg["tables"]:
        key = "/".join(p for p in (cfg["prefix"], table) if p)
        uri = f"s3://{cfg['bucket']}/{key}"
        res = {}

        def delta():
            dt = deltalake.DeltaTable(uri, storage_options=opts)
            r = from_arrow(dt.to_pyarrow_table(columns=COLS))
            r["version"] = dt.version()
            r["files"] = len(dt.file_uris())
            return r, dt

        d = attempt(lambda: delta())
        if isinstance(d, dict):
            res["deltalake"] = d
            out[table] = res
            continue
        res["deltalake"], dt = d

        def files():
            parts = [pq.read_table(u.removeprefix("s3://"), filesystem=s3, columns=COLS) for u in dt.file_uris()]
            t, p, o = [], [], []
            for part in parts:
                t += part.column("_topic").to_pylist()
                p += part.column("_partition").to_pylist()
                o += part.column("_offset").to_pylist()
            return summarize(t, p, o)

        res["pyarrow"] = attempt(files)
        if isinstance(duck, dict):
            res["duckdb"] = duck
        else:
            con, mode = duck
            res["duckdb"] = attempt(lambda: duckdb_scan(con, mode, cfg, key, uri))
        out[table] = res
    print(json.dumps(out))


def duckdb_connection(cfg, host):
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    con.sql(f"LOAD '{ext}'")
    try:
        con.sql(
            "CREATE SECRET e2e (TYPE S3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false, REGION ?)".replace(
                "?", "'{}'"
            ).format(cfg["access_key"], cfg["secret_key"], host, cfg["region"])
        )
        return con, "s3"
    except Exception:
        if not cfg.get("local_root"):
            raise
        return con, "local"


def duckdb_scan(con, mode, cfg, key, uri):
    def scan(src):
        rows = con.sql(f"SELECT _topic, _partition, _offset FROM delta_scan('{src}')").fetchall()
        r = summarize([x[0] for x in rows], [x[1] for x in rows], [x[2] for x in rows])
        r["mode"] = mode if src == uri else "local"
        return r

    if mode == "s3":
        try:
            return scan(uri)
        except Exception:
            if not cfg.get("local_root"):
                raise
    return scan(os.path.join(cfg["local_root"], cfg["bucket"], key))


if __name__ == "__main__":
    main()
    # Done: skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
