"""Clean one hour's product catalog snapshot (JSON lines) into Parquet, with every rejected line kept.

Rules, in order: malformed_row (not a JSON object), bad_encoding (not UTF-8), field_too_long,
missing_product_id, missing_category,
bad_price (not a number, or negative), duplicate (an older ``updated_at`` of the same product_id).
cleaned + rejected = input, always.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from include import lake, paths
from include.jobs import common

RAW_COLUMNS = ["product_id", "name", "category", "price", "updated_at"]
RAW_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in RAW_COLUMNS] + [T.StructField("_corrupt_record", T.StringType())]
)
TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ssX"


def extract(spark, path: str) -> DataFrame:
    return spark.read.json(
        path, schema=RAW_SCHEMA, mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt_record", encoding="UTF-8"
    )


def transform(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split catalog lines into (clean, rejects). Pure: no I/O."""
    df = raw.withColumn("_row", F.monotonically_increasing_id())
    for c in RAW_COLUMNS:
        df = df.withColumn(f"_raw_{c}", F.col(c)).withColumn(c, F.nullif(F.trim(F.col(c)), F.lit("")))
    df = df.withColumn("product_id", F.upper(F.col("product_id"))).withColumn("category", F.lower(F.col("category")))
    df = df.withColumn("_price", F.col("price").try_cast("double")).withColumn(
        "_updated", F.try_to_timestamp(F.col("updated_at"), F.lit(TS_FORMAT))
    )
    reason = common.first_reason(
        [
            ("malformed_row", F.col("_corrupt_record").isNotNull()),
            *common.text_rules(RAW_COLUMNS),
            ("missing_product_id", F.col("product_id").isNull()),
            ("missing_category", F.col("category").isNull()),
            ("bad_price", F.col("_price").isNull() | (F.col("_price") < 0) | F.isnan(F.col("_price"))),
        ]
    )
    df = df.withColumn(common.REASON, reason)
    latest = Window.partitionBy("product_id").orderBy(F.col("_updated").desc_nulls_last(), F.col("_row").desc())
    valid = df.where(F.col(common.REASON).isNull()).withColumn("_rank", F.row_number().over(latest))
    dupes = valid.where(F.col("_rank") > 1).withColumn(common.REASON, F.lit("duplicate"))
    clean = valid.where(F.col("_rank") == 1).select(
        "product_id",
        "name",
        "category",
        F.col("_price").alias("price"),
        F.col("_updated").alias("updated_at"),
    )
    rejects = (
        df.where(F.col(common.REASON).isNotNull())
        .unionByName(dupes.drop("_rank"))
        .select(
            *[F.col(f"_raw_{c}").alias(c) for c in RAW_COLUMNS],
            F.col("_corrupt_record").alias("raw_line"),
            common.REASON,
        )
    )
    return clean, rejects


def main(argv: Sequence[str] | None = None) -> None:
    args = common.hour_args(__doc__.splitlines()[0], argv)
    path = common.input_file(args.lake_root, lake.RAW_PRODUCTS, args.start, lake.RAW_PRODUCTS_FILE)
    spark = common.session(f"ingest_product_data {args.start:%Y-%m-%dT%H}")
    raw = extract(spark, paths.hadoop_literal(path)).cache()
    clean, rejects = transform(raw)
    out = common.publish(clean, args.lake_root, lake.CLEAN_PRODUCTS, args.start, ["product_id"], args)
    # Rejects have no unique key: sort by every column so re-runs write identical bytes.
    rej = common.publish(rejects, args.lake_root, lake.REJECTS_PRODUCTS, args.start, rejects.columns, args)
    rejected = spark.read.parquet(paths.hadoop_literal(rej))
    metrics = {
        "dataset": "product_catalog",
        "hour": args.start.isoformat(),
        "input": str(path),
        "output": str(out),
        "rejects": str(rej),
        "rows_in": raw.count(),
        "rows_clean": spark.read.parquet(paths.hadoop_literal(out)).count(),
        "rows_rejected": rejected.count(),
        "rejected_by_reason": common.count_by_reason(rejected),
    }
    if metrics["rows_clean"] + metrics["rows_rejected"] != metrics["rows_in"]:
        raise RuntimeError(f"row accounting broken: {metrics}")
    common.finish(args, metrics, application_id=spark.sparkContext.applicationId)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
