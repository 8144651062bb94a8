"""The Spark jobs' I/O shell on an ``s3://`` lake (include/jobs/common.py, include/lake_attempt.py), against
the S3 emulator (moto, in-process), with the Spark driver's standard client settings (``AWS_ENDPOINT_URL``…).

Spark cannot write ``s3://`` on this machine (no hadoop-aws / EMRFS), so the Spark write itself is the one
step not run here: the test writes the partition with ``local[1]`` Spark to a local directory and uploads
it to the attempt prefix as EMRFS leaves it (part file, ``_SUCCESS``, a ``_$folder$`` marker, a failed
task's ``_temporary/`` output; no ``.crc``), then runs the driver's steps for real: commit exactly those
files, add the summary, read back, digests. Raw inputs are read from the store. Checks use boto3 and
hashlib directly.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include import lake, lake_attempt
from include.generate import generate_hour
from include.jobs import common, ingest_customers, inputs
from include.lake_commit import ObjectLake, read_tables
from include.lake_pointer import CommitError
from include.replication import digests
from tests.support.moto_aws import REGION, moto_aws

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
REL = lake.partition("/", lake.CLEAN_CUSTOMERS, HOUR).relpath


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture
def bucket(aws, monkeypatch) -> str:
    """A fresh bucket, and the environment a Spark driver on EMR has: the standard client settings."""
    for name, value in {
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    name = f"lake-{uuid.uuid4().hex[:12]}"
    aws.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def raw_hour(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw-lake")
    generate_hour(root, HOUR, rows=300, products=40)
    return root


def put(aws, bucket: str, key: str, data: bytes) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def keys(aws, bucket: str, prefix: str) -> set[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def upload_raw(aws, bucket: str, raw_hour: Path) -> None:
    for ds, name in ((lake.RAW_CUSTOMERS, lake.RAW_CUSTOMERS_FILE), (lake.RAW_PRODUCTS, lake.RAW_PRODUCTS_FILE)):
        part = lake.partition(raw_hour, ds, HOUR)
        put(aws, bucket, f"prod/{part.relpath}/{name}", (part.path / name).read_bytes())


class TestRawInputsFromTheStore:
    def test_the_driver_checks_read_the_objects(self, aws, bucket, raw_hour):
        upload_raw(aws, bucket, raw_hour)
        root = f"s3://{bucket}/prod"
        uri = inputs.input_file(root, lake.RAW_CUSTOMERS, HOUR, lake.RAW_CUSTOMERS_FILE)
        assert uri == f"{root}/{lake.partition('/', lake.RAW_CUSTOMERS, HOUR).relpath}/{lake.RAW_CUSTOMERS_FILE}"
        inputs.check_csv_header(uri, ingest_customers.RAW_COLUMNS)
        local = lake.partition(raw_hour, lake.RAW_CUSTOMERS, HOUR).path / lake.RAW_CUSTOMERS_FILE
        with open(local, encoding="utf-8-sig", newline="") as f:
            expected = [r for r in csv.reader(f) if r]
        assert list(inputs.csv_records(uri)) == expected
        inputs.check_jsonl_not_empty(inputs.input_file(root, lake.RAW_PRODUCTS, HOUR, lake.RAW_PRODUCTS_FILE))

    def test_missing_empty_and_changed_inputs_fail_the_hour(self, aws, bucket):
        root = f"s3://{bucket}/prod"
        with pytest.raises(inputs.NoInputError, match="does not exist"):
            inputs.input_file(root, lake.RAW_CUSTOMERS, HOUR, lake.RAW_CUSTOMERS_FILE)
        products = f"prod/{lake.partition('/', lake.RAW_PRODUCTS, HOUR).relpath}/{lake.RAW_PRODUCTS_FILE}"
        put(aws, bucket, products, b"\n  \n")
        with pytest.raises(inputs.InputFormatError, match="holds no record"):
            inputs.check_jsonl_not_empty(f"s3://{bucket}/{products}")
        customers = f"prod/{lake.partition('/', lake.RAW_CUSTOMERS, HOUR).relpath}/{lake.RAW_CUSTOMERS_FILE}"
        put(aws, bucket, customers, b"order_id,customer_id\r\nO1,C1\r\n")
        with pytest.raises(inputs.InputFormatError, match=r"schema change.*missing \['name'"):
            inputs.check_csv_header(f"s3://{bucket}/{customers}", ingest_customers.RAW_COLUMNS)


class TestCommitWhatSparkWrote:
    def test_exactly_the_written_files_are_committed_with_the_summary(
        self, aws, bucket, raw_hour, spark, tmp_path, monkeypatch
    ):
        path = lake.partition(raw_hour, lake.RAW_CUSTOMERS, HOUR).path / lake.RAW_CUSTOMERS_FILE
        clean, _ = ingest_customers.transform(ingest_customers.extract(spark, str(path)), HOUR, HOUR + lake.HOUR)
        out = tmp_path / "spark-out"
        clean.coalesce(1).sortWithinPartitions("order_id").write.parquet(str(out))
        (part,) = sorted(out.glob("part-*.parquet"))
        root = f"s3://{bucket}/prod"
        the_lake = ObjectLake(root)  # as the driver opens it: standard client settings
        attempt = the_lake.new_attempt()
        base = f"prod/{REL}/_attempts/{attempt}"
        put(aws, bucket, f"{base}/{part.name}", part.read_bytes())
        put(aws, bucket, f"{base}/_SUCCESS", b"")
        put(aws, bucket, f"{base}_$folder$", b"")  # EMRFS directory marker
        put(aws, bucket, f"{base}/_temporary/0/task_1/{part.name}", b"a failed task's output")
        assert lake_attempt.attempt_uri(the_lake, REL, attempt) == f"s3://{bucket}/{base}"

        commit = lake_attempt.commit_written(the_lake, REL, attempt)
        metrics = {"output": f"{root}/{REL}", "rows_clean": clean.count()}
        args = argparse.Namespace(lake_root=root, lease_generation=None, metrics_file=None, start=HOUR)
        common.finish(args, metrics, common.Published(f"{root}/{REL}", (), commit.attempt))

        pointer = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=f"prod/{REL}/_commit.json")["Body"].read())
        summary_object = f"prod/{REL}/_attempts/{pointer['attempt']}.{lake.SUMMARY_FILE}"
        assert keys(aws, bucket, f"prod/{REL}/") == {f"prod/{REL}/_commit.json", f"{base}/{part.name}", summary_object}
        by_name = {f["name"]: f for f in pointer["files"]}
        assert by_name["part-00000.parquet"]["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
        assert by_name["part-00000.parquet"]["rows"] == clean.count() > 0
        summary = aws.client("s3").get_object(Bucket=bucket, Key=summary_object)["Body"].read()
        assert json.loads(summary) == metrics
        assert read_tables(the_lake, REL).num_rows == clean.count()

        monkeypatch.chdir(tmp_path)
        before = set(tmp_path.rglob("*"))
        found = digests.hour_digests(root, HOUR)  # an s3 root: from the pointers, no digest cache
        assert found[f"{REL}/part-00000.parquet"]["sha256"] == by_name["part-00000.parquet"]["sha256"]
        assert set(tmp_path.rglob("*")) == before

    def test_a_failed_spark_write_keeps_the_previous_commit(self, aws, bucket, spark, tmp_path):
        """Here Spark cannot reach s3:// at all: the shell fails the hour, the hour's previous commit stays
        readable and nothing is left behind. (The cleanup of files already written when a commit fails is
        tested in tests/unit/test_lake_attempt.py::TestFailuresAroundThePointer.)"""
        root = f"s3://{bucket}/prod"
        the_lake = ObjectLake(root)
        previous = tmp_path / "previous"
        spark.createDataFrame([("O0", 7)], "order_id string, quantity int").coalesce(1).write.parquet(str(previous))
        the_lake.publish(REL, previous)  # an earlier run's commit of this hour
        committed = the_lake.commit(REL)
        before = keys(aws, bucket, "prod/")
        df = spark.createDataFrame([("O1", 1)], "order_id string, quantity int")
        with pytest.raises(Exception, match='(?i)no filesystem for scheme "?s3'):
            common.publish(df, root, lake.CLEAN_CUSTOMERS, HOUR, ["order_id"])
        assert keys(aws, bucket, "prod/") == before and the_lake.commit(REL) == committed
        assert read_tables(the_lake, REL).column("order_id").to_pylist() == ["O0"]

    def test_the_summary_does_not_join_a_commit_another_writer_made_since(self, aws, bucket, spark, tmp_path):
        """Found in review: finish() read the attempt from the metrics' output string, so its fence never
        fired and an older job's summary (its row counts) joined a newer writer's commit."""
        root = f"s3://{bucket}/prod"
        the_lake = ObjectLake(root)
        for name, rows in (("mine", [("O1", 1)]), ("theirs", [("O1", 1), ("O2", 2)])):
            staging = tmp_path / name
            spark.createDataFrame(rows, "order_id string, quantity int").coalesce(1).write.parquet(str(staging))
            the_lake.publish(REL, staging)
            if name == "mine":
                mine = common.Published(f"{root}/{REL}", (), the_lake.commit(REL).attempt)
        theirs = the_lake.commit(REL)
        args = argparse.Namespace(lake_root=root, lease_generation=None, metrics_file=None, start=HOUR)
        with pytest.raises(CommitError, match="committed after this writer's"):
            common.finish(args, {"output": mine.location, "rows_clean": 1}, mine)
        assert the_lake.commit(REL) == theirs and lake.SUMMARY_FILE not in {f.name for f in theirs.files}


class TestStagedInputs:
    def test_the_metrics_name_the_object_and_spark_reads_a_local_copy(self, aws, bucket, raw_hour, monkeypatch):
        """Found in review: in staged mode the summary named the driver's temp copy of the input."""
        from include.jobs import staged_io

        root = f"s3://{bucket}/prod"
        local = lake.partition(raw_hour, lake.RAW_CUSTOMERS, HOUR).path / lake.RAW_CUSTOMERS_FILE
        put(
            aws,
            bucket,
            f"prod/{lake.partition('/', lake.RAW_CUSTOMERS, HOUR).relpath}/{local.name}",
            local.read_bytes(),
        )
        monkeypatch.setenv(staged_io.OBJECT_STORE_IO_ENV, staged_io.STAGED)
        source = inputs.input_location(root, lake.RAW_CUSTOMERS, HOUR, lake.RAW_CUSTOMERS_FILE)
        readable = inputs.readable_input(source, root)
        assert source == f"{root}/{lake.partition('/', lake.RAW_CUSTOMERS, HOUR).relpath}/{local.name}"
        assert Path(readable).is_file() and Path(readable).read_bytes() == local.read_bytes()
