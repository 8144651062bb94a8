"""Paths handed to each layer literally (include/paths.py, the SQLite warehouse file)."""

from __future__ import annotations

import json
import shutil

import pytest

from include import paths


class TestHadoopLiteral:
    @pytest.mark.parametrize(
        ("raw", "escaped"),
        [
            ("/data/lake", "/data/lake"),
            ("/data/o'brien lake/ünï %20 $x #1", "/data/o'brien lake/ünï %20 $x #1"),
            ("/d/[eu]{a,b}*?", "/d/\\[eu\\]\\{a,b\\}\\*\\?"),
            ("/d/back\\slash", "/d/back\\\\slash"),
        ],
    )
    def test_escapes_exactly_the_glob_characters(self, raw, escaped):
        assert paths.hadoop_literal(raw) == escaped


class TestCheckLakeRoot:
    def test_accepts_what_every_layer_takes(self):
        root = '/data/o\'brien "lake" [eu] {a,b} *?\\ 100% $HOME;#1 ünï 東京'
        assert paths.check_lake_root(root) == root

    @pytest.mark.parametrize(("root", "char"), [("/a/b:c", "':' at position 4"), ("/a/b\nc", "U+000A at position 4")])
    def test_refuses_naming_the_character(self, root, char):
        with pytest.raises(paths.UnsupportedPathError, match=char.replace("+", r"\+")):
            paths.check_lake_root(root)


class TestObjectStoreLakeRoot:
    def test_an_s3_uri_is_accepted_without_its_trailing_slash(self, monkeypatch):
        from tricloud import settings

        assert paths.check_lake_root("s3://lake-bucket/prod/") == "s3://lake-bucket/prod"
        assert paths.check_lake_root("gs://lake-bucket/prod/") == "gs://lake-bucket/prod"
        monkeypatch.setenv("LAKE_ROOT", "s3://lake-bucket/prod:eu")  # ':' is fine after the scheme
        assert settings.lake_root() == "s3://lake-bucket/prod:eu"

    @pytest.mark.parametrize(
        ("root", "why"),
        [
            ("http://b/p", "scheme 'http' is not supported; use a local directory or s3://bucket/prefix or gs://"),
            ("abfss://lake@acct.dfs.core.windows.net/p", "Azurite, the only local Azure endpoint, has no ADLS Gen2"),
            ("gs:///p", "names no bucket"),
            ("s3:///p", "names no bucket"),
            ("s3://b/p?x=1", "has a '?' or '#' part"),
            ("s3://b/p\tq", "U+0009"),
        ],
    )
    def test_refused_saying_what_to_write(self, root, why):
        with pytest.raises(paths.UnsupportedPathError, match=why.replace("?", r"\?").replace("+", r"\+")):
            paths.check_lake_root(root)


class TestLocalOnlyFeaturesRefuseAnObjectStoreLake:
    """Path("s3://b/lake") is the relative local path "s3:/b/lake": without the guard, the daily report
    silently used a directory under the working directory (found in review). The hour lease and the Spark
    jobs now work on an s3:// lake (tests/integration/test_lease_on_s3.py, test_jobs_on_s3.py)."""

    ROOT = "s3://lake-bucket/prod"

    @pytest.mark.parametrize("root", ["abfss://lake@acct.dfs.core.windows.net/prod", "wasbs://c@a.blob/prod"])
    def test_the_hour_lease_on_a_store_it_does_not_run_on_yet(self, root, tmp_path, monkeypatch):
        """The lease runs on s3:// and gs:// (tests/integration/test_lease_on_s3.py); other stores are refused,
        not taken for the relative directory 'abfss:/…' (found again in review after the s3 lease landed)."""
        from include.lease import HourLease

        monkeypatch.chdir(tmp_path)
        with pytest.raises(
            paths.ObjectStoreLakeNotSupported, match="hour lease .*set LAKE_ROOT to an s3:// or gs:// URI"
        ):
            HourLease(root, "customer_enrichment", "2026-11-24T10:00:00+00:00")
        assert list(tmp_path.iterdir()) == []  # nothing created under the working directory

    def test_the_daily_report(self, tmp_path, monkeypatch):
        from include import reports

        monkeypatch.chdir(tmp_path)
        for call in (
            lambda: reports.daily_rollup(self.ROOT, "2026-11-24"),
            lambda: reports.report_path(self.ROOT, "x"),
        ):
            with pytest.raises(paths.ObjectStoreLakeNotSupported, match="the daily report"):
                call()
        assert list(tmp_path.iterdir()) == []

    def test_a_local_root_is_returned_as_a_path(self, tmp_path):
        assert paths.require_local_lake(str(tmp_path), "x") == tmp_path


