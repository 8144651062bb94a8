from __future__ import annotations

import json
import math

import pytest

from include import lake


class TestWriteJson:
    @pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
    def test_non_finite_numbers_are_refused_not_written_as_invalid_json(self, tmp_path, value):
        path = tmp_path / "_summary.json"
        with pytest.raises(ValueError, match="(?i)out of range"):
            lake.write_json(path, {"total_spend": value})
        assert not path.exists() and list(tmp_path.iterdir()) == []

    def test_unicode_round_trips(self, tmp_path):
        lake.write_json(tmp_path / "s.json", {"name": "李小龍🐉", "country": "NA"})
        assert json.loads((tmp_path / "s.json").read_text()) == {"name": "李小龍🐉", "country": "NA"}
