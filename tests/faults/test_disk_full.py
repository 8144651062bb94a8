"""The lake's disk fills up during a Spark job: a clear error, the previous hour intact, nothing half-written.

The lake is a small tmpfs mounted for the test (needs root, as `make test` runs in CI); where
mounting is not allowed the test is skipped and says why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from include import generate, lake
from tricloud import settings
from tricloud.operators import SparkJobOperator

pytestmark = [pytest.mark.spark, pytest.mark.fault, pytest.mark.spark_submit]
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"


@pytest.fixture
def small_lake(tmp_path):
    mount = tmp_path / "lake"
    mount.mkdir()
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if out.returncode:
        pytest.skip(f"cannot mount a small filesystem for the lake here: {out.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def ingest(root) -> SparkJobOperator:
    return SparkJobOperator(
        task_id="ingest_customer_data",
        application=settings.job_path("ingest_customers"),
        application_args=["--lake-root", str(root), "--start", HOUR, "--end", HOUR_END],
        conf={"spark.cores.max": "1"},
    )


def published(root) -> dict[str, str]:
    files = {}
    for dataset in (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS):
        for f in sorted(lake.partition(root, dataset, HOUR).path.glob("*")):
            files[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def fill(root) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={root / 'filler'}", "bs=64k"], capture_output=True, check=False)
    assert shutil.disk_usage(root).free < 65536  # dd stopped at "No space left on device"


def test_full_disk_fails_clearly_keeps_the_previous_hour_and_recovers(spark_cluster, small_lake):
    from airflow.sdk.exceptions import AirflowException

    gen = generate.generate_hour(small_lake, HOUR, rows=20000, products=300)
    first = ingest(small_lake).execute({})
    before = published(small_lake)
    assert len(before) == 3 and first["rows_in"] == gen.customer_rows  # clean part + summary, rejects part

    fill(small_lake)  # the re-run of the hour finds no space left
    with pytest.raises(AirflowException, match=r"the lake at .* is full .* nothing was published"):
        ingest(small_lake).execute({})
    assert published(small_lake) == before  # the previous version of the hour is intact
    assert not list((small_lake / "_staging").glob("*"))  # no half-written leftovers

    (small_lake / "filler").unlink()  # space is freed: the re-run succeeds with every row accounted
    again = ingest(small_lake).execute({})
    assert again["rows_clean"] + again["rows_rejected"] == gen.customer_rows
    assert published(small_lake) == before  # unchanged input: byte-identical hour
