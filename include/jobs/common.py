"""The thin I/O shell shared by the jobs: arguments, session, atomic publish, metrics (the raw inputs'
checks and dialect are in :mod:`include.jobs.inputs`).

The lake is a local directory or an object store (``--lake-root s3://bucket/prefix``, the jobs on EMR):

- raw inputs are plain objects there (``raw/<dataset>/date=…/hour=HH/<file>``, one PUT each: atomic), read
  by the driver's checks through pyarrow and by Spark through the cluster's connector (EMRFS ``s3://``);
- a partition is committed by pointer (:mod:`include.lake_attempt`): Spark writes it to a fresh attempt
  prefix, the driver commits exactly the files written there; the ``_summary.json`` is added to the clean
  partition's commit by :func:`finish` (:func:`include.lake_attempt.amend`);
- a local lake is unchanged: a staging directory, then one atomic rename (:func:`include.lake.publish_dir`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from include import errors, lake, lake_attempt, lake_fs, paths
from include.jobs import DATA_ERROR_EXIT, staged_io
from include.lake_commit import ObjectLake
from include.lease import LEASE_LOST_EXIT, HourLease, LeaseLostError

log = logging.getLogger("include.jobs")

REASON = "reject_reason"


class LakeFullError(OSError):
    """The lake's filesystem ran out of space while publishing: nothing was published."""


#: RFC 3339 (the ISO 8601 profile producers write): date ``T`` (or space) time, optional fraction,
#: and a UTC offset (``Z``, ``±hh:mm``, ``±hhmm`` or ``±hh``); case-insensitive ``T``/``Z``.
#: A timestamp without an offset is ambiguous and rejected. Spark keeps microseconds (more digits are cut).
TIMESTAMP_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"  # date, T or space, time
    r"([.][0-9]{1,9})?"  # fraction
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"  # offset
)


def parse_timestamp(col: Column) -> Column:
    """The one timestamp rule of every input column: RFC 3339 text → TIMESTAMP (UTC instant), else NULL.

    ``2026-11-24T11:07:00+01:00`` → 10:07 UTC; ``…10:08:00.250Z`` keeps its milliseconds. Callers
    must reject a NULL result (``bad_timestamp``) wherever the value is used, never keep it silently.
    """
    text = F.upper(F.trim(col))
    return F.when(text.rlike(TIMESTAMP_RE), text.try_cast("timestamp"))


def parse_finite(col: Column, type_: str, low: float, high: float) -> Column:
    """``col`` cast to ``type_`` when it is a finite number in [low, high], else NULL.

    Rejects ``NaN``, ``Infinity`` and overflow such as ``1e999`` (which casts to infinity): no sink
    stores them portably (JSON has no literal for them, MySQL refuses them).
    """
    value = col.try_cast(type_)
    ok = ~F.isnan(value.cast("double")) & (value >= F.lit(low)) & (value <= F.lit(high))
    return F.when(ok, value)


def text_rules(columns: Sequence[str]) -> list[tuple[str, Column]]:
    """Rules every raw text row goes through right after ``malformed_row`` (conditions are null-safe).

    ``bad_encoding``: the file was not UTF-8 where this row is (Spark puts U+FFFD for invalid bytes);
    ``nul_character``: a NUL (U+0000), which PostgreSQL cannot store in text (one such row would fail
    the whole hour's warehouse load; MySQL, SQLite, Parquet and JSON store every other code point);
    ``field_too_long``: a value longer than ``lake.MAX_LENGTH`` allows (a 1 MB name would fail the
    warehouse load of the whole hour later).
    """
    encoding = F.lit(False)
    for c in columns:
        encoding = encoding | F.coalesce(F.col(c).contains("\ufffd"), F.lit(False))
    nul = F.lit(False)
    for c in columns:
        nul = nul | F.coalesce(F.col(c).contains("\u0000"), F.lit(False))
    too_long = F.lit(False)
    for c in columns:
        if c in lake.MAX_LENGTH:
            too_long = too_long | F.coalesce(F.length(F.col(c)) > lake.MAX_LENGTH[c], F.lit(False))
    return [("bad_encoding", encoding), ("nul_character", nul), ("field_too_long", too_long)]


