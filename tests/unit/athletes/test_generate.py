from __future__ import annotations

import csv
import hashlib

from include.athletes import generate


def test_schema_format_and_distributions(tmp_path):
    path = generate.generate(tmp_path / "a.csv", rows=30_000, chunk=10_000)
    lines = path.read_text().splitlines()
    assert (
        lines[0]
        == '"ID","Name","Sex","Age","Height","Weight","Team","NOC","Games","Year","Season","City","Sport","Event","Medal"'
    )
    assert len(lines) == 30_001
    rows = list(csv.DictReader(lines))
    years = {int(r["Year"]) for r in rows}
    assert min(years) == 1896
    assert max(years) == 2016
    assert not years & {1916, 1940, 1944}
    assert {r["Season"] for r in rows} == {"Summer", "Winter"}
    assert all(r["Games"] == f"{r['Year']} {r['Season']}" for r in rows)
    ages = [int(r["Age"]) for r in rows if r["Age"] != "NA"]
    assert 0 < len(rows) - len(ages) < 0.2 * len(rows)  # some NA, not many
    assert sum(15 <= a <= 40 for a in ages) / len(ages) > 0.8
    # numbers bare, strings quoted, NA bare (as in the real file)
    assert lines[1].startswith('"') and ",NA" in "".join(lines[1:200])
    assert not any('"NA"' in line for line in lines[1:2000])


def test_deterministic(tmp_path):
    a = generate.generate(tmp_path / "a.csv", rows=5_000)
    b = generate.generate(tmp_path / "b.csv", rows=5_000)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
