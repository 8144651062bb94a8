"""Mean Age per Year of the Olympic athlete_events file with PySpark, written to the lake.

Prints the schema (as the classic example does), computes ``groupBy('Year').mean('Age')`` ordered by
Year, and publishes Parquet + CSV under ``<lake>/athletes/mean_age_by_year/`` atomically. The input is
read with the file's own dialect and taken literally as a path (``read_athletes_spark``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from include import lake, lake_fs, paths
from include.athletes.engines import mean_age_spark_df, read_athletes_spark
from include.jobs import common, inputs

OUTPUT = "athletes/mean_age_by_year"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="athlete_events.csv (the real file or a generated one)")
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--metrics-file")
    args = parser.parse_args(argv)
    paths.check_lake_root(args.lake_root)
    paths.require_local_lake(args.lake_root, "the athlete job")
    if not Path(args.input).is_file():
        raise inputs.NoInputError(
            f"no input: {args.input} does not exist (the DAG's ensure_input task puts the shipped real file there)"
        )

    spark = common.session("athlete_age_by_year")
    athletes = read_athletes_spark(spark, args.input)
    athletes.printSchema()
    result = mean_age_spark_df(athletes).coalesce(1)

    final = Path(args.lake_root) / OUTPUT
    staging = Path(args.lake_root) / "_staging" / f"athletes.{uuid.uuid4().hex}"
    result.write.parquet(str(staging / "parquet"))
    result.write.option("header", True).csv(str(staging / "csv"))
    rows = result.collect()
    for sub in ("parquet", "csv"):
        for junk in list((staging / sub).glob(".*.crc")) + list((staging / sub).glob("_SUCCESS")):
            junk.unlink()
    lake.publish_dir(staging, final)  # the same atomic swap as every hourly partition

    metrics = {
        "output": str(final),
        "years": len(rows),
        "rows_in": athletes.count(),
        "ages_counted": athletes.where("Age IS NOT NULL").count(),
        "first_year": rows[0]["Year"] if rows else None,
        "last_year": rows[-1]["Year"] if rows else None,
    }
    lake.write_json(final / lake.SUMMARY_FILE, metrics)
    for r in rows:
        print(f"{r['Year']}\t{r['mean_age']:.4f}")
    if args.metrics_file:
        lake_fs.write_json(args.metrics_file, {**metrics, "application_id": spark.sparkContext.applicationId})
    spark.stop()


if __name__ == "__main__":
    common.run(main, sys.argv[1:])  # a bad setting or a missing input exits DATA_ERROR_EXIT: not retried
