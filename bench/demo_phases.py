"""Benchmark: the phases of ``make demo`` after the install, in a world of the benchmark's own.

Runs the demo itself (:func:`stack.__main__.demo`: data, stack start, Airflow's first start, first DAG
parse, the hour, the summary) on a fresh state directory (own ports, clouds, Airflow home, lake; never
`.env`'s), so Airflow's first start includes its DB migration as on a fresh clone. The install phase
(venv, npm, Java) is not run: it would reinstall the shared venv; ``make demo`` times it itself
(``TRICLOUD_DEMO_CLOCK``). Writes bench/results/demo_phases.{json,md} beside the issue's fresh-clone figures.

    flock /tmp/tricloud-heavy.lock python -m bench.demo_phases       (about 1-2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os

from bench.common import machine, own_world, write_results

#: ``make demo`` on a fresh clone, 2026-11 (issue 16): seconds per phase as reported there.
REFERENCE_S = {"install": 90, "Airflow's first start": 50, "the hour": 140, "clone → summary": 296}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="customer rows of the demo hour (default 100000)")
    args = parser.parse_args(argv)
    from stack.__main__ import demo

    with own_world("demo") as env:
        clock = demo(env, args.rows)
    phases = {name: round(seconds, 1) for name, seconds in clock.phases}
    total = round(sum(phases.values()), 1)
    payload = {
        "benchmark": "make demo's phases after the install, fresh state, warm venv",
        "rows": args.rows,
        "phases_s": phases,
        "total_after_install_s": total,
        "skipped": ["install (venv, npm, Java): would reinstall the shared venv; timed by `make demo` itself"],
        "reference_s": REFERENCE_S,
        "goal_clone_to_summary_s": 150,
        "machine": machine() | {"shared": True},
    }
    rows = "\n".join(f"| {name} | {s:.1f} |" for name, s in phases.items())
    md = (
        "# make demo: time per phase (fresh state, warm venv)\n\n"
        f"{args.rows:,} customer rows. The install phase was skipped (it would reinstall the shared venv; "
        "`make demo` times it itself and prints it with the others). Jobs through "
        f"`{os.environ.get('TRICLOUD_SPARK_SUBMIT_MODE') or 'spark-submit'}` (.env.example's setting). Taken on a "
        "shared 2-core machine (other jobs may run beside it).\n\n| phase | seconds |\n|---|---|\n"
        f"{rows}\n| **total after the install** | **{total:.1f}** |\n\n"
        "Reference, a fresh clone (issue 16): install 90 s, Airflow's first start 50 s, the hour 140 s (the hour "
        "ran twice then), clone → summary 296 s; goal ≤ 150 s.\n"
    )
    write_results("demo_phases", payload, md)


if __name__ == "__main__":
    main()