def hour_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake-root", required=True, help="root directory of the lake")
    parser.add_argument("--start", required=True, help="start of the hour [start, end), ISO 8601")
    parser.add_argument("--end", required=True, help="end of the hour, ISO 8601")
    parser.add_argument(
        "--metrics-file", help="where to write the JSON metrics (a path or URI; the cluster backend reads it)"
    )
    parser.add_argument("--lease-pipeline", help="pipeline whose hour lease must be held to publish (include.lease)")
    parser.add_argument("--lease-generation", type=int, help="this run's generation of that lease (fencing token)")
    parser.add_argument("--lease-attempt", help="TASK_ID:TRY_NUMBER of the Airflow task (a lower try is refused)")
    args = parser.parse_args(argv)
    if (args.lease_pipeline is None) != (args.lease_generation is None):
        parser.error("--lease-pipeline and --lease-generation go together")
    args.lease_task, args.lease_try = None, None
    if args.lease_attempt:
        task_id, _, try_number = args.lease_attempt.rpartition(":")
        if not task_id or not try_number.isdigit():
            parser.error(f"--lease-attempt must be TASK_ID:TRY_NUMBER, got {args.lease_attempt!r}")
        args.lease_task, args.lease_try = task_id, int(try_number)
    start, end = lake.parse_hour(args.start), lake.parse_hour(args.end)
    if end - start != lake.HOUR:
        parser.error(f"the interval must be exactly one hour, got [{start}, {end})")
    args.start, args.end = start, end
    args.lake_root = paths.check_lake_root(args.lake_root)
    return args


#: Settings of every job's session: UTC so that hour boundaries mean the same everywhere; few shuffle
#: partitions for hourly volumes. Runtime settings, so a Spark Connect session takes them as well.
SESSION_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "4"}


def configure(spark: SparkSession, conf: Mapping[str, str] | None = None) -> SparkSession:
    """Apply :data:`SESSION_CONF` and the ``spark.sql.*`` settings of the job's ``conf`` to ``spark``.

    For a Spark Connect session (one per job) these are the job's settings; the other settings of
    ``conf`` (cores, memory, JVM options) belong to a spark-submit application and are ignored here.
    """
    for key, value in {**SESSION_CONF, **{k: v for k, v in (conf or {}).items() if k.startswith("spark.sql.")}}.items():
        spark.conf.set(key, str(value))
    return spark


def session(app_name: str) -> SparkSession:
    """The spark-submit driver's session (the master comes from spark-submit), configured by :func:`configure`."""
    return configure(SparkSession.builder.appName(app_name).getOrCreate())


def application_id(spark: SparkSession) -> str | None:
    """The Spark application's id (``app-…``), classic or Spark Connect session alike (no SparkContext there)."""
    return spark.conf.get("spark.app.id", None)


def submit_main(entry: Callable[[SparkSession, Sequence[str]], dict], app_name: str, argv: Sequence[str]) -> dict:
    """spark-submit's ``__main__`` of a job: a session, the job's ``entry(spark, argv)``, the session stopped.

    The same ``entry`` runs in a Spark Connect session (``tricloud.cluster.local_connect_runner``). The
    session is stopped after a success only (a failure's session is torn down with the driver).
    """
    spark = session(app_name)
    metrics = entry(spark, argv)
    spark.stop()
    return metrics


def first_reason(rules: Sequence[tuple[str, Column]]) -> Column:
    """The first rule (in order) whose condition holds, else NULL. Conditions must be null-safe."""
    expr = F.lit(None).cast("string")
    for reason, cond in reversed(rules):
        expr = F.when(cond, F.lit(reason)).otherwise(expr)
    return expr


def reject_older_versions(df: DataFrame, key: str, *order: Column) -> DataFrame:
    """``df`` with :data:`REASON` set to ``duplicate`` on each clean row (:data:`REASON` NULL) that is not the
    first of its ``key`` in ``order`` (latest first: the latest version wins). Rows already rejected keep
    their reason and take no part in the ranking.

    One window over the whole frame, partitioned by ``key`` and by whether the row is clean: clean rows rank
    among clean rows only, exactly as a window over the clean rows alone would rank them. ``order`` must be
    a total order within a key (end it with a row number) so the winner is deterministic.
    """
    clean = F.col(REASON).isNull()
    latest = Window.partitionBy(F.col(key), clean).orderBy(*order)
    duplicate = clean & (F.row_number().over(latest) > 1)
    return df.withColumn(REASON, F.when(duplicate, F.lit("duplicate")).otherwise(F.col(REASON)))


