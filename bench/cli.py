"""The command line the hour benchmarks share: ``--rows`` customer rows per hour and ``--hours`` hours.

One parser shape for bench.hour_ratio and bench.backfill (their options unchanged): the module docstring
as the help text, the two options with their defaults named in the help, any options of the benchmark's
own, and ``--hours`` checked against the least the benchmark can measure (argparse's usage error, exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def hour_args(
    doc: str | None,
    argv: Sequence[str] | None,
    *,
    rows: int,
    hours: int,
    hours_help: str,
    min_hours: int,
    min_hours_why: str = "",
    more: Callable[[argparse.ArgumentParser], object] | None = None,
) -> argparse.Namespace:
    """Parse ``argv`` (``sys.argv[1:]`` when None) for an hour benchmark.

    :param doc: the benchmark's module docstring (the ``--help`` text, kept as written).
    :param rows: default of ``--rows`` (customer rows per generated hour).
    :param hours: default of ``--hours``; ``hours_help`` says what an hour is there ("hours to backfill").
    :param min_hours: the least ``--hours`` accepted; fewer exits with "--hours must be at least N (why)".
    :param more: adds the benchmark's own options to the parser (e.g. ``--timeout``).
    :raises SystemExit: on a bad option or too few hours (argparse's usage error, exit status 2).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=rows, help=f"customer rows per hour (default {rows})")
    parser.add_argument("--hours", type=int, default=hours, help=f"{hours_help} (default {hours})")
    if more:
        more(parser)
    args = parser.parse_args(argv)
    if args.hours < min_hours:
        parser.error(f"--hours must be at least {min_hours}" + (f" ({min_hours_why})" if min_hours_why else ""))
    return args
