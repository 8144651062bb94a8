"""Committing what Spark wrote to an attempt prefix (include/lake_attempt.py), on the fast tier.

The object lake here is :class:`include.lake_commit.ObjectLake` over pyarrow's local file system (a
``SubTreeFileSystem`` under the test's directory stands for the bucket), and the files under the attempt
prefix are the real output of a ``local[1]`` Spark write (``_SUCCESS``, ``.crc`` files and a
``part-…-c000.snappy.parquet``), put where EMRFS would put them. The same steps against the S3 emulator
are in tests/integration/test_jobs_on_s3.py. Pointers are parsed and files hashed here by hand.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyarrow import fs

from include import lake
from include.lake_attempt import amend, commit_written
from include.lake_commit import ObjectLake, read_tables
from include.lake_pointer import CommitError
from include.replication import digests

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
REL = lake.partition("/", lake.CLEAN_CUSTOMERS, HOUR).relpath


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


@pytest.fixture
def the_lake(bucket: Path) -> ObjectLake:
    bucket.mkdir()
    return ObjectLake("s3://lake/prod", filesystem=fs.SubTreeFileSystem(str(bucket), fs.LocalFileSystem()))


def spark_write(
    spark, bucket: Path, the_lake: ObjectLake, rows: list[tuple[str, int]], compression: str = "snappy"
) -> str:
    """Spark writes ``rows`` to a fresh attempt prefix, as the job does on EMR; returns the attempt id."""
    attempt = the_lake.new_attempt()
    df = spark.createDataFrame(rows, "order_id string, quantity int")
    df.coalesce(1).sortWithinPartitions("order_id").write.mode("errorifexists").option(
        "compression", compression
    ).parquet(str(bucket / the_lake.attempts_key(REL) / attempt))
    return attempt


def pointer(bucket: Path) -> dict:
    return json.loads((bucket / "lake/prod" / REL / "_commit.json").read_text())


def attempt_files(bucket: Path) -> set[str]:
    base = bucket / "lake/prod" / REL / "_attempts"
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}


ROWS = [("O1", 1), ("O2", 2), ("O3", 3)]


class TestCommitWritten:
    def test_commits_exactly_the_parquet_files_spark_wrote(self, spark, bucket, the_lake):
        attempt = spark_write(spark, bucket, the_lake, ROWS)
        written = attempt_files(bucket)
        parts = sorted(f for f in written if f.rsplit("/", 1)[1].startswith("part-"))
        assert len(parts) == 1 and any(f.endswith("_SUCCESS") for f in written)  # real Spark output
        sha = hashlib.sha256((bucket / "lake/prod" / REL / "_attempts" / parts[0]).read_bytes()).hexdigest()

        commit_written(the_lake, REL, attempt)

        doc = pointer(bucket)
        assert doc["attempt"] == attempt
        assert [(f["name"], f["object"], f["sha256"], f["rows"]) for f in doc["files"]] == [
            ("part-00000.parquet", parts[0], sha, len(ROWS))
        ]
        assert attempt_files(bucket) == set(parts)  # _SUCCESS and the .crc files are gone
        assert sorted(read_tables(the_lake, REL).column("order_id").to_pylist()) == ["O1", "O2", "O3"]

    def test_an_unchanged_rerun_keeps_the_committed_bytes_a_changed_one_replaces_them(self, spark, bucket, the_lake):
        first = spark_write(spark, bucket, the_lake, ROWS)
        commit_written(the_lake, REL, first)
        kept = pointer(bucket)["files"][0]

        # The same rows in other bytes (Spark's Parquet is not byte-stable across versions and settings).
        second = spark_write(spark, bucket, the_lake, list(reversed(ROWS)), compression="gzip")
        new_object = next(f for f in attempt_files(bucket) if f.startswith(second + "/part-"))
        new_bytes = (bucket / "lake/prod" / REL / "_attempts" / new_object).read_bytes()
        assert hashlib.sha256(new_bytes).hexdigest() != kept["sha256"]
        commit_written(the_lake, REL, second)
        doc = pointer(bucket)
        assert doc["attempt"] == second
        assert (doc["files"][0]["sha256"], doc["files"][0]["object"]) == (kept["sha256"], kept["object"])
        assert attempt_files(bucket) == {kept["object"]}  # the re-run's own copy was deleted

        third = spark_write(spark, bucket, the_lake, [*ROWS, ("O4", 4)])
        commit_written(the_lake, REL, third)
        doc = pointer(bucket)
        assert doc["files"][0]["rows"] == 4 and doc["files"][0]["object"].startswith(third + "/")
        assert attempt_files(bucket) == {doc["files"][0]["object"]}  # the first attempt's object is gone

    def test_an_unexpected_object_fails_the_commit_and_keeps_the_previous_one(self, spark, bucket, the_lake):
        first = spark_write(spark, bucket, the_lake, ROWS)
        commit_written(the_lake, REL, first)
        before = pointer(bucket)
        second = spark_write(spark, bucket, the_lake, ROWS[:1])
        (bucket / the_lake.attempts_key(REL) / second / "notes.txt").write_text("not Spark's")

        with pytest.raises(CommitError, match="not Parquet"):
            commit_written(the_lake, REL, second)
        assert pointer(bucket) == before
        assert attempt_files(bucket) == {before["files"][0]["object"]}  # the failed attempt left nothing

    def test_an_older_attempt_does_not_replace_a_newer_commit(self, spark, bucket, the_lake):
        older = spark_write(spark, bucket, the_lake, ROWS[:1])
        newer = spark_write(spark, bucket, the_lake, ROWS)
        commit_written(the_lake, REL, newer)
        with pytest.raises(CommitError, match="newer attempt"):
            commit_written(the_lake, REL, older)
        assert pointer(bucket)["attempt"] == newer and pointer(bucket)["files"][0]["rows"] == 3
        assert not any(f.startswith(older) for f in attempt_files(bucket))


class TestAmend:
    def test_a_summary_joins_the_commit_and_the_data_object_stays(self, spark, bucket, the_lake):
        commit_written(the_lake, REL, spark_write(spark, bucket, the_lake, ROWS))
        data = pointer(bucket)["files"][0]
        amend(the_lake, REL, {lake.SUMMARY_FILE: b'{"rows_clean": 3}\n'})

        doc = pointer(bucket)
        assert [f["name"] for f in doc["files"]] == ["_summary.json", "part-00000.parquet"]
        assert doc["files"][1]["object"] == data["object"] and doc["files"][1]["sha256"] == data["sha256"]
        assert the_lake.read_partition(REL, lake.SUMMARY_FILE) == {lake.SUMMARY_FILE: b'{"rows_clean": 3}\n'}
        assert attempt_files(bucket) == {data["object"], f"{doc['attempt']}.{lake.SUMMARY_FILE}"}

    def test_amending_a_partition_never_committed_is_refused(self, the_lake):
        with pytest.raises(CommitError, match="commit the partition's data first"):
            amend(the_lake, REL, {lake.SUMMARY_FILE: b"{}"})


class TestDigestsOfAnObjectLake:
    def test_come_from_the_pointers_and_touch_no_local_path(self, spark, bucket, the_lake, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        commit_written(the_lake, REL, spark_write(spark, bucket, the_lake, ROWS))
        before = {p for p in tmp_path.rglob("*")}
        found = digests.hour_digests(the_lake, HOUR)
        assert found[f"{REL}/part-00000.parquet"]["sha256"] == pointer(bucket)["files"][0]["sha256"]
        assert {p for p in tmp_path.rglob("*")} == before  # no .cache/, no "s3:" directory

    @pytest.mark.parametrize(
        "call",
        [
            lambda: digests.hour_files("s3://lake/prod", HOUR),
            lambda: digests.digests(Path("s3://lake/prod"), [], Path("s3://lake/prod/.cache/x.json"), 1),
        ],
        ids=["hour_files", "digests"],
    )
    def test_the_local_digest_cache_refuses_an_object_store_root(self, call, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(digests.ReplicationError, match="object store"):
            call()
        assert list(tmp_path.iterdir()) == []


class _PointerPutLandsThenFails:
    """The store's side of a lost reply: the pointer PUT is written, then the call raises (as a client
    whose retries ran out after the request landed). Everything else is the real local file system."""

    def __init__(self, inner: fs.FileSystem) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open_output_stream(self, path, *args, **kwargs):
        if not path.endswith("/_commit.json"):
            return self.inner.open_output_stream(path, *args, **kwargs)
        inner = self.inner

        class _Stream:
            def __enter__(self):
                self._s = inner.open_output_stream(path)
                return self._s

            def __exit__(self, *exc):
                self._s.close()
                raise OSError("connection reset by peer (the PUT landed; its reply was lost)")

        return _Stream()


class TestFailuresAroundThePointer:
    """Found in review: the cleanup after a failed commit deleted exactly the objects a pointer that had
    landed named; the lease was checked before the files were hashed (a takeover could slip in); an
    attempt with no Parquet file replaced a good commit with an empty hour; amend wrote over a newer
    writer's commit."""

    def test_a_pointer_that_landed_although_its_put_failed_keeps_its_objects(self, spark, bucket, the_lake):
        flaky = ObjectLake(the_lake.root, filesystem=_PointerPutLandsThenFails(the_lake.fs))
        attempt = spark_write(spark, bucket, the_lake, ROWS)
        with pytest.raises(OSError, match="reply was lost"):
            commit_written(flaky, REL, attempt)
        assert pointer(bucket)["attempt"] == attempt
        assert sorted(read_tables(the_lake, REL).column("order_id").to_pylist()) == ["O1", "O2", "O3"]

    def test_the_fence_runs_after_hashing_and_a_lost_lease_keeps_the_previous_commit(self, spark, bucket, the_lake):
        commit_written(the_lake, REL, spark_write(spark, bucket, the_lake, ROWS))
        before = pointer(bucket)
        second = spark_write(spark, bucket, the_lake, ROWS[:1])
        seen = []

        def fence():
            seen.append(len(attempt_files(bucket)))  # the second attempt's files are there, hashed
            raise RuntimeError("lease lost: run_b took the hour")

        with pytest.raises(RuntimeError, match="lease lost"):
            commit_written(the_lake, REL, second, before_pointer=fence)
        assert seen and seen[0] > 1
        assert pointer(bucket) == before
        assert attempt_files(bucket) == {before["files"][0]["object"]}

    def test_an_attempt_without_parquet_is_refused_and_the_previous_commit_stays(self, spark, bucket, the_lake):
        commit_written(the_lake, REL, spark_write(spark, bucket, the_lake, ROWS))
        before = pointer(bucket)
        empty = the_lake.new_attempt()
        (bucket / the_lake.attempts_key(REL) / empty).mkdir()
        (bucket / the_lake.attempts_key(REL) / empty / "_SUCCESS").write_bytes(b"")
        with pytest.raises(CommitError, match="wrote no Parquet file"):
            commit_written(the_lake, REL, empty)
        assert pointer(bucket) == before
        assert read_tables(the_lake, REL).num_rows == len(ROWS)

    def test_a_parquet_file_in_a_sub_prefix_is_refused(self, spark, bucket, the_lake):
        attempt = the_lake.new_attempt()
        spark.createDataFrame(ROWS, "order_id string, quantity int").write.partitionBy("quantity").parquet(
            str(bucket / the_lake.attempts_key(REL) / attempt)
        )
        with pytest.raises(CommitError, match=r"quantity=.*not Parquet directly in the attempt prefix"):
            commit_written(the_lake, REL, attempt)
        assert not (bucket / "lake/prod" / REL / "_commit.json").exists()

    def test_amend_refuses_a_commit_another_writer_made_since(self, spark, bucket, the_lake):
        mine = spark_write(spark, bucket, the_lake, ROWS)
        commit_written(the_lake, REL, mine)
        theirs = spark_write(spark, bucket, the_lake, [*ROWS, ("O4", 4)])
        commit_written(the_lake, REL, theirs)
        with pytest.raises(CommitError, match="committed after this writer's"):
            amend(the_lake, REL, {lake.SUMMARY_FILE: b'{"rows_clean": 3}\n'}, expected=mine)
        doc = pointer(bucket)
        assert doc["attempt"] == theirs and [f["name"] for f in doc["files"]] == ["part-00000.parquet"]