@dataclass(frozen=True)
class Published:
    """A published hour partition: ``location`` (its directory, or ``s3://…/<rel>`` on an object-store lake)
    and ``read_paths``, what Spark reads it back from (the directory; on an object store the committed
    objects exactly, never the attempt prefix)."""

    location: str
    read_paths: tuple[str, ...]
    #: The attempt whose commit this is, on an object-store lake (None on a local lake).
    attempt: str | None = None
    #: Rows that landed: the sum of the published Parquet files' footer row counts, read after the rename
    #: (local lake) or when the commit hashed them (object store); None when not counted.
    rows: int | None = None

    def __str__(self) -> str:
        return self.location


def publish(
    df: DataFrame,
    root: str,
    dataset: tuple[str, str],
    start: datetime,
    sort_by: list[str],
    args: argparse.Namespace | None = None,
) -> Published:
    """Write ``df`` as one hour partition, atomically: on a local lake a staging dir, then one rename; on an
    object-store lake an attempt prefix, then the commit pointer (:func:`publish_to_object_store`).

    With ``args`` from :func:`hour_args` naming a lease, the rename (the pointer) happens only while this
    run's generation still holds the hour (else :class:`include.lease.LeaseLostError`, nothing published).
    """
    if lake_fs.is_object_store(root):
        return publish_to_object_store(df, root, dataset, start, sort_by, args)
    part = lake.partition(root, dataset, start)
    staging = None
    try:
        staging = lake.staging_dir(root, part)  # its mkdir can already hit a full disk
        # One sorted file per hour: stable bytes for re-runs, and hourly volumes are small enough.
        df.coalesce(1).sortWithinPartitions(*sort_by).write.mode("error").parquet(str(staging))
        if args is not None and args.lease_generation is not None:
            check_lease(args, root, start)
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
    landed = paths.parquet_rows(sorted(part.path.glob("*.parquet")))  # footers only: no Spark job
    return Published(str(part.path), (paths.hadoop_literal(part.path),), rows=landed)


def publish_to_object_store(
    df: DataFrame,
    root: str,
    dataset: tuple[str, str],
    start: datetime,
    sort_by: list[str],
    args: argparse.Namespace | None = None,
) -> Published:
    """:func:`publish` on an object-store lake: Spark writes to a fresh attempt prefix through the cluster's
    connector (EMRFS ``s3://`` on EMR) or, in ``staged`` mode, through local disk
    (:mod:`include.jobs.staged_io`); then the driver commits exactly the files written there
    (:func:`include.lake_attempt.commit_written`: hashed by streaming, pointer last, older attempts deleted).
    A failure before the pointer deletes the attempt's objects; the previous commit stays.
    """
    the_lake = ObjectLake(root)
    relpath = lake.partition("/", dataset, start).relpath
    attempt = the_lake.new_attempt()
    try:
        ordered = df.coalesce(1).sortWithinPartitions(*sort_by)
        if staged_io.is_staged(root):  # no connector on this cluster: through local disk
            staged = staged_io.write_attempt(ordered, the_lake, relpath, attempt)
        else:
            staged = None
            ordered.write.mode("error").parquet(lake_attempt.attempt_uri(the_lake, relpath, attempt))
    except BaseException:
        the_lake.delete(lake_attempt.attempt_objects(the_lake, relpath, attempt))
        raise
    fence = None
    if args is not None and args.lease_generation is not None:
        fence = functools.partial(check_lease, args, root, start)  # right before the pointer, after hashing
    commit = lake_attempt.commit_written(the_lake, relpath, attempt, before_pointer=fence)
    parquet = [f for f in commit.files if f.name.endswith(".parquet")]
    landed = sum(f.rows or 0 for f in parquet)  # the committed objects' footers, read when they were hashed
    if staged is not None:  # the same rows as the committed objects, where this driver's Spark can read them
        read_paths = tuple(paths.hadoop_literal(p) for p in staged)
        return Published(f"{the_lake.root}/{relpath}", read_paths, commit.attempt, landed)
    scheme = the_lake.root.split("://", 1)[0]
    uris = (paths.hadoop_literal(f"{scheme}://{the_lake.object_key(commit, f.name)}") for f in parquet)
    return Published(f"{the_lake.root}/{relpath}", tuple(uris), commit.attempt, landed)


