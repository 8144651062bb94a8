from __future__ import annotations

import csv
import hashlib
import json

from include import generate

HOUR = "2026-11-24T10:00:00Z"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestGenerateHour:
    def test_deterministic_per_hour_and_seed(self, tmp_path):
        a = generate.generate_hour(tmp_path / "a", HOUR, rows=2000)
        b = generate.generate_hour(tmp_path / "b", HOUR, rows=2000)
        c = generate.generate_hour(tmp_path / "c", "2026-11-24T11:00:00Z", rows=2000)
        assert digest(a.customer_file) == digest(b.customer_file)
        assert digest(a.product_file) == digest(b.product_file)
        assert digest(a.customer_file) != digest(c.customer_file)

    def test_exact_row_count_and_dirty_rows(self, tmp_path):
        out = generate.generate_hour(tmp_path, HOUR, rows=20_000, products=500)
        with out.customer_file.open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == generate.CUSTOMER_COLUMNS
        data = rows[1:]
        assert len(data) == 20_000
        assert sum(len(r) != 8 for r in data) > 0  # malformed lines
        assert sum(r[6] == "NA" for r in data) > 0
        assert sum(r[6] == "three" for r in data) > 0
        assert sum(r[1] == "" for r in data if len(r) == 8) > 0
        ids = [r[0] for r in data]
        assert len(ids) > len(set(ids))  # duplicates
        lines = out.product_file.read_text().splitlines()
        bad_json = 0
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                bad_json += 1
        assert bad_json > 0
