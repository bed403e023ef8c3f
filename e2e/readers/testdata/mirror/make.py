"""Writes the mirror checker's fixture with Spark and Delta Lake: a change
log "cl" and a mirror table "m" of it with deletion vectors.

    make.py DIR    (writes DIR/cl and DIR/m; the committed copies drop
                    Spark's .crc files and _staged_commits)

cl has three versions of changes to keys 1..6 (an older change of key 4
arriving late, deletes of keys 3 and 5); m holds the current state of cl
at version 1: the rows of versions 0 and 1, with the superseded rows and
the deleted key deleted by deletion vectors, and the txn
evodb-mirror/TEST = 1, which the test names as the mirror's appId.
"""

import datetime
import decimal
import shutil
import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession
from pyspark.sql import types as T


def main():
    base = sys.argv[1]
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("mirror-fixture")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    schema = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("name", T.StringType()),
            T.StructField("amount", T.DecimalType(10, 2)),
            T.StructField("at", T.TimestampType()),
            T.StructField("_op", T.StringType()),
            T.StructField("_lsn", T.LongType()),
            T.StructField("_ts", T.TimestampType()),
            T.StructField("_topic", T.StringType()),
            T.StructField("_partition", T.IntegerType()),
            T.StructField("_offset", T.LongType()),
        ]
    )

    def ts(s):
        return datetime.datetime(2026, 1, 1, 0, 0, s, 123000)

    def row(id, name, amount, op, lsn, offset, partition=0):
        return (id, name, None if amount is None else decimal.Decimal(amount), ts(id) if name else None,
                op, lsn, ts(lsn % 60), "t", partition, offset)

    v0 = [row(i, f"n{i}", f"{i}.50", "INSERT", 10 + i, i) for i in range(1, 6)]
    v1 = [
        row(2, "n2b", "2.75", "UPDATE", 20, 6),
        row(3, None, None, "DELETE", 21, 7),
        row(6, "n6", "6.00", "INSERT", 22, 8),
        row(4, "n4-old", "0.01", "UPDATE", 9, 9),  # older than key 4's insert: the view ignores it
    ]
    v2 = [row(1, "n1b", "1.25", "UPDATE", 30, 10), row(5, None, None, "DELETE", 31, 11, 1)]
    cl, m = f"{base}/cl", f"{base}/m"
    for p in (cl, m):
        shutil.rmtree(p, ignore_errors=True)
    for rows in (v0, v1, v2):
        spark.createDataFrame(rows, schema).coalesce(1).write.format("delta").mode("append").save(cl)
    spark.createDataFrame(v0, schema).coalesce(1).write.format("delta").option("delta.enableDeletionVectors", "true").save(m)
    spark.createDataFrame(v1[:3], schema).coalesce(1).write.format("delta").mode("append").save(m)
    spark.sql(f"DELETE FROM delta.`{m}` WHERE (id = 2 AND _lsn = 12) OR (id = 3)")
    (spark.createDataFrame([], schema).write.format("delta").mode("append")
     .option("txnAppId", "evodb-mirror/TEST").option("txnVersion", 1).save(m))


if __name__ == "__main__":
    main()