def check_lease(args: argparse.Namespace, root: str, start: datetime) -> None:
    """Raise :class:`include.lease.LeaseLostError` unless this run's generation (and this task try) holds the hour."""
    HourLease(root, args.lease_pipeline, start).check(args.lease_generation, args.lease_task, args.lease_try)


def run(main: Callable[[Sequence[str]], None], argv: Sequence[str]) -> None:
    """Run a job's ``main``; the failures no retry can fix exit with codes of their own.

    A lost lease exits with :data:`include.lease.LEASE_LOST_EXIT`; any
    :class:`include.errors.DeterministicError` (a missing hour: ``NoInputError``; an unusable file:
    ``InputFormatError``; a bad setting: ``ConfigError``, e.g. an object-store lake for a job that needs
    a local one) with :data:`include.jobs.DATA_ERROR_EXIT`, after printing ``<ErrorType>: <message>``
    (which names the hour or the setting) to stderr, where the
    driver log and the task log show it. Anything else propagates (exit 1: retried).
    """
    try:
        main(argv)
    except LeaseLostError as err:
        print(f"LeaseLostError: {err}", file=sys.stderr, flush=True)
        sys.exit(LEASE_LOST_EXIT)
    except errors.DeterministicError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
        sys.exit(DATA_ERROR_EXIT)


@contextlib.contextmanager
def cached(df: DataFrame) -> Iterator[DataFrame]:
    """``df`` cached for the block, unpersisted when it ends (also on an error).

    Spark's cache is shared by every session of one application (``CacheManager`` in the shared state)
    and matched by plan: a read of the same path in the next job's session, on a long-running Spark
    Connect server, would return the rows this job cached, not the file as it is now (found by
    ``tests/faults/test_spark_reattach.py::TestClearAfterSuccess`` in ``connect`` mode: a cleared run
    re-read the old 1,500 rows of a file that now held 2,500). The cached plan carries a column holding
    a value of this block alone (dropped from what is yielded), so an entry that outlives its job (a
    Connect job cancelled before its ``finally`` ran) matches no later job's plan.
    """
    marked = df.withColumn(CACHE_OWNER, F.lit(uuid.uuid4().hex)).cache()
    try:
        yield marked.drop(CACHE_OWNER)
    finally:
        marked.unpersist()


#: The column :func:`cached` adds to the cached plan (a value unique to one block; never written out).
CACHE_OWNER = "_tricloud_cache_owner"


def count_by_reason(rejects: DataFrame) -> dict[str, int]:
    return {r[REASON]: r["count"] for r in rejects.groupBy(REASON).count().collect()}


def finish(args: argparse.Namespace, metrics: dict, published: Published, **run_info: str) -> None:
    """Write the metrics next to the clean output ``published`` and, if asked, where the operator reads them.

    The lake copy holds only what the data determines (so a re-run writes identical bytes);
    run facts such as the application id go to the operator only. On an object-store lake the summary
    joins ``published``'s commit only while that commit is still the partition's (``amend(expected=…)``).

    :raises include.lake_pointer.CommitError: another writer committed the partition since ``published``.
    :raises include.lease.LeaseLostError: this run no longer holds the hour.
    """
    if args.lease_generation is not None:
        check_lease(args, args.lake_root, args.start)
    if lake_fs.is_object_store(args.lake_root):
        the_lake = ObjectLake(args.lake_root)
        relpath = published.location[len(the_lake.root) + 1 :]
        body = json.dumps(metrics, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
        lake_attempt.amend(the_lake, relpath, {lake.SUMMARY_FILE: body.encode()}, expected=published.attempt)
    else:
        lake.write_json(Path(published.location) / lake.SUMMARY_FILE, metrics)
    if args.metrics_file:
        # A path or an object-store URI under $LAKE_ROOT/_jobs/: the driver may run on another machine.
        lake_fs.write_json(args.metrics_file, {**metrics, **run_info})
    log.warning("metrics: %s", json.dumps(metrics, default=str))
