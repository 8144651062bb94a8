from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from include.athletes import engines, generate


@pytest.fixture(scope="module")
def athletes_csv(tmp_path_factory):
    return generate.generate(tmp_path_factory.mktemp("ath") / "athlete_events.csv", rows=20_000, chunk=7_000)


def independent_means(path) -> dict[int, float]:
    """Straight from the file with the csv module: no engine involved."""
    sums, counts = defaultdict(float), defaultdict(int)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Age"] != "NA":
                sums[int(row["Year"])] += float(row["Age"])
                counts[int(row["Year"])] += 1
    return {y: sums[y] / counts[y] for y in sorted(counts)}


@pytest.mark.parametrize("name", sorted(engines.ENGINES))
def test_every_engine_gives_the_same_table(name, athletes_csv, spark):
    kwargs = {"spark": spark} if name == "pyspark" else {}
    result = engines.mean_age_by_year(name, athletes_csv, **kwargs)
    expected = independent_means(athletes_csv)
    assert list(result.index) == list(expected)
    np.testing.assert_allclose(result.to_numpy(), list(expected.values()), rtol=0, atol=1e-9)
    assert result.name == "mean_age"
    assert result.index.name == "Year"


def test_na_ages_are_excluded_everywhere(tmp_path, spark):
    path = tmp_path / "tiny.csv"
    header = ",".join(f'"{c}"' for c in generate.COLUMNS)
    rows = [
        '"1","A","M",20,NA,NA,"X","XXX","1900 Summer",1900,"Summer","Paris","S","E",NA',
        '"2","B","F",NA,NA,NA,"X","XXX","1900 Summer",1900,"Summer","Paris","S","E","Gold"',
        '"3","C","M",31,180,80.5,"X","XXX","1900 Summer",1900,"Summer","Paris","S","E",NA',
        '"4","D","M",NA,NA,NA,"X","XXX","1904 Summer",1904,"Summer","St. Louis","S","E",NA',
    ]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    for name in engines.ENGINES:
        kwargs = {"spark": spark} if name == "pyspark" else {}
        result = engines.mean_age_by_year(name, path, **kwargs)
        assert result.to_dict() == {1900: 25.5}, name  # 1904 has no known age at all


def test_take_mean_age_worker():
    assert engines.take_mean_age((1900, np.array([20.0, np.nan, 30.0]))) == (1900, 25.0)


def test_unknown_engine():
    with pytest.raises(ValueError, match="choose one of"):
        engines.mean_age_by_year("excel", "x.csv")


def test_spark_reader_nulls_na_only_where_it_means_missing(tmp_path, spark):
    """``NA`` is missing in Age/Height/Weight/Medal only: a name, team or NOC code ``NA`` is kept."""
    path = tmp_path / "na.csv"
    header = ",".join(f'"{c}"' for c in generate.COLUMNS)
    rows = [
        '"1","NA","M",NA,NA,NA,"NA","NA","1900 Summer",1900,"Summer","Paris","S","E",NA',
        '"2",NA,"F",21,170,60.5,NA,NA,"1900 Summer",1900,"Summer","Paris","S","Cara ""C"", Jr.",Gold',
    ]
    path.write_bytes((header + "\r\n" + "\r\n".join(rows) + "\r\n").encode())
    got = [r.asDict() for r in engines.read_athletes_spark(spark, path).orderBy("ID").collect()]
    assert [(r["Name"], r["Team"], r["NOC"]) for r in got] == [("NA", "NA", "NA"), ("NA", "NA", "NA")]
    assert [(r["Age"], r["Height"], r["Weight"], r["Medal"]) for r in got] == [
        (None, None, None, None),
        (21, 170, 60.5, "Gold"),
    ]
    assert got[1]["Event"] == 'Cara "C", Jr.'  # RFC 4180 doubled quotes and a comma inside quotes


def test_spark_reader_takes_the_path_literally(tmp_path, spark):
    root = tmp_path / "o'brien [x] {a,b} st*r?"
    decoy = tmp_path / "o'brien x a stXrY"  # what the root would match as a glob
    for d, n in ((root, 1), (decoy, 3)):
        generate.generate(d / "athlete_events.csv", rows=n)
    assert engines.read_athletes_spark(spark, root / "athlete_events.csv").count() == 1
