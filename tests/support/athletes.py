"""Mean Age per Year straight from the shipped athlete_events.csv.gz with gzip + the csv module.

No engine, no pandas: the independent side of every athlete test on the real file.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from include.athletes import data
from include.athletes.generate import COLUMNS


def stdlib_rows(path: Path = data.SHIPPED) -> Iterator[list[str]]:
    """The records (header checked, not returned); RFC 4180 like the file, NA left as written."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != COLUMNS:
            raise AssertionError(f"unexpected header {header}")
        yield from reader


def stdlib_means(path: Path = data.SHIPPED) -> dict[int, float]:
    """Year -> mean Age over the records whose Age is not ``NA``, years in order."""
    sums, counts = defaultdict(float), defaultdict(int)
    age, year = COLUMNS.index("Age"), COLUMNS.index("Year")
    for row in stdlib_rows(path):
        if row[age] != "NA":
            sums[int(row[year])] += float(row[age])
            counts[int(row[year])] += 1
    return {y: sums[y] / counts[y] for y in sorted(counts)}
