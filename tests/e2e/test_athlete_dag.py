"""athlete_age_by_year through Airflow (dag.test) on the real Spark cluster."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from include.athletes import engines, generate

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def test_mean_age_by_year_dag(spark_cluster, emulators, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from stack.config import ROOT

    monkeypatch.setenv("LAKE_ROOT", str(tmp_path))
    src = generate.generate(tmp_path / "raw/athletes/athlete_events.csv", rows=10_000)
    dag = DagBag(str(ROOT / "dags")).dags["athlete_age_by_year"]
    dr = dag.test()
    assert dr.state == "success"

    out = tmp_path / "athletes/mean_age_by_year"
    (csv_file,) = (out / "csv").glob("part-*.csv")
    with csv_file.open() as f:
        got = {int(r["Year"]): float(r["mean_age"]) for r in csv.DictReader(f)}
    expected = engines.mean_age_by_year("pandas", src)
    assert list(got) == list(expected.index)
    np.testing.assert_allclose(list(got.values()), expected.to_numpy(), atol=1e-9)
    assert list((out / "parquet").glob("part-*.parquet"))

    # ... and replicated: every cloud holds the manifest and the same bytes.
    from include.replication import remote_sha256
    from tricloud.replication.stores import stores_from_env

    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for store in stores_from_env():
        assert store.stat("_manifests/datasets/athletes/mean_age_by_year.json"), store.name
        for f in files:
            key = str(f.relative_to(tmp_path))
            assert remote_sha256(store, key) == hashlib.sha256(f.read_bytes()).hexdigest(), (store.name, key)
