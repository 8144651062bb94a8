"""Which object-store I/O a job uses is the backend's choice (include/jobs/staged_io.py): the setting itself.

The staged path end to end (download, local write, upload, commit) runs in
tests/integration/test_emulated_emr.py, through the ``emr`` backend and the test-side cluster.
"""

from __future__ import annotations

import pytest

from include.jobs import staged_io
from tricloud.cluster.base import SparkJob
from tricloud.cluster.local_jobs import runner_env


def a_job(**env: str) -> SparkJob:
    return SparkJob(key="k", name="n", application="a.py", args=(), result_uri="s3://b/l/_jobs/k/m.json", env=env)


class TestMode:
    def test_connector_unless_the_backend_says_staged(self, monkeypatch):
        monkeypatch.delenv(staged_io.OBJECT_STORE_IO_ENV, raising=False)
        assert staged_io.mode() == "connector" and not staged_io.is_staged("s3://b/lake")
        monkeypatch.setenv(staged_io.OBJECT_STORE_IO_ENV, "staged")
        assert staged_io.is_staged("s3://b/lake")
        assert not staged_io.is_staged("/data/lake")  # a local lake is never staged

    def test_an_unknown_value_fails_naming_the_variable(self, monkeypatch):
        monkeypatch.setenv(staged_io.OBJECT_STORE_IO_ENV, "s3a")
        with pytest.raises(ValueError, match="TRICLOUD_OBJECT_STORE_IO='s3a': set it to 'connector' or 'staged'"):
            staged_io.is_staged("s3://b/lake")


class TestLocalBackendChoosesStaged:
    def test_an_object_store_lake_is_staged_on_the_local_cluster(self, monkeypatch):
        monkeypatch.delenv(staged_io.OBJECT_STORE_IO_ENV, raising=False)
        monkeypatch.setenv("LAKE_ROOT", "s3://b/lake")
        assert runner_env(a_job(), None, "spark_default")[staged_io.OBJECT_STORE_IO_ENV] == "staged"

    def test_a_local_lake_is_left_alone_and_an_explicit_choice_wins(self, monkeypatch, tmp_path):
        monkeypatch.delenv(staged_io.OBJECT_STORE_IO_ENV, raising=False)
        monkeypatch.setenv("LAKE_ROOT", str(tmp_path))
        assert staged_io.OBJECT_STORE_IO_ENV not in runner_env(a_job(), None, "spark_default")
        monkeypatch.setenv("LAKE_ROOT", "s3://b/lake")
        env = runner_env(a_job(TRICLOUD_OBJECT_STORE_IO="connector"), None, "spark_default")
        assert env[staged_io.OBJECT_STORE_IO_ENV] == "connector"  # a cluster with hadoop-aws says so
