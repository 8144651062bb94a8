"""Row accounting of an ingest job: what one aggregation counted, what landed, and the check that they agree.

An ingest job classifies every raw row once (``reject_reason`` NULL: clean) and caches that frame
(:func:`include.jobs.common.cached`). From it:

- :func:`count_rows`: one ``GROUP BY reject_reason`` over the cached frame gives ``rows_in``, the clean
  rows meant and the rejects by reason (one Spark action; it also fills the cache the writes then read);
- :attr:`include.jobs.common.Published.rows`: the rows that landed, from the published Parquet files'
  footers (no Spark job);
- :func:`hour_metrics`: the metrics document, raising when the rows counted and the rows landed disagree.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame

from include.jobs import common


class RowAccountingError(RuntimeError):
    """The rows that landed are not the rows the job counted: a writer lost or added rows."""


@dataclass(frozen=True)
class RowCounts:
    """What the aggregation counted over the classified rows: ``rows_in`` (every input record), ``clean``
    (rows with no reject reason) and ``by_reason`` (rejects per reason; reasons with no row are absent)."""

    rows_in: int
    clean: int
    by_reason: dict[str, int]

    @property
    def rejected(self) -> int:
        return sum(self.by_reason.values())


def count_rows(classified: DataFrame) -> RowCounts:
    """Counts of ``classified`` (every input record once, :data:`include.jobs.common.REASON` NULL when clean)
    in one aggregation. ``rows_in`` is the sum of all groups: classifying keeps every record."""
    groups = common.count_by_reason(classified)
    clean = groups.pop(None, 0)
    return RowCounts(rows_in=clean + sum(groups.values()), clean=clean, by_reason=groups)


def hour_metrics(
    dataset: str,
    args: argparse.Namespace,
    source: str | Path,
    out: common.Published,
    rej: common.Published,
    counted: RowCounts,
) -> dict:
    """The metrics of one ingested hour (the document :func:`include.jobs.common.finish` writes).

    ``rows_clean`` and ``rows_rejected`` are what landed (``out.rows``, ``rej.rows``: Parquet footers);
    ``rows_in`` and ``rejected_by_reason`` what the aggregation counted.

    :raises RowAccountingError: the landed rows differ from the counted ones (clean or rejects), or
        clean + rejected ≠ input (the partitions are published; the summary, written after this check, is not).
    """
    metrics = {
        "dataset": dataset,
        "hour": args.start.isoformat(),
        "input": str(source),
        "output": str(out),
        "rejects": str(rej),
        "rows_in": counted.rows_in,
        "rows_clean": out.rows,
        "rows_rejected": rej.rows,
        "rejected_by_reason": counted.by_reason,
    }
    landed_as_counted = out.rows == counted.clean and rej.rows == counted.rejected
    if not landed_as_counted or out.rows + rej.rows != counted.rows_in:
        raise RowAccountingError(
            f"row accounting broken: {metrics}, counted {counted.clean} clean and {counted.rejected} rejected; "
            "the hour's summary was not written: re-run the hour"
        )
    return metrics
