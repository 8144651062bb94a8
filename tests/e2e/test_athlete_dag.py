"""athlete_age_by_year through Airflow (dag.test) on the real Spark cluster, on the real shipped file."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from include.athletes import data
from tests.support.athletes import stdlib_means

# The athlete job has no run(spark, argv): it is spark-submitted in either mode, here beside the suite's
# Connect server (as in make demo), so it must take the core the server leaves free (docs/design.md).
pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def test_mean_age_by_year_dag_on_the_real_file(spark_cluster, emulators, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from stack.config import ROOT

    root = tmp_path / "o'brien lake [eu] ünï"  # the job reads and writes under a root that is no glob
    monkeypatch.setenv("LAKE_ROOT", str(root))
    dag = DagBag(str(ROOT / "dags")).dags["athlete_age_by_year"]
    dr = dag.test()
    assert dr.state == "success"

    # ensure_input put the verified real file in the lake, and the Spark job read that file.
    src = root / "raw/athletes/athlete_events.csv"
    assert data.sha256_of(src) == data.SHA256
    out = root / "athletes/mean_age_by_year"
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["rows_in"], summary["years"]) == (data.ROWS, data.YEARS)
    assert (summary["first_year"], summary["last_year"]) == (1896, 2016)

    (csv_file,) = (out / "csv").glob("part-*.csv")
    with csv_file.open(newline="") as f:
        got = {int(r["Year"]): float(r["mean_age"]) for r in csv.DictReader(f)}
    expected = stdlib_means()
    assert len(got) == data.YEARS == 35
    assert list(got) == list(expected)
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=0, atol=1e-9)
    assert list((out / "parquet").glob("part-*.parquet"))

    # ... and replicated: every cloud holds the manifest and the same bytes.
    from include.replication import remote_sha256
    from tricloud.replication.stores import stores_from_env

    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for store in stores_from_env():
        assert store.stat("_manifests/datasets/athletes/mean_age_by_year.json"), store.name
        for f in files:
            key = str(f.relative_to(root))
            assert remote_sha256(store, key) == hashlib.sha256(f.read_bytes()).hexdigest(), (store.name, key)
