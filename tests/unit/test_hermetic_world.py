"""The test suite's world of its own: the loopback guard, free ports, and a world built without `.env`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from stack import config, loopback, ports, world
from stack.loopback import NotLoopbackError, require_loopback

AWS_LOCAL = json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:4566"}})
AWS_REAL = json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}})
WASB_REAL = json.dumps(
    {
        "conn_type": "wasb",
        "extra": {"connection_string": "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=x;"},
    }
)
GCP = json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p"}})


class TestLoopbackGuard:
    @pytest.mark.parametrize(
        ("name", "value", "extra_env"),
        [
            ("AIRFLOW_CONN_AWS_DEFAULT", AWS_LOCAL, {}),
            ("AIRFLOW_CONN_AWS_DEFAULT", "aws://?endpoint_url=http%3A%2F%2Flocalhost%3A4566", {}),
            ("AIRFLOW_CONN_SPARK_DEFAULT", "spark://127.0.0.1:7077?deploy-mode=client", {}),
            ("AIRFLOW_CONN_WH", "postgresql://postgres@[::1]:5432/warehouse", {}),
            ("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": "/tmp/w.sqlite"}), {}),
            ("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCP, {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443"}),
        ],
    )
    def test_loopback_connections_pass(self, name, value, extra_env):
        require_loopback({name: value, **extra_env})

    @pytest.mark.parametrize(
        ("name", "value", "extra_env", "target"),
        [
            ("AIRFLOW_CONN_AWS_DEFAULT", AWS_REAL, {}, "amazonaws.com"),
            ("AIRFLOW_CONN_AWS_DEFAULT", "aws://?region_name=eu-west-1", {}, "amazonaws.com"),
            ("AIRFLOW_CONN_WASB_DEFAULT", WASB_REAL, {}, "blob.core.windows.net"),
            ("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCP, {}, "storage.googleapis.com"),
            ("AIRFLOW_CONN_SPARK_DEFAULT", "spark://10.0.0.5:7077?deploy-mode=client", {}, "10.0.0.5"),
            ("AIRFLOW_CONN_WH", "postgresql://u:p@db.example.com:5432/w", {}, "db.example.com"),
        ],
    )
    def test_a_connection_beyond_this_machine_is_refused_by_name(self, name, value, extra_env, target):
        with pytest.raises(NotLoopbackError) as err:
            require_loopback({name: value, "AIRFLOW_CONN_OK": AWS_LOCAL, **extra_env})
        message = str(err.value)
        assert f"{name} points at {target}" in message
        assert f"env -u {name} make test" in message
        assert "AIRFLOW_CONN_OK" not in message  # only the offenders are named

    def test_emulator_host_and_secrets_backend_are_refused(self):
        found = loopback.problems(
            {"STORAGE_EMULATOR_HOST": "https://gcs.example.com", "AIRFLOW__SECRETS__BACKEND": "x.Backend"}
        )
        assert [p.split()[0] for p in found] == ["STORAGE_EMULATOR_HOST", "AIRFLOW__SECRETS__BACKEND"]

    def test_the_session_refuses_to_start_when_the_shell_exports_a_real_cloud(self, tmp_path):
        # A user who exported production credentials in this shell: the suite must not start at all.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env["AIRFLOW_CONN_AWS_DEFAULT"] = AWS_REAL
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/unit/test_hours.py", "-q", "-p", "no:randomly"],
            cwd=config.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 4, out.stdout + out.stderr  # pytest's usage error: nothing ran
        assert "AIRFLOW_CONN_AWS_DEFAULT points at amazonaws.com" in out.stderr
        assert "passed" not in out.stdout


class TestFreePorts:
    def test_distinct_free_reserved_and_outside_the_ephemeral_range(self):
        chosen = ports.free_ports(8)
        try:
            low, high = ports.ephemeral_range()
            assert len(set(chosen)) == 8
            assert all(not low <= p <= high for p in chosen)
            assert all(ports.bindable(p) for p in chosen)
            # Reserved: a second chooser (another session) never gets them while we live.
            others = ports.free_ports(50, owner=os.getppid())
            ports.release(others)
            assert not set(chosen) & set(others)
        finally:
            ports.release(chosen)

    def test_a_reservation_of_a_dead_process_is_taken_over(self):
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        port = ports.free_port(owner=int(dead.stdout))
        try:
            assert ports._reserve(port, os.getpid())
        finally:
            ports.release([port])

    def test_a_bound_port_is_never_chosen(self, monkeypatch):
        port = ports.free_port()
        ports.release([port])  # not reserved, only bound: the bind check alone must refuse it
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            # Deterministic order (stdlib shuffle replaced): the bound port is the first one tried.
            monkeypatch.setattr(ports.random, "shuffle", lambda pool: pool.sort(key=lambda p: p != port))
            chosen = ports.free_ports(3)
            ports.release(chosen)
            assert port not in chosen


class TestWorld:
    def test_built_from_code_not_from_the_users_env(self, tmp_path, monkeypatch):
        # Whatever the shell exports, the world's own values are what its processes get.
        monkeypatch.setenv("REPLICA_BUCKET", "users-production-bucket")
        w = world.build(tmp_path, name="t")
        try:
            env = w.env
            assert env["REPLICA_BUCKET"] == w.bucket != "users-production-bucket"
            assert env["TRICLOUD_STATE_DIR"] == str(tmp_path)
            assert env["AIRFLOW_HOME"].startswith(str(tmp_path))
            assert env["LAKE_ROOT"].startswith(str(tmp_path))
            assert json.loads(env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"])["host"].startswith(str(tmp_path))
            assert str(w.ports["api"]) in env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            assert f":{w.ports['s3']}" in env["AIRFLOW_CONN_AWS_DEFAULT"]
            assert env["STORAGE_EMULATOR_HOST"] == f"http://127.0.0.1:{w.ports['gcs']}"
            assert len(set(w.ports.values())) == len(world.PORT_ROLES)
            require_loopback(env)
            # Nothing of .env.example's addresses, ports or bucket survives.
            example = config.parse_env_file(config.ENV_EXAMPLE)
            for key in (
                "AIRFLOW_CONN_AWS_DEFAULT",
                "AIRFLOW_CONN_SPARK_DEFAULT",
                "REPLICA_BUCKET",
                "AIRFLOW__API__PORT",
            ):
                assert env[key] != example[key], key
        finally:
            w.release_ports()

    def test_the_shells_airflow_settings_are_dropped_unless_the_world_sets_them(self, tmp_path):
        w = world.build(tmp_path, name="t")
        w.release_ports()
        shell = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/var/log/airflow",
            "AIRFLOW__SECRETS__BACKEND_CMD": "cat /etc/backend",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET": "db_uri",
            "AIRFLOW_VAR_BUCKET": "users-bucket",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow@127.0.0.1/airflow",
            "HOME": "/home/user",
        }
        assert world.inherited_airflow(shell, w.env) == sorted(
            set(shell) - {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "HOME"}
        )
        assert w.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
        assert w.env["AIRFLOW_CONFIG"] == str(tmp_path / "airflow" / "airflow.cfg")

    def test_the_session_never_touches_the_metadata_db_the_shell_exports(self, tmp_path):
        # A user who runs a real Airflow exports its metadata DB and config: the suite migrates its own.
        users_db, cfg_db, cfg = tmp_path / "users-airflow.db", tmp_path / "cfg-airflow.db", tmp_path / "airflow.cfg"
        cfg.write_text(f"[database]\nsql_alchemy_conn = sqlite:///{cfg_db}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env |= {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{users_db}",
            "AIRFLOW_CONFIG": str(cfg),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",  # not the world's: dropped, and said so
        }
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/unit/test_hours.py", "-q", "-p", "no:randomly"],
            cwd=config.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert not users_db.exists() and not cfg_db.exists()
        assert cfg.read_text() == f"[database]\nsql_alchemy_conn = sqlite:///{cfg_db}\n"
        assert "ignores the shell's AIRFLOW__CORE__EXECUTOR (its world sets its own)" in out.stdout

    def test_two_worlds_share_nothing(self, tmp_path):
        a, b = world.build(tmp_path / "a"), world.build(tmp_path / "b")
        try:
            assert not set(a.ports.values()) & set(b.ports.values())
            assert a.bucket != b.bucket
        finally:
            a.release_ports()
            b.release_ports()


class TestProductionTopologyPorts:
    def test_free_ports_recorded_in_its_state_dir_and_used_by_its_env(self, tmp_path):
        from stack import prod

        topo = prod.topology(tmp_path, base={"AIRFLOW__CORE__PARALLELISM": "2"})
        try:
            chosen = json.loads((tmp_path / "ports.json").read_text())
            assert chosen == {"pg": topo.pg_port, "redis": topo.redis_port, "api": topo.api_port, "log": topo.log_port}
            assert len(set(chosen.values())) == 4 and not {5441, 6391, 8081, 8794} & set(chosen.values())
            env = topo.env()
            assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{topo.api_port}/execution/"
            assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == str(topo.log_port)
            assert f":{topo.pg_port}/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{topo.redis_port}/0"
            assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
        finally:
            ports.release(list(chosen.values()))

    def test_stop_recorded_stops_what_runs_on_the_recorded_ports_and_reserves_none(self, tmp_path):
        # The session's clean-up before it removes the world (and the topology's pid files with it).
        from stack import prod

        base = {"PATH": os.environ["PATH"]}
        assert not prod.stop_recorded(tmp_path, base=base)  # nothing recorded: nothing to stop
        topo = prod.topology(tmp_path, base=base)
        recorded = json.loads((tmp_path / "ports.json").read_text())
        redis = topo.redis(topo.env())
        try:
            redis.start(reuse=False)  # one real server of the topology, as a failed start-up leaves it
            pid = redis.pid()
            assert pid
            assert prod.stop_recorded(tmp_path, base=base)
            assert redis.pid() is None and ports.bindable(recorded["redis"])  # stopped, its port free
            assert json.loads((tmp_path / "ports.json").read_text()) == recorded  # no new ports chosen
        finally:
            redis.stop()
            ports.release(list(recorded.values()))
