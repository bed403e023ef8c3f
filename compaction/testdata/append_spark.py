"""Appends rows to a Delta table with Spark and Delta Lake, as a Spark job
appending to a sink's table does.

Usage: append_spark.py TABLE_PATH ROWS OFFSET_BASE

Reads the first ROWS rows of the table, gives them _offset values from
OFFSET_BASE up so they stay distinguishable, and appends them with
df.write.format("delta").mode("append"). Timestamps are written as INT96,
the type Spark and Hive have long written: a data file the sink did not
write, with neither its tags nor its Parquet metadata.
"""

import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window


def main() -> None:
    path, rows, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("append-foreign")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.parquet.outputTimestampType", "INT96")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        # A test table has a handful of files: one task per stage is plenty.
        .config("spark.databricks.delta.snapshotPartitions", "1")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.format("delta").load(path).orderBy("_offset").limit(rows)
    offset = F.lit(base) + F.row_number().over(Window.orderBy("_offset")) - 1
    df = df.withColumn("_offset", offset.cast(df.schema["_offset"].dataType))
    df.coalesce(1).write.format("delta").mode("append").save(path)
    spark.stop()


if __name__ == "__main__":
    main()
