"""The thin I/O shell shared by the jobs: arguments, session, atomic publish, metrics."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from include import lake, paths
from include.lease import HourLease

log = logging.getLogger("include.jobs")

REASON = "reject_reason"


class NoInputError(FileNotFoundError):
    """The hour's raw input is not there: nothing to process, and nothing must be published."""


class LakeFullError(OSError):
    """The lake's filesystem ran out of space while publishing: nothing was published."""


class InputFormatError(ValueError):
    """The whole file is unusable (schema change, truncated): fail the hour, publish nothing."""


def check_csv_header(path: Path, expected: Sequence[str]) -> None:
    """Fail with what changed when the header is not ``expected`` (Spark's own error names no column)."""
    with open(path, "rb") as f:
        first = f.readline()
    if not first.strip():
        raise InputFormatError(
            f"{path} is empty (no header line): a truncated upload? An hour without activity still has the header"
        )
    got = [c.strip() for c in first.decode("utf-8", errors="replace").strip().split(",")]
    if got != list(expected):
        missing = [c for c in expected if c not in got]
        unexpected = [c for c in got if c not in expected]
        raise InputFormatError(
            f"schema change in {path}: expected columns {list(expected)}, got {got} "
            f"(missing {missing}, unexpected {unexpected}); fix the producer, or the job's RAW_COLUMNS"
        )


def text_rules(columns: Sequence[str]) -> list[tuple[str, Column]]:
    """Rules every raw text row goes through right after ``malformed_row`` (conditions are null-safe).

    ``bad_encoding``: the file was not UTF-8 where this row is (Spark puts U+FFFD for invalid bytes);
    ``field_too_long``: a value longer than ``lake.MAX_LENGTH`` allows (a 1 MB name would fail the
    warehouse load of the whole hour later).
    """
    encoding = F.lit(False)
    for c in columns:
        encoding = encoding | F.coalesce(F.col(c).contains("\ufffd"), F.lit(False))
    too_long = F.lit(False)
    for c in columns:
        if c in lake.MAX_LENGTH:
            too_long = too_long | F.coalesce(F.length(F.col(c)) > lake.MAX_LENGTH[c], F.lit(False))
    return [("bad_encoding", encoding), ("field_too_long", too_long)]


def hour_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake-root", required=True, help="root directory of the lake")
    parser.add_argument("--start", required=True, help="start of the hour [start, end), ISO 8601")
    parser.add_argument("--end", required=True, help="end of the hour, ISO 8601")
    parser.add_argument("--metrics-file", help="where to write the JSON metrics (the operator reads it)")
    parser.add_argument("--lease-pipeline", help="pipeline whose hour lease must be held to publish (include.lease)")
    parser.add_argument("--lease-generation", type=int, help="this run's generation of that lease (fencing token)")
    args = parser.parse_args(argv)
    if (args.lease_pipeline is None) != (args.lease_generation is None):
        parser.error("--lease-pipeline and --lease-generation go together")
    start, end = lake.parse_hour(args.start), lake.parse_hour(args.end)
    if end - start != lake.HOUR:
        parser.error(f"the interval must be exactly one hour, got [{start}, {end})")
    args.start, args.end = start, end
    args.lake_root = paths.check_lake_root(args.lake_root)
    return args


def session(app_name: str) -> SparkSession:
    # The master comes from spark-submit; UTC so that hour boundaries mean the same everywhere.
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )


def first_reason(rules: Sequence[tuple[str, Column]]) -> Column:
    """The first rule (in order) whose condition holds, else NULL. Conditions must be null-safe."""
    expr = F.lit(None).cast("string")
    for reason, cond in reversed(rules):
        expr = F.when(cond, F.lit(reason)).otherwise(expr)
    return expr


def input_file(root: str, dataset: tuple[str, str], start: datetime, name: str) -> Path:
    path = lake.partition(root, dataset, start).path / name
    if not path.is_file():
        raise NoInputError(f"no input for hour {start:%Y-%m-%dT%H:00Z}: {path} does not exist")
    return path


def publish(
    df: DataFrame,
    root: str,
    dataset: tuple[str, str],
    start: datetime,
    sort_by: list[str],
    args: argparse.Namespace | None = None,
) -> Path:
    """Write ``df`` as one hour partition, atomically (staging dir, then rename).

    With ``args`` from :func:`hour_args` naming a lease, the rename happens only while this run's
    generation still holds the hour (else :class:`include.lease.LeaseLostError`, nothing published).
    """
    part = lake.partition(root, dataset, start)
    staging = None
    try:
        staging = lake.staging_dir(root, part)  # its mkdir can already hit a full disk
        # One sorted file per hour: stable bytes for re-runs, and hourly volumes are small enough.
        df.coalesce(1).sortWithinPartitions(*sort_by).write.mode("errorifexists").parquet(str(staging))
        if args is not None and args.lease_generation is not None:
            HourLease(root, args.lease_pipeline, start).check(args.lease_generation)
        lake.publish_dir(staging, part.path)
    except Exception as err:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # a failed write must not keep eating the lake's space
        if "No space left on device" in str(err):
            free = shutil.disk_usage(root).free
            raise LakeFullError(
                f"the lake at {root} is full ({free / 2**20:.1f} MiB free) while writing {part.relpath}: "
                "nothing was published for this hour (a previous version, if any, is intact); free space and re-run"
            ) from None
        raise
    return part.path


def count_by_reason(rejects: DataFrame) -> dict[str, int]:
    return {r[REASON]: r["count"] for r in rejects.groupBy(REASON).count().collect()}


def finish(args: argparse.Namespace, metrics: dict, **run_info: str) -> None:
    """Write the metrics next to the clean output and, if asked, where the operator reads them.

    The lake copy holds only what the data determines (so a re-run writes identical bytes);
    run facts such as the application id go to the operator only.
    """
    clean_dir = Path(metrics["output"])
    if args.lease_generation is not None:
        HourLease(args.lake_root, args.lease_pipeline, args.start).check(args.lease_generation)
    lake.write_json(clean_dir / lake.SUMMARY_FILE, metrics)
    if args.metrics_file:
        Path(args.metrics_file).write_text(json.dumps({**metrics, **run_info}, default=str))
    log.warning("metrics: %s", json.dumps(metrics, default=str))
