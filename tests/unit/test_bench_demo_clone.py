"""bench.demo_clone reads back the phase table ``make demo`` prints (stack/clock.py's format)."""

from __future__ import annotations

from bench.demo_clone import phases_from
from stack.clock import PhaseClock


def test_phases_are_read_back_from_the_demo_s_own_table():
    clock = PhaseClock()
    clock.phases = [("install (venv ∥ npm ∥ Java)", 52.7), ("the hour (trigger or follow → run ended)", 29.25)]
    printed = "Hour  processed by run x\n" + clock.table() + "\nanything after the table\n"
    phases = phases_from(printed)
    assert list(phases) == ["install (venv ∥ npm ∥ Java)", "the hour (trigger or follow → run ended)", "total"]
    assert phases["install (venv ∥ npm ∥ Java)"] == 52.7
    assert phases["the hour (trigger or follow → run ended)"] in (29.2, 29.3)  # printed with one decimal


def test_no_table_no_phases():
    assert phases_from("make: *** [Makefile:22: demo] Error 1") == {}


def test_every_port_of_the_clone_s_stack_is_checked():
    from bench.demo_clone import demo_ports

    settings = {
        "AIRFLOW_CONN_SPARK_DEFAULT": "spark://127.0.0.1:7077?deploy-mode=client",
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT": '{"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15002}',
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443",
        "AIRFLOW__API__PORT": "8080",
        "SPARK_WORKER_CORES": "2",
    }
    assert demo_ports(settings) == [4443, 7077, 8080, 15002]


def test_the_clone_gets_no_setting_that_would_steer_its_stack(tmp_path, monkeypatch):
    from bench.demo_clone import clone_env

    monkeypatch.setenv("LAKE_ROOT", "/somewhere/else")
    monkeypatch.setenv("AIRFLOW_HOME", "/the/user/s/airflow")
    monkeypatch.setenv("TRICLOUD_SPARK_SUBMIT_MODE", "spark-submit")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")  # the machine's: kept
    env = clone_env(tmp_path, {"LAKE_ROOT": "./lake"})
    assert "LAKE_ROOT" not in env and "AIRFLOW_HOME" not in env and "TRICLOUD_SPARK_SUBMIT_MODE" not in env
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["UV_CACHE_DIR"].startswith(str(tmp_path))
