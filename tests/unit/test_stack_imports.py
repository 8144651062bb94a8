"""The stack's start-up threads import Airflow's provider hooks side by side: Airflow must be imported first.

Regression test for a fresh clone's first ``make demo`` failing in ``stack.__main__.up`` with "partially
initialized module 'airflow'" (see :func:`stack.__main__.initialise_airflow`). The race needs slow imports
to show reliably, so the child process gets an empty bytecode cache (``PYTHONPYCACHEPREFIX``), as a fresh
virtualenv has none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from stack import config

# What up()'s threads import: the Spark Connect hook (Spark thread), the three clouds' hooks (emulator thread).
CHILD = textwrap.dedent(
    """
    import importlib, sys, threading
    PREPARE
    errors = []

    def load(name):
        try:
            importlib.import_module(name)
        except Exception as err:  # reported below
            errors.append(f"{name}: {type(err).__name__}: {err}")

    names = [
        "airflow.providers.apache.spark.hooks.spark_connect",
        "airflow.providers.amazon.aws.hooks.s3",
        "airflow.providers.google.cloud.hooks.gcs",
        "airflow.providers.microsoft.azure.hooks.wasb",
    ]
    threads = [threading.Thread(target=load, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\\n".join(errors) or "all imported")
    sys.exit(1 if errors else 0)
    """
)


def run_child(tmp_path, prepare: str) -> subprocess.CompletedProcess:
    """Run :data:`CHILD` after ``prepare`` (Python) in a fresh interpreter with no bytecode cache."""
    env = {
        **os.environ,
        "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"),  # no bytecode: slow imports, as in a fresh venv
        "PYTHONPATH": os.pathsep.join([str(config.ROOT), str(config.ROOT / "plugins")]),
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    child = CHILD.replace("PREPARE", prepare)
    return subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )


def test_provider_hooks_import_side_by_side_after_initialise_airflow(tmp_path):
    out = run_child(tmp_path, "from stack.__main__ import initialise_airflow; initialise_airflow()")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.strip().endswith("all imported")


def test_stores_built_in_one_thread_let_their_hooks_load_in_several(tmp_path):
    """replicate_hour_to builds the stores, then each hook is built in a worker thread (objects.parallel)."""
    out = run_child(
        tmp_path,
        "from tricloud.replication.stores import make_store; [make_store(c, 'b') for c in ('s3', 'gcs', 'azure')]",
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.strip().endswith("all imported")
