"""Clean one hour of raw customer activity (CSV) into Parquet, with every rejected row kept.

Rules, applied in order (the first failing rule is the row's ``reject_reason``):
malformed_row (wrong column count, broken quoting), bad_encoding (not UTF-8), nul_character,
field_too_long, missing_order_id, missing_customer_id, bad_timestamp (not RFC 3339 with an offset),
outside_interval, bad_email, missing_product_id, bad_quantity (not an integer in
[1, ``lake.MAX_QUANTITY``]), duplicate (an older version of an
order_id that appears again: the latest ``ts`` wins). cleaned + rejected = input, always.

The file is RFC 4180 CSV (``inputs.SPARK_CSV_OPTIONS``): one row is one record, which may span lines.
No value is a missing-value sentinel: ``NA`` is Namibia in ``country`` and a real id elsewhere; an
empty field is missing, and ``NA`` in ``quantity`` is simply not a number (``bad_quantity``).

"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from include import lake, paths
from include.jobs import accounting, common, inputs

RAW_COLUMNS = ["order_id", "customer_id", "name", "email", "country", "product_id", "quantity", "ts"]
RAW_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in RAW_COLUMNS] + [T.StructField("_corrupt_record", T.StringType())]
)
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"


def extract(spark, path: str) -> DataFrame:
    """Every record of the CSV file as strings (RFC 4180; no sentinel: only an empty field is NULL)."""
    return spark.read.csv(
        path,
        schema=RAW_SCHEMA,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord="_corrupt_record",
        enforceSchema=False,
        **inputs.SPARK_CSV_OPTIONS,
    )


def normalised(column: str) -> Column:
    """The raw text of ``column`` as validated and published: trimmed, empty as NULL (``order_id`` upper-cased,
    so " o1" and "O1" are the same order)."""
    text = F.nullif(F.trim(F.col(column)), F.lit(""))
    return F.upper(text) if column.removeprefix("_raw_") == "order_id" else text


#: The columns :func:`classify` keeps: the dedupe key, the typed values, the raw text, the reason.
#: The other normalised texts are recomputed by :func:`split` (cheap): fewer columns through the window's
#: shuffle and sort and in the cache (about a third less time there, bench/results/ingest_passes.md).
CLASSIFIED_COLUMNS = ["order_id", "_qty", "_ts", "_corrupt_record", *[f"_raw_{c}" for c in RAW_COLUMNS], common.REASON]


def classify(raw: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """Every raw row once (:data:`CLASSIFIED_COLUMNS`), with its ``reject_reason`` (NULL: clean), the dedupe
    window included. Pure: no I/O.

    The clean rows and the rejects are two filters of this one frame (:func:`split`), so a job that caches
    it computes the window once.
    """
    df = raw.withColumn("_row", F.monotonically_increasing_id())
    df = df.select(
        *[normalised(c).alias(c) for c in RAW_COLUMNS],
        "_corrupt_record",
        "_row",
        *[F.col(c).alias(f"_raw_{c}") for c in RAW_COLUMNS],
    )
    ts = common.parse_timestamp(F.col("ts"))
    qty = common.parse_finite(F.col("quantity"), "int", 1, lake.MAX_QUANTITY)
    df = df.withColumn("_ts", ts).withColumn("_qty", qty)
    reason = common.first_reason(
        [
            ("malformed_row", F.col("_corrupt_record").isNotNull()),
            *common.text_rules(RAW_COLUMNS),
            ("missing_order_id", F.col("order_id").isNull()),
            ("missing_customer_id", F.col("customer_id").isNull()),
            ("bad_timestamp", F.col("_ts").isNull()),
            ("outside_interval", (F.col("_ts") < F.lit(start)) | (F.col("_ts") >= F.lit(end))),
            ("bad_email", F.col("email").isNull() | ~F.col("email").rlike(EMAIL_RE)),
            ("missing_product_id", F.col("product_id").isNull()),
            ("bad_quantity", F.col("_qty").isNull()),
        ]
    )
    df = df.withColumn(common.REASON, reason)
    # Latest ts wins; on an exact tie the row further down the file wins (deterministic).
    ranked = common.reject_older_versions(df, "order_id", F.col("_ts").desc(), F.col("_row").desc())
    return ranked.select(*CLASSIFIED_COLUMNS)


def split(classified: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``classified`` (from :func:`classify`) as (clean, rejects): the clean columns typed and normalised,
    the rejects as they were read plus ``raw_line`` and ``reject_reason``. Pure: no I/O."""
    clean = classified.where(F.col(common.REASON).isNull()).select(
        "order_id",
        normalised("_raw_customer_id").alias("customer_id"),
        normalised("_raw_name").alias("name"),
        F.lower(normalised("_raw_email")).alias("email"),
        F.upper(normalised("_raw_country")).alias("country"),
        F.upper(normalised("_raw_product_id")).alias("product_id"),
        F.col("_qty").alias("quantity"),
        F.col("_ts").alias("ts"),
    )
    raw_cols = [F.col(f"_raw_{c}").alias(c) for c in RAW_COLUMNS]
    rejects = classified.where(F.col(common.REASON).isNotNull()).select(
        *raw_cols, F.col("_corrupt_record").alias("raw_line"), common.REASON
    )
    return clean, rejects


def transform(raw: DataFrame, start: datetime, end: datetime) -> tuple[DataFrame, DataFrame]:
    """Split raw rows into (clean, rejects): :func:`split` of :func:`classify`. Pure: no I/O."""
    return split(classify(raw, start, end))


def run(spark: SparkSession, argv: Sequence[str]) -> dict:
    """The job in ``spark`` (a spark-submit driver's session or a Spark Connect one, configured by
    :func:`common.configure`):
    arguments as :func:`common.hour_args` takes them; returns the metrics it wrote.

    Spark actions: one aggregation (the counts; it fills the cache of the classified rows) and the two
    writes, which read that cache; the rows that landed come from the Parquet footers (docs/design.md,
    "Ingest passes").
    """
    args = common.hour_args(__doc__.splitlines()[0], argv)
    source = inputs.input_location(args.lake_root, lake.RAW_CUSTOMERS, args.start, lake.RAW_CUSTOMERS_FILE)
    path = inputs.readable_input(source, args.lake_root)
    inputs.check_csv_header(path, RAW_COLUMNS)
    raw = extract(spark, paths.hadoop_literal(path))
    with common.cached(classify(raw, args.start, args.end)) as classified:  # released for the next job
        counted = accounting.count_rows(classified)
        clean, rejects = split(classified)
        out = common.publish(clean, args.lake_root, lake.CLEAN_CUSTOMERS, args.start, ["order_id"], args)
        # Rejects have no unique key: sort by every column so re-runs write identical bytes.
        rej = common.publish(rejects, args.lake_root, lake.REJECTS_CUSTOMERS, args.start, rejects.columns, args)
        metrics = accounting.hour_metrics("customer_activity", args, source, out, rej, counted)
        common.finish(args, metrics, out, application_id=common.application_id(spark))
        return metrics


def main(argv: Sequence[str] | None = None) -> dict:
    """spark-submit's entry: :func:`run` in the driver's session."""
    return common.submit_main(run, "ingest_customer_data", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    common.run(main, sys.argv[1:])
