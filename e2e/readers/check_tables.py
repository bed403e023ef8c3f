"""Independent readers for the end-to-end tests.

Reads every table named on the command line with delta-rs (deltalake),
with pyarrow over the data files the Delta log lists, with DuckDB's
delta_scan, with Polars, and with Apache Spark and Delta Lake's own
reader, and prints one JSON object: per table and reader, the row count,
the number of distinct (_topic, _partition, _offset) coordinates, and a
SHA-256 digest of the sorted coordinates ("topic/partition/offset"
lines). The Go test compares these with what it produced.

Polars, Spark, delta-rs and pyarrow read every column, not just the
coordinates: Spark and Polars refuse a file whose physical column type
differs from the table's schema only when they read that column.

Spark reads the tables from the S3 server's local copy (local_root), so
it needs no S3 connector. Its JVM takes tens of seconds to start, so the
e2e suite runs this script once, as a server (--serve), and sends it one
CONFIG_JSON line per check: one Spark JVM per run reads every table.

A table with deletion vectors (a mirror table) is read by delta-rs
through its DataFusion QueryBuilder, since to_pyarrow_table refuses such
tables, and the pyarrow reader drops the rows each file's deletion vector
deletes (as delta-rs decodes them): a reader of the files alone would
return every row the table ever held.

Usage: check_tables.py CONFIG_JSON
       check_tables.py --serve    (one CONFIG_JSON per stdin line, one
                                   result per stdout line; a line with
                                   "mirrors" is mirror_check.py's)
  CONFIG_JSON: {"endpoint", "bucket", "prefix", "access_key", "secret_key",
                "region", "tables": [...], "local_root": optional dir where
                the S3 server keeps bucket objects as files}
"""

import hashlib
import json
import os
import pathlib
import sys
import time
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
    start = time.monotonic()
    try:
        r = fn()
    except Exception as e:  # a reader failing is a result, not a crash
        r = {"error": f"{type(e).__name__}: {e}"}
    if isinstance(r, dict):
        r["seconds"] = round(time.monotonic() - start, 3)
    return r


class Spark:
    """One Spark session with Delta Lake, started on first use."""

    def __init__(self):
        self.session = None

    def get(self):
        if self.session is None:
            from delta import configure_spark_with_delta_pip
            from pyspark.sql import SparkSession

            builder = (
                SparkSession.builder.master("local[2]")
                .appName("evodb-sink-e2e-readers")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "1")
                .config("spark.driver.memory", "1g")
            )
            # The Delta jars matching the delta-spark package come from
            # Maven Central (python.sh install fetches them into Ivy's cache).
            self.session = configure_spark_with_delta_pip(builder).getOrCreate()
            self.session.sparkContext.setLogLevel("ERROR")
        return self.session


def spark_scan(spark, path):
    from pyspark.sql import functions as F

    df = spark.get().read.format("delta").load(path)
    # One job per table: the hash of every column makes Spark read (and
    # type-check) every column of every file, and the coordinates come
    # back as one sorted list instead of row by row.
    got = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sort_array(F.collect_set(F.concat_ws("/", *COLS))).alias("coords"),
        F.sum(F.hash(*[F.col(f"`{c}`") for c in df.columns])).alias("hash"),
    ).first()
    coords = got["coords"]
    digest = hashlib.sha256("\n".join(coords).encode()).hexdigest()
    return {"rows": got["rows"], "distinct": len(coords), "digest": digest}


def polars_scan(uri, opts, local):
    import polars as pl

    try:
        df = pl.read_delta(uri, storage_options=opts)
        mode = "s3"
    except Exception:
        if not local:
            raise
        df, mode = pl.read_delta(local), "local"
    r = summarize(df["_topic"].to_list(), df["_partition"].to_list(), df["_offset"].to_list())
    r["mode"] = mode
    return r


def main():
    if sys.argv[1:] == ["--serve"]:
        # Spark's JVM and libraries may print to standard output: answers go
        # to a copy of it, everything else to standard error.
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        spark = Spark()
        for line in sys.stdin:
            cfg = json.loads(line)
            if "mirrors" in cfg:
                import mirror_check

                answer = mirror_check.check(cfg, spark)
            else:
                answer = check(cfg, spark)
            answers.write(json.dumps(answer, default=str) + "\n")
            answers.flush()
        return
    print(json.dumps(check(json.loads(sys.argv[1]), Spark())))


def check(cfg, spark):
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
            if has_deletion_vectors(dt):
                # to_pyarrow_table refuses a table with deletion vectors
                # (a mirror table); delta-rs's DataFusion reader applies them.
                r = from_arrow(query_all(dt))
                r["deletion_vectors"] = True
            else:
                r = from_arrow(dt.to_pyarrow_table())
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
            # A file's deleted rows (its deletion vector) are no longer in
            # the table: without applying them this reader would count
            # every row a mirror table ever held.
            keep = deletion_masks(dt)
            parts = []
            for u in dt.file_uris():
                part = pq.read_table(u.removeprefix("s3://"), filesystem=s3)
                if file_key(u) in keep:
                    part = part.filter(keep.pop(file_key(u)))
                parts.append(part)
            if keep:
                raise RuntimeError(f"deletion vectors of files the table does not list: {sorted(keep)}")
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
        local = os.path.join(cfg["local_root"], cfg["bucket"], key) if cfg.get("local_root") else ""
        res["polars"] = attempt(lambda: polars_scan(uri, opts, local))
        if local:
            res["spark"] = attempt(lambda: spark_scan(spark, local))
        else:
            res["spark"] = {"error": "no local copy of the bucket (local_root): Spark reads only local tables here"}
        out[table] = res
    return out


def has_deletion_vectors(dt):
    """Whether the table may have deleted rows in the files it lists."""
    return "deletionVectors" in (dt.protocol().reader_features or [])


def query_all(dt):
    import deltalake
    import pyarrow as pa

    reader = deltalake.QueryBuilder().register("t", dt).execute("SELECT * FROM t")
    return pa.RecordBatchReader.from_stream(reader).read_all()


def file_key(uri):
    """A file URI as both file_uris and deletion_vectors spell it (the
    latter prefixes local paths with file://)."""
    return uri.removeprefix("file://")


def deletion_masks(dt):
    """The rows to keep of each file with a deletion vector, by file URI."""
    import pyarrow as pa

    if not has_deletion_vectors(dt):
        return {}
    dvs = pa.RecordBatchReader.from_stream(dt.deletion_vectors()).read_all()
    return {
        file_key(u): pa.array(m, pa.bool_())
        for u, m in zip(dvs.column("filepath").to_pylist(), dvs.column("selection_vector").to_pylist())
    }


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
