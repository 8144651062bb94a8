"""The cluster backend is configuration, not DAG code (issue 15): the same DAG files parse and build the
same Spark jobs whichever backend ``TRICLOUD_CLUSTER_BACKEND`` names, and no DAG file names one."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))

# Runs in a fresh interpreter per backend: the DAG files are parsed under that configuration, and each
# Spark task builds the job it would submit (no connection, no cluster: nothing is submitted).
PROBE = """
import json, sys, types
from airflow.dag_processing.dagbag import DagBag
from tricloud.cluster import BACKENDS, backend_name
from tricloud.operators import SparkJobOperator, StartClusterOperator

bag = DagBag(sys.argv[1])
assert not bag.import_errors, bag.import_errors
jobs, clusters = {}, []
for dag_id, dag in sorted(bag.dags.items()):
    for task in dag.tasks:
        if isinstance(task, SparkJobOperator):
            ti = types.SimpleNamespace(dag_id=dag_id, task_id=task.task_id, map_index=-1, try_number=1)
            job = task.build_job({"ti": ti, "run_id": "scheduled__2026-11-24T11:00:00+00:00"})
            jobs[f"{dag_id}.{task.task_id}"] = {
                "key": job.key, "application": job.application, "args": list(job.args),
                "conf": dict(job.conf), "result_uri": job.result_uri, "deferrable": task.deferrable,
            }
        if isinstance(task, StartClusterOperator):
            clusters.append(f"{dag_id}.{task.task_id}")
print(json.dumps({"backend": BACKENDS[backend_name()], "jobs": jobs, "clusters": clusters}))
"""


def parse_under(backend: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}  # no connection at all
    env.update({"TRICLOUD_CLUSTER_BACKEND": backend, "LAKE_ROOT": str(tmp_path / "lake")})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAGS_DIR)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


class TestSameDagsOnEveryBackend:
    def test_the_dags_parse_and_build_identical_jobs_on_local_and_emr(self, tmp_path):
        local = parse_under("local", tmp_path)
        emr = parse_under("emr", tmp_path)
        assert local["backend"] == "tricloud.cluster.local:LocalStandaloneBackend"
        assert emr["backend"] == "tricloud.cluster.emr:EmrBackend"  # the configuration picked it, no DAG edit
        assert {"customer_enrichment.ingest_customer_data", "customer_enrichment.ingest_product_data"} <= set(
            local["jobs"]
        )
        assert local["jobs"] == emr["jobs"]  # the very same jobs, keys and metrics locations
        assert local["clusters"] == emr["clusters"] != []
        job = local["jobs"]["customer_enrichment.ingest_customer_data"]
        assert job["result_uri"] == f"{tmp_path / 'lake'}/_jobs/{job['key']}/metrics.json"

    def test_an_unknown_backend_fails_naming_the_setting(self, monkeypatch):
        from tricloud.cluster import backend_from_settings

        monkeypatch.setenv("TRICLOUD_CLUSTER_BACKEND", "yarn")
        with pytest.raises(ValueError, match="set TRICLOUD_CLUSTER_BACKEND to one of"):
            backend_from_settings()


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_dag_file_names_a_backend(path):
    tree = ast.parse(path.read_text())
    named = [
        f"line {node.lineno}: {kw.arg}="
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg in ("backend", "backend_kwargs", "conn_id") and _is_cluster_operator(node)
    ]
    imports = [
        f"line {node.lineno}: import {node.module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tricloud.cluster")
    ]
    assert named == [] and imports == [], f"{path.name} chooses a backend itself: {named + imports}"


def _is_cluster_operator(call: ast.Call) -> bool:
    name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
    return name in ("SparkJobOperator", "StartClusterOperator", "StopClusterOperator")