class TestSqliteWarehousePath:
    """SqliteHook builds a 'file:' URI from the path unquoted: '?' cut it and the DB landed elsewhere."""

    @pytest.fixture
    def conn(self, tmp_path, monkeypatch):
        db = tmp_path / "o'brien 100%41 lake?x=1 #2" / "wh.sqlite"
        monkeypatch.setenv("AIRFLOW_CONN_WH_PATHS", json.dumps({"conn_type": "sqlite", "host": str(db)}))
        return db

    def test_the_database_is_the_named_file(self, conn, tmp_path):
        from tricloud.connections import require_connection
        from tricloud.warehouse import open_db

        db = open_db(require_connection("wh_paths"))
        db.execute("CREATE TABLE t (x INTEGER)")
        db.commit()
        db.close()
        assert conn.is_file()
        assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([conn.parent.name, conn.name])

    def test_the_connection_check_creates_nothing_elsewhere(self, conn, tmp_path):
        from tricloud.health import check_connection

        assert check_connection("wh_paths", "sql")["ok"]
        assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([conn.parent.name, conn.name])


def test_the_stack_refuses_an_unsupported_lake_root_before_starting_anything(tmp_path):
    from stack.config import ENV_EXAMPLE, stack_env

    # Neither the checkout's .env nor its .stack/: a copy of .env.example and a state dir of our own.
    env_file, state = tmp_path / ".env", tmp_path / "state"
    shutil.copy(ENV_EXAMPLE, env_file)
    with pytest.raises(paths.UnsupportedPathError, match="':' at position"):
        stack_env(env_file=env_file, state=state, overrides={"LAKE_ROOT": "/data/lake:2"})
    env = stack_env(env_file=env_file, state=state, overrides={"LAKE_ROOT": "/data/o'brien [eu]"})
    assert env["LAKE_ROOT"] == "/data/o'brien [eu]"
    assert env["TRICLOUD_STATE_DIR"] == str(state) and env["AIRFLOW_HOME"] == str(state / "airflow")
    assert sorted(p.name for p in (state / "secrets").iterdir()) == ["fernet_key", "jwt_secret"]


class TestGcsLakeFileSystem:
    """A driver reaches a gs:// lake with the standard client settings: the emulator named by
    STORAGE_EMULATOR_HOST (the variable google-cloud-storage honours), with or without a scheme."""

    @pytest.mark.parametrize(("host", "scheme"), [("http://127.0.0.1:9023", "http"), ("127.0.0.1:9023", "http")])
    def test_the_emulator_endpoint_is_taken_from_storage_emulator_host(self, host, scheme, monkeypatch):
        from pyarrow import fs

        from include import lake_fs

        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        assert lake_fs.gcs_emulator_endpoint() == ("127.0.0.1:9023", scheme)
        filesystem, path = lake_fs.filesystem("gs://lake-bucket/prod/")
        assert isinstance(filesystem, fs.GcsFileSystem) and path == "lake-bucket/prod"
        assert lake_fs.default_deleter("gs://lake-bucket/prod") is None  # pyarrow's delete: no marker on GCS

    def test_a_gs_lake_is_the_gcs_clouds_copy(self):
        from tricloud.replication.stores import primary_cloud

        assert [primary_cloud(r) for r in ("gs://b/p", "s3://b/p", "/data/lake")] == ["gcs", "s3", None]
