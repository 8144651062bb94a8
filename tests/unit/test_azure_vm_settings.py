"""The ``azure-vm`` backend's settings and its VMs' Spark service fail fast, naming what to set."""

from __future__ import annotations

import json
import stat

import pytest

from include import spark_service
from tricloud.cluster import backend_from_settings
from tricloud.cluster.azure_vm import AzureVmBackend, decode_started, encode_started

pytestmark = pytest.mark.fast

GOOD = {
    "conn_type": "spark",
    "host": "10.0.0.4",
    "port": 7077,
    "password": "s3cret-shared",  # pragma: allowlist secret
    "extra": {
        "resource_group": "rg",
        "master_vm": "m",
        "worker_vms": "w1, w2",
        "driver_host": "10.0.0.9",
    },
}


def with_conn(monkeypatch, **changes):
    conn = json.loads(json.dumps(GOOD))
    extra = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"].update(extra)
    conn["extra"] = {k: v for k, v in conn["extra"].items() if v is not None}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_AZURE", json.dumps(conn))


class TestSettings:
    def test_a_good_connection_gives_the_vms_and_the_master(self, monkeypatch):
        with_conn(monkeypatch)
        backend = backend_from_settings("azure-vm")
        assert isinstance(backend, AzureVmBackend)
        assert backend.master_url == "spark://10.0.0.4:7077"
        assert backend.config.worker_vms == ("w1", "w2")
        assert "s3cret" not in repr(backend.config)  # never in a log line or traceback

    def test_a_missing_connection_names_the_variable(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_SPARK_AZURE", raising=False)
        with pytest.raises(Exception, match="AIRFLOW_CONN_SPARK_AZURE"):
            backend_from_settings("azure-vm")

    @pytest.mark.parametrize(
        ("changes", "named"),
        [
            ({"extra": {"resource_group": None}}, "resource_group"),
            ({"extra": {"worker_vms": None}}, "worker_vms"),
            ({"password": None}, "spark.authenticate secret"),
            ({"host": "20.50.1.2"}, "not a private network address"),
            ({"host": "0.0.0.0"}, "not a private network address"),
            ({"extra": {"driver_host": "52.1.2.3"}}, "driver_host"),
        ],
    )
    def test_a_bad_connection_fails_naming_what_to_set(self, monkeypatch, changes, named):
        with_conn(monkeypatch, **changes)
        with pytest.raises(ValueError, match=named) as err:
            backend_from_settings("azure-vm")
        assert "AIRFLOW_CONN_SPARK_AZURE" in str(err.value)

    def test_more_workers_than_vms_is_refused(self, monkeypatch):
        with_conn(monkeypatch)
        with pytest.raises(ValueError, match="names 2 worker_vms"):
            backend_from_settings("azure-vm", workers=3)

    def test_the_cluster_id_names_exactly_the_vms_a_start_powered_on(self):
        assert decode_started(encode_started("rg", ["w1", "w2"])) == ("rg", ["w1", "w2"])
        assert decode_started(encode_started("rg", [])) == ("rg", [])
        with pytest.raises(ValueError, match="not an azure-vm cluster id"):
            decode_started("j-123")

    def test_the_jobs_secret_is_in_a_private_file_not_the_job(self, monkeypatch, tmp_path):
        with_conn(monkeypatch)
        backend = backend_from_settings("azure-vm", state_dir=tmp_path)
        conf = backend.secret_conf_dir() / "spark-defaults.conf"
        assert "spark.authenticate.secret s3cret-shared" in conf.read_text()
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600

    def test_the_secret_file_is_replaced_whole_never_truncated_in_place(self, monkeypatch, tmp_path):
        """A spark-submit of another task reading it meanwhile must never find it empty (review of issue 17)."""
        with_conn(monkeypatch)
        backend = backend_from_settings("azure-vm", state_dir=tmp_path)
        conf = backend.secret_conf_dir() / "spark-defaults.conf"
        held = conf.open()  # a reader that opened the file before the next write
        with_conn(monkeypatch, password="rotated-secret")  # pragma: allowlist secret
        rotated = backend_from_settings("azure-vm", state_dir=tmp_path).secret_conf_dir() / "spark-defaults.conf"
        assert "s3cret-shared" in held.read()  # the reader still has the whole old file, not an empty one
        held.close()
        assert "rotated-secret" in rotated.read_text() and stat.S_IMODE(rotated.stat().st_mode) == 0o600
        assert [p.name for p in rotated.parent.iterdir()] == ["spark-defaults.conf"]  # no temp file left

    def test_a_job_never_powers_vms_on_when_the_workers_are_gone(self, monkeypatch, tmp_path):
        """Only start_cluster starts VMs (its cluster id is what the teardown deallocates); a job fails instead."""
        with_conn(monkeypatch)
        backend = backend_from_settings("azure-vm", state_dir=tmp_path)
        with pytest.raises(RuntimeError, match="clear start_cluster"):
            backend.recover_workers()


class TestSparkService:
    @pytest.mark.parametrize("host", ["0.0.0.0", "20.1.2.3", "127.0.0.1", "spark-master", "169.254.1.1"])
    def test_the_service_refuses_to_listen_beyond_the_private_network(self, host):
        with pytest.raises(ValueError, match="--host"):
            spark_service.require_private(host)

    def test_private_addresses_are_accepted(self):
        assert spark_service.require_private("10.1.2.3") == "10.1.2.3"
        assert spark_service.require_private("192.168.5.6") == "192.168.5.6"

    def test_an_empty_or_missing_secret_file_is_refused(self, tmp_path):
        (tmp_path / "empty").write_text("\n")
        with pytest.raises(ValueError, match="is empty"):
            spark_service.read_secret(tmp_path / "empty")
        with pytest.raises(ValueError, match="write the cluster's shared secret"):
            spark_service.read_secret(tmp_path / "missing")

    def test_the_daemons_defaults_turn_authentication_on_and_stay_private(self, tmp_path):
        path = spark_service.write_defaults(tmp_path, spark_service.defaults("x" * 16, "master"))
        text = path.read_text()
        assert "spark.authenticate true" in text and f"spark.authenticate.secret {'x' * 16}" in text
        assert "spark.master.rest.enabled false" in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
