"""The data-quality thresholds: settings with defaults, read from the environment and validated.

Every setting is ``TRICLOUD_DQ_<NAME>``; an unset or empty variable takes the default. A bad value fails
at once with :class:`QualitySettingError`, naming the variable, what it got and what it accepts.

Defaults and where they come from (docs/design.md, "Data-quality gates"):

- ``MAX_REJECT_RATE`` 0.05: the generator's dirty rows (include/generate.py ``DIRTY_RATES``) are at most
  0.5 % per reason, and about 1 % per reason in the product catalog; ten times that is a producer that
  broke, not the usual noise.
- ``REJECT_MIN_ROWS`` 100: below it a single bad row is already ≥ 1 %, so rates are not judged.
- ``ROWS_MIN_RATIO`` 0.2 and ``ROWS_MAX_RATIO`` 5.0: an hour may carry a fifth to five times the median
  of the trailing 24 hours (a day/night swing of 5× passes; an hour that lost 80 % of its rows, or a
  producer that replays its whole backlog, does not).
- ``MIN_HISTORY_HOURS`` 6: a median of fewer earlier hours says little; the volume check is skipped
  (with its reason) until a quarter of the day is on record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from include.errors import ConfigError

PREFIX = "TRICLOUD_DQ_"


class QualitySettingError(ConfigError):
    """A ``TRICLOUD_DQ_*`` variable holds a value the checks cannot use."""


@dataclass(frozen=True)
class Thresholds:
    """Limits of the hourly checks (see the module docstring for each default's reason).

    :param max_reject_rate: highest share of input rows (0–1] one reject reason may take.
    :param reject_min_rows: input rows below which reject rates are not judged.
    :param rows_min_ratio: lowest hour volume as a share of the trailing-24-hour median [0, 1).
    :param rows_max_ratio: highest hour volume as a multiple of that median (> 1).
    :param min_history_hours: earlier hours (1–24) needed to judge the volume.
    """

    max_reject_rate: float = 0.05
    reject_min_rows: int = 100
    rows_min_ratio: float = 0.2
    rows_max_ratio: float = 5.0
    min_history_hours: int = 6

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Thresholds:
        """The thresholds from ``TRICLOUD_DQ_*`` variables of ``environ`` (default ``os.environ``).

        :raises QualitySettingError: a value is not a number or out of its range; the message names the variable.
        """
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = (env.get(name) or "").strip()
            if not raw:
                continue
            parse: Callable[[str], float] = int if f.type in ("int", int) else float
            try:
                values[f.name] = parse(raw)
            except ValueError:
                kind = "a whole number" if parse is int else "a number"
                raise QualitySettingError(
                    f"{name}={raw!r} is not {kind}: set it to {_RANGES[f.name]} (default {f.default}) or unset it"
                ) from None
        t = cls(**values)
        for f in fields(cls):
            if not _VALID[f.name](getattr(t, f.name), t):
                raise QualitySettingError(
                    f"{PREFIX}{f.name.upper()}={getattr(t, f.name)!r} is out of range: it must be "
                    f"{_RANGES[f.name]} (default {f.default})"
                )
        return t


_RANGES = {
    "max_reject_rate": "a share in (0, 1], e.g. 0.05",
    "reject_min_rows": "a whole number ≥ 1",
    "rows_min_ratio": "a share in [0, 1), e.g. 0.2",
    "rows_max_ratio": "a number > 1, e.g. 5",
    "min_history_hours": "a whole number from 1 to 24",
}
_VALID: dict[str, Callable[[float, Thresholds], bool]] = {
    "max_reject_rate": lambda v, _: 0 < v <= 1,
    "reject_min_rows": lambda v, _: v >= 1,
    "rows_min_ratio": lambda v, _: 0 <= v < 1,
    "rows_max_ratio": lambda v, _: v > 1 and v != float("inf"),
    "min_history_hours": lambda v, _: 1 <= v <= 24,
}
