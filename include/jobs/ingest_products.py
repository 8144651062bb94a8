"""Clean one hour's product catalog snapshot (JSON lines) into Parquet, with every rejected line kept.

Rules, in order: malformed_row (a line that is not one JSON object: broken JSON, an array, a bare
value), bad_encoding (not UTF-8), nul_character, field_too_long, missing_product_id, missing_category,
bad_price (not a finite number in [0, ``lake.MAX_PRICE``]: ``free``, ``-1``, ``NaN``, ``Infinity``,
``1e999``), bad_timestamp (``updated_at`` missing or not RFC 3339 with an offset: it decides dedupe),
duplicate (an older ``updated_at`` of the same product_id). cleaned + rejected = input, always.

One record is one non-blank line (JSON Lines); a zero-byte or blank file fails the hour
(``inputs.check_jsonl_not_empty``), and so does one where no line is a valid product (either would
reject every order of the hour). No value is a missing-value sentinel: only JSON ``null`` or an empty
string is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from include import lake, paths
from include.jobs import accounting, common, inputs

RAW_COLUMNS = ["product_id", "name", "category", "price", "updated_at"]
RAW_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in RAW_COLUMNS] + [T.StructField("_corrupt_record", T.StringType())]
)


def extract(spark, path: str) -> DataFrame:
    """One row per non-blank line, fields as strings; ``_corrupt_record`` holds any line that is not an object.

    Read as text and parsed per line, because Spark's JSON reader turns a line holding an array
    ``[{…},{…}]`` into several rows, which would count one line as two clean products.
    """
    lines = spark.read.text(path, wholetext=False).select(
        F.regexp_replace(F.col("value"), "^\ufeff", "").alias("line")  # a UTF-8 BOM: the text reader keeps it
    )
    lines = lines.where(~F.col("line").rlike(r"^\s*$"))
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}
    parsed = lines.select("line", F.from_json("line", RAW_SCHEMA, options).alias("j"))
    not_object = ~one_json_object(F.col("line")) | F.col("j._corrupt_record").isNotNull()
    return parsed.select(
        *[F.when(~not_object, F.col(f"j.{c}")).alias(c) for c in RAW_COLUMNS],
        F.when(not_object, F.col("line")).alias("_corrupt_record"),
    )


#: JSON nesting a catalog line may have (objects/arrays inside values); deeper lines are ``malformed_row``.
MAX_NESTING = 8


def one_json_object(line: Column) -> Column:
    """True when ``line`` is exactly one JSON object (whitespace around it allowed).

    Spark's ``from_json`` (and ``try_parse_json``) parse the first value and ignore whatever follows, so
    ``{"product_id": "P1", …} {"product_id": "P2", …}`` would keep P1 and silently drop P2. Here string
    literals are blanked, then innermost ``{…}``/``[…]`` groups are folded to ``0`` up to
    :data:`MAX_NESTING` times; one object leaves exactly ``0``.
    """
    skeleton = F.regexp_replace(line, r'"(?:[^"\\]|\\.)*"', '""')
    for _ in range(MAX_NESTING):
        skeleton = F.regexp_replace(skeleton, r"\{[^{}\[\]]*\}|\[[^{}\[\]]*\]", "0")
    return line.rlike(r"^\s*\{") & skeleton.rlike(r"^\s*0\s*$")


def classify(raw: DataFrame) -> DataFrame:
    """Every catalog line once, with its ``reject_reason`` (NULL: clean), the dedupe window included.
    Pure: no I/O. The clean rows and the rejects are two filters of this frame (:func:`split`)."""
    df = raw.withColumn("_row", F.monotonically_increasing_id())
    for c in RAW_COLUMNS:
        df = df.withColumn(f"_raw_{c}", F.col(c)).withColumn(c, F.nullif(F.trim(F.col(c)), F.lit("")))
    df = df.withColumn("product_id", F.upper(F.col("product_id"))).withColumn("category", F.lower(F.col("category")))
    df = df.withColumn("_price", common.parse_finite(F.col("price"), "double", 0, lake.MAX_PRICE)).withColumn(
        "_updated", common.parse_timestamp(F.col("updated_at"))
    )
    reason = common.first_reason(
        [
            ("malformed_row", F.col("_corrupt_record").isNotNull()),
            *common.text_rules(RAW_COLUMNS),
            ("missing_product_id", F.col("product_id").isNull()),
            ("missing_category", F.col("category").isNull()),
            ("bad_price", F.col("_price").isNull()),
            ("bad_timestamp", F.col("_updated").isNull()),
        ]
    )
    df = df.withColumn(common.REASON, reason)
    return common.reject_older_versions(df, "product_id", F.col("_updated").desc(), F.col("_row").desc())


def split(classified: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``classified`` (from :func:`classify`) as (clean, rejects). Pure: no I/O."""
    clean = classified.where(F.col(common.REASON).isNull()).select(
        "product_id",
        "name",
        "category",
        F.col("_price").alias("price"),
        F.col("_updated").alias("updated_at"),
    )
    rejects = classified.where(F.col(common.REASON).isNotNull()).select(
        *[F.col(f"_raw_{c}").alias(c) for c in RAW_COLUMNS],
        F.col("_corrupt_record").alias("raw_line"),
        common.REASON,
    )
    return clean, rejects


def transform(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split catalog lines into (clean, rejects): :func:`split` of :func:`classify`. Pure: no I/O."""
    return split(classify(raw))


def run(spark: SparkSession, argv: Sequence[str]) -> dict:
    """The job in ``spark`` (a spark-submit driver's session or a Spark Connect one, configured by
    :func:`common.configure`):
    arguments as :func:`common.hour_args` takes them; returns the metrics it wrote.

    Spark actions: one aggregation (the counts, and the check that some product is valid; it fills the
    cache of the classified lines) and the two writes, which read that cache; the rows that landed come
    from the Parquet footers (docs/design.md, "Ingest passes").
    """
    args = common.hour_args(__doc__.splitlines()[0], argv)
    source = inputs.input_location(args.lake_root, lake.RAW_PRODUCTS, args.start, lake.RAW_PRODUCTS_FILE)
    path = inputs.readable_input(source, args.lake_root)
    inputs.check_jsonl_not_empty(path)
    with common.cached(classify(extract(spark, paths.hadoop_literal(path)))) as classified:  # released for the next job
        counted = accounting.count_rows(classified)
        if counted.clean == 0:
            # As a zero-byte file: publishing it would reject every order of the hour as unknown_product_id.
            raise inputs.InputFormatError(
                f"{source} holds no valid product ({counted.rows_in} lines, rejected by reason: "
                f"{counted.by_reason}): fix the producer and re-send the snapshot; "
                "nothing was published for this hour"
            )
        clean, rejects = split(classified)
        out = common.publish(clean, args.lake_root, lake.CLEAN_PRODUCTS, args.start, ["product_id"], args)
        # Rejects have no unique key: sort by every column so re-runs write identical bytes.
        rej = common.publish(rejects, args.lake_root, lake.REJECTS_PRODUCTS, args.start, rejects.columns, args)
        metrics = accounting.hour_metrics("product_catalog", args, source, out, rej, counted)
        common.finish(args, metrics, out, application_id=common.application_id(spark))
        return metrics


def main(argv: Sequence[str] | None = None) -> dict:
    """spark-submit's entry: :func:`run` in the driver's session."""
    return common.submit_main(run, "ingest_product_data", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    common.run(main, sys.argv[1:])
