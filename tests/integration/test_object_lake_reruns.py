"""Re-runs of an hour on an object-store lake (``s3://`` on moto, ``gs://`` on gcp-storage-emulator; every
test once per store, ``[s3]``, ``[gs]``), for real: a re-run leaves exactly the committed objects (an orphan
attempt included), a reader racing a re-run sees the old hour or the new one, never a mix, and a writer that
dies before its pointer leaves the old hour visible. The hour's pipeline on the same lakes:
tests/integration/test_lake_on_s3.py. The bucket is read independently (tests/support/object_lake.py); the
fixtures ``job_output`` and ``s3_lake`` are in tests/integration/conftest.py.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake
from include.enrichment import enrich_hour
from include.lake_commit import ObjectLake, read_tables
from tests.support.object_lake import HOUR, commit_job_output, committed_keys, keys


class TestRerun:
    def test_a_rerun_leaves_exactly_the_committed_objects(self, job_output, s3_lake):
        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)
        first = keys(s3_lake)
        # A writer that died before its pointer: its attempt objects are invisible, then removed.
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        orphan = f"prod/{rel}/_attempts/{'0' * 20}-deadbeef.part-00000.parquet"
        s3_lake.raw.put(orphan, b"half an attempt")
        before = read_tables(s3_lake, rel)

        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)

        partitions = [lake.partition("/", ds, HOUR).relpath for ds in lake.HOURLY_OUTPUTS]
        expected = set().union(*(committed_keys(s3_lake, p) for p in partitions))
        assert keys(s3_lake) == expected
        assert orphan not in keys(s3_lake)
        assert not (first - {f"prod/{p}/_commit.json" for p in partitions}) & keys(s3_lake)  # every old attempt gone
        assert read_tables(s3_lake, rel).equals(before)


class RaceFS:
    """A pyarrow S3 file system that runs ``race`` just before the n-th read of an attempt object: the
    moment a re-run commits and deletes the old attempt under a reader (third-party I/O wrapped, none of
    our code changed)."""

    def __init__(self, fs, nth: int, race) -> None:
        self._fs, self._nth, self._race, self.reads = fs, nth, race, 0

    def open_input_stream(self, path):
        if "/_attempts/" in path:
            self.reads += 1
            if self.reads == self._nth:
                self._race()
        return self._fs.open_input_stream(path)

    def __getattr__(self, name):
        return getattr(self._fs, name)


class TestReaderDuringRerun:
    @staticmethod
    def version(the_lake, rel: str, tag: int, files: int = 3, rows_each: int = 50) -> None:
        staging = the_lake.staging_dir(lake.partition(the_lake.root, lake.ENRICHED_CUSTOMERS, HOUR))
        staging.mkdir()
        for i in range(files):
            pq.write_table(
                pa.table({"v": [tag] * rows_each, "i": list(range(rows_each))}), staging / f"part-{i:05d}.parquet"
            )
        the_lake.publish(rel, staging)

    @pytest.mark.parametrize("nth", [1, 2, 3])
    def test_the_reader_sees_the_old_hour_or_the_new_one_never_a_mix(self, s3_lake, nth):
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        self.version(s3_lake, rel, tag=1)
        race = RaceFS(s3_lake.fs, nth, lambda: self.version(s3_lake, rel, tag=2))
        reader = ObjectLake(s3_lake.root, race)

        table = read_tables(reader, rel)

        assert race.reads >= nth  # the re-run really happened in the middle of the read
        assert table.num_rows == 3 * 50
        assert set(table.column("v").to_pylist()) == {2}
        assert read_tables(s3_lake, rel).equals(table)

    def test_a_writer_that_dies_before_its_pointer_leaves_the_old_hour_visible(self, s3_lake):
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        self.version(s3_lake, rel, tag=1)

        class PointerRefused(Exception):
            pass

        class NoPointerFS(RaceFS):
            def open_output_stream(self, path, *a, **kw):
                if path.endswith("/_commit.json"):
                    raise PointerRefused(path)
                return self._fs.open_output_stream(path, *a, **kw)

        dying = ObjectLake(s3_lake.root, NoPointerFS(s3_lake.fs, 0, None), s3_lake._delete_objects)
        with pytest.raises(PointerRefused):
            self.version(dying, rel, tag=2)

        table = read_tables(s3_lake, rel)
        assert (table.num_rows, set(table.column("v").to_pylist())) == (150, {1})
        assert keys(s3_lake) == committed_keys(s3_lake, rel)  # its own attempt objects were removed
