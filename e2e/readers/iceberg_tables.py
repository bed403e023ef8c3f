"""Independent readers of Iceberg tables for the end-to-end tests.

Reads every table named on the command line through an Iceberg REST
catalog, with PyIceberg (its own scan planning and Parquet reader), with
pyarrow over the data files PyIceberg's plan lists, and with DuckDB's
Iceberg extension attached to the same catalog, and prints one JSON
object: per table and reader, the row count, the number of distinct
(_topic, _partition, _offset) coordinates, and a SHA-256 digest of the
sorted coordinates, the same shape check_tables.py prints for Delta.

PyIceberg and DuckDB read every column, not just the coordinates, so a
data file whose column does not match the table's schema fails there; the
pyarrow reader also fails a data file any of whose columns lacks the field
ID the table's schema gives its name.

Spark is not among these readers: Apache Iceberg publishes no runtime for
the Spark version the Delta readers pin (requirements.txt), and the
runtime for the previous Spark does not load into it.

DuckDB loads its extensions from the duckdb-extension-* packages by path,
with automatic extension install off, so reading needs no network but the
catalog and the S3 server.

Usage: iceberg_tables.py CONFIG_JSON
       iceberg_tables.py --serve    (one CONFIG_JSON per stdin line, one
                                     result per stdout line)
  CONFIG_JSON: {"catalog_uri", "endpoint", "access_key", "secret_key",
                "region", "tables": ["namespace.table", ...],
                "warehouse": optional, "token": optional bearer token}
"""

import json
import os
import pathlib
import sys
from urllib.parse import urlparse

from check_tables import attempt, from_arrow, summarize


def catalog(cfg):
    from pyiceberg.catalog import load_catalog

    props = {
        "uri": cfg["catalog_uri"],
        "s3.endpoint": cfg["endpoint"],
        "s3.access-key-id": cfg["access_key"],
        "s3.secret-access-key": cfg["secret_key"],
        "s3.region": cfg["region"],
        "s3.force-virtual-addressing": "false",
    }
    if cfg.get("warehouse"):
        props["warehouse"] = cfg["warehouse"]
    if cfg.get("token"):
        props["token"] = cfg["token"]
    return load_catalog("e2e", **props)


def pyiceberg_scan(tbl):
    r = from_arrow(tbl.scan().to_arrow())
    snap = tbl.current_snapshot()
    r["snapshot"] = snap.snapshot_id if snap else None
    r["files"] = len(tbl.scan().plan_files())
    return r


def check_field_ids(tbl, path, s3):
    # Every column of a data file carries the field ID the table's schema
    # gives its name: readers that resolve columns by ID find them all.
    import pyarrow.parquet as pq

    ids = {f.name: f.field_id for f in tbl.schema().fields}
    for field in pq.read_schema(path, filesystem=s3):
        got = (field.metadata or {}).get(b"PARQUET:field_id")
        if got is None or int(got) != ids.get(field.name):
            raise ValueError(f"{path}: column {field.name} has field ID {got!r}, the table's schema {ids.get(field.name)}")


def pyarrow_scan(tbl, s3):
    import pyarrow.parquet as pq

    t, p, o = [], [], []
    for task in tbl.scan().plan_files():
        if task.delete_files:
            raise ValueError(f"{task.file.file_path} has delete files: the sink writes none")
        path = task.file.file_path.removeprefix("s3://")
        check_field_ids(tbl, path, s3)
        part = pq.read_table(path, filesystem=s3, columns=["_topic", "_partition", "_offset"])
        t += part.column("_topic").to_pylist()
        p += part.column("_partition").to_pylist()
        o += part.column("_offset").to_pylist()
    return summarize(t, p, o)


def duckdb_connection(cfg):
    import duckdb
    import duckdb_extension_avro
    import duckdb_extension_httpfs
    import duckdb_extension_iceberg

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for mod, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        ext = next(pathlib.Path(mod.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
        con.sql(f"LOAD '{ext}'")
    con.execute(
        "CREATE SECRET e2e (TYPE S3, KEY_ID $key, SECRET $secret, ENDPOINT $host, URL_STYLE 'path', USE_SSL false, REGION $region)",
        {"key": cfg["access_key"], "secret": cfg["secret_key"], "host": urlparse(cfg["endpoint"]).netloc, "region": cfg["region"]},
    )
    auth = f"TOKEN '{cfg['token']}'" if cfg.get("token") else "AUTHORIZATION_TYPE 'none'"
    warehouse = cfg.get("warehouse") or "warehouse"
    con.sql(f"ATTACH '{warehouse}' AS ice (TYPE iceberg, ENDPOINT '{cfg['catalog_uri']}', {auth})")
    return con


def duckdb_scan(con, name):
    ns, table = name.rsplit(".", 1)
    # Every column is hashed so that DuckDB reads and converts all of them.
    rows = con.sql(f'SELECT _topic, _partition, _offset, hash(COLUMNS(*)) FROM ice."{ns}"."{table}"').fetchall()
    return summarize([x[0] for x in rows], [x[1] for x in rows], [x[2] for x in rows])


def check(cfg):
    import pyarrow.fs

    cat = catalog(cfg)
    s3 = pyarrow.fs.S3FileSystem(
        access_key=cfg["access_key"],
        secret_key=cfg["secret_key"],
        endpoint_override=urlparse(cfg["endpoint"]).netloc,
        scheme=urlparse(cfg["endpoint"]).scheme or "http",
        region=cfg["region"],
    )
    duck = attempt(lambda: duckdb_connection(cfg))
    out = {}
    for name in cfg["tables"]:
        res = {}
        tbl = attempt(lambda: cat.load_table(name))
        if isinstance(tbl, dict):
            res["pyiceberg"] = tbl
            out[name] = res
            continue
        res["pyiceberg"] = attempt(lambda: pyiceberg_scan(tbl))
        res["pyarrow"] = attempt(lambda: pyarrow_scan(tbl, s3))
        res["duckdb"] = duck if isinstance(duck, dict) else attempt(lambda: duckdb_scan(duck, name))
        out[name] = res
    return out


def main():
    if sys.argv[1:] == ["--serve"]:
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        for line in sys.stdin:
            answers.write(json.dumps(check(json.loads(line))) + "\n")
            answers.flush()
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(check(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
