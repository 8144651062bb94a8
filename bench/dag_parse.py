"""Benchmark: what parsing each DAG file costs (every task process parses its DAG file first).

Per file, in a fresh interpreter each time (``--repeats`` times, median kept): ``warm`` = the file's own
cost once Airflow's SDK and the file's imports are loaded (a second ``runpy.run_path`` of the file);
``cold`` = the first parse after only ``import airflow.sdk``, i.e. what the file's imports add. The
test suite asserts what parsing imports (tests/dags/test_dag_integrity.py); the seconds live here.

    python -m bench.dag_parse [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import machine, write_results
from stack import config

DAGS = config.ROOT / "dags"
PROBE = """
import json, runpy, sys, time
sys.path[:0] = [{root!r}, {plugins!r}]
import airflow.sdk  # noqa: F401  (Airflow itself is every task's fixed cost, not the file's)
t0 = time.perf_counter(); runpy.run_path({path!r}); cold = time.perf_counter() - t0
t0 = time.perf_counter(); runpy.run_path({path!r}); warm = time.perf_counter() - t0
print(json.dumps({{"cold_s": cold, "warm_s": warm}}))
"""


def parse_once(path: Path) -> dict[str, float]:
    """One fresh interpreter's cold and warm parse of ``path``, in seconds."""
    code = PROBE.format(root=str(config.ROOT), plugins=str(config.ROOT / "plugins"), path=str(path))
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    results = {}
    for path in files:
        runs = [parse_once(path) for _ in range(args.repeats)]
        results[path.name] = {
            "cold_s": round(statistics.median(r["cold_s"] for r in runs), 4),
            "warm_s": round(statistics.median(r["warm_s"] for r in runs), 4),
        }
        print(f"{path.name}: {results[path.name]}", flush=True)
    payload = {"benchmark": "DAG file parse cost", "repeats": args.repeats, "files": results, "machine": machine()}
    rows = "\n".join(f"| {name} | {r['cold_s'] * 1000:.0f} | {r['warm_s'] * 1000:.1f} |" for name, r in results.items())
    md = (
        "# DAG file parse cost\n\n"
        f"Median of {args.repeats} fresh interpreters, {payload['machine']['cpus']} cores, "
        f"{payload['machine']['date']}. Cold: first parse after `import airflow.sdk` (the file's imports "
        "included); warm: the file alone, imports loaded. The former test limit was 100 ms warm.\n\n"
        f"| DAG file | cold (ms) | warm (ms) |\n|---|---|---|\n{rows}\n"
    )
    write_results("dag_parse", payload, md)


if __name__ == "__main__":
    main()
