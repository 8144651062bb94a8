"""athlete_age_by_year through Airflow (dag.test) on the real Spark cluster."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from include.athletes import engines, generate

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def test_mean_age_by_year_dag(spark_cluster, tmp_path, monkeypatch):
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
