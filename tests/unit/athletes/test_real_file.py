"""The shipped, real athlete_events.csv: checksum, format, and every engine against the csv module."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest

from include.athletes import data, engines
from include.athletes.generate import COLUMNS
from tests.support.athletes import stdlib_means, stdlib_rows


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory):
    return data.extract(tmp_path_factory.mktemp("real") / "athlete_events.csv")


@pytest.fixture(scope="module")
def expected():
    return stdlib_means()


class TestShippedFile:
    def test_extracted_file_is_the_published_one(self, real_csv):
        assert data.sha256_of(real_csv) == data.SHA256
        raw = real_csv.read_bytes()
        assert raw.count(b"\r\n") == data.ROWS + 1  # CRLF, as published: header + one line per record
        assert sum(1 for _ in stdlib_rows()) == data.ROWS

    def test_damaged_source_is_refused_and_leaves_nothing(self, tmp_path):
        bad = tmp_path / "bad.csv.gz"
        with gzip.open(data.SHIPPED, "rb") as src, gzip.open(bad, "wb") as out:
            body = bytearray(src.read())
            body[1000] ^= 1  # one flipped bit
            out.write(body)
        dest = tmp_path / "lake/raw/athlete_events.csv"
        with pytest.raises(data.ChecksumError, match="git checkout"):
            data.extract(dest, source=bad)
        assert not dest.exists()
        assert list(dest.parent.iterdir()) == []  # no temporary file left behind

    def test_a_wrong_file_in_the_lake_is_replaced_and_a_right_one_kept(self, tmp_path, real_csv):
        dest = tmp_path / "athlete_events.csv"
        dest.write_text("ID,Name\n1,x\n")
        data.extract(dest)
        assert data.sha256_of(dest) == data.SHA256
        inode = dest.stat().st_ino
        data.extract(dest)
        assert dest.stat().st_ino == inode  # verified, not rewritten


@pytest.mark.parametrize("name", sorted(engines.ENGINES))
def test_every_engine_on_the_real_file_equals_the_csv_module(name, real_csv, expected, spark):
    kwargs = {"spark": spark} if name == "pyspark" else {}
    result = engines.mean_age_by_year(name, real_csv, **kwargs)
    assert len(result) == data.YEARS
    assert list(result.index) == list(expected)
    np.testing.assert_allclose(result.to_numpy(), list(expected.values()), rtol=0, atol=1e-9)


def test_spark_reader_keeps_every_value_of_the_real_file(real_csv, spark):
    """Every field as the csv module reads it: quotes and commas inside names, NA only where it means missing."""
    df = engines.read_athletes_spark(spark, real_csv)
    ints, na = {"ID", "Age", "Height", "Year"}, set(data.NA_COLUMNS)

    def typed(c, v):
        if c in na and v == "NA":
            return None
        return int(v) if c in ints else float(v) if c == "Weight" else v

    expected = Counter(tuple(typed(c, v) for c, v in zip(COLUMNS, row, strict=True)) for row in stdlib_rows())
    got = Counter(tuple(r) for r in df.toLocalIterator())
    assert got.total() == data.ROWS
    assert got == expected
