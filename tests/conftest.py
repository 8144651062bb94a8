"""Test session setup: the stack's own environment (from .env), a private Airflow home and lake."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from stack import config as stack_config

TEST_AIRFLOW_HOME = stack_config.STATE / "test-airflow"


def pytest_configure(config: pytest.Config) -> None:
    # Same env as the embedded stack, but a separate Airflow home (SQLite) and lake, so tests never
    # touch a running demo's metadata or data. Set before anything imports airflow.
    env = stack_config.stack_env(airflow_home=TEST_AIRFLOW_HOME)
    env["LAKE_ROOT"] = tempfile.mkdtemp(prefix="tricloud-test-lake-")
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    stack_config.apply(env)
    if not (TEST_AIRFLOW_HOME / "airflow.db").exists():
        TEST_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(["airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())


@pytest.fixture(scope="session")
def spark():
    """A local[1] SparkSession for pure-transform tests."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("unit-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_backend():
    """The local standalone backend configured from AIRFLOW_CONN_SPARK_DEFAULT (.env)."""
    from airflow.sdk import BaseHook

    from tricloud.cluster import backend_for

    return backend_for("local", BaseHook.get_connection("spark_default"), workers=1)


@pytest.fixture(scope="session")
def spark_cluster(spark_backend):
    """A running standalone cluster; stopped at the end if the tests started it."""
    info = spark_backend.start()
    yield info
    if info.started:
        spark_backend.stop()


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("LAKE_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def emulators():
    """S3, GCS and Azure Blob emulators as the stack runs them, with the replica bucket created."""
    from stack.emulators import create_buckets
    from stack.emulators import emulators as stack_emulators

    env = dict(os.environ)
    procs = stack_emulators(env)
    started = [p for p in procs if p.start()]
    create_buckets(env)
    yield {p.name: p for p in procs}
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def prod_stack(spark_cluster, emulators):
    """The production topology (stack.prod), fresh for each module that uses it:
    (rest client, env, lake root, start-up timings)."""
    from tests.support.stack import production_stack

    with production_stack() as stack:
        yield stack
