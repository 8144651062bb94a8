"""Start-up time and idle memory: embedded (Airflow components, SQLite) vs production topology
(Postgres + Redis + separate api-server/scheduler/dag-processor/triggerer/Celery worker).

Airflow processes only (Spark and the emulators are shared by both). Fresh state each time; memory is
sampled for 20 s once healthy, peak kept.

    python -m bench.topologies
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import MemorySampler, machine, own_world, write_results
from stack import prod
from stack.airflow import LocalAirflow


def measure(start, pids, stop) -> dict:
    """Start, sample idle memory for 20 s, stop (also when start-up or sampling fails)."""
    try:
        t0 = time.monotonic()
        start()
        healthy = time.monotonic() - t0
        with MemorySampler(pids()) as mem:
            time.sleep(20)
        roots = len(pids())  # counted while running (after stop() there are none)
    finally:
        stop()
    return {
        "healthy_s": round(healthy, 1),
        "idle_rss_mib": round(mem.peak_rss / 2**20),
        "idle_pss_mib": round(mem.peak_pss / 2**20),
        "processes_root": roots,
    }


def main() -> None:
    with own_world("topologies") as env:
        run(dict(env))


def run(env: dict[str, str]) -> None:
    # Idle means idle: no scheduled hour may start DAG runs (and Spark) while memory is sampled.
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    shutil.rmtree(env["AIRFLOW_HOME"], ignore_errors=True)
    local = LocalAirflow(env)
    embedded = measure(local.start, local.pids, local.stop)

    topo = prod.topology(Path(env["TRICLOUD_STATE_DIR"]) / "prod", base=env)
    production = measure(lambda: topo.up(schedule=False), topo.pids, topo.down)
    payload = {"embedded": embedded, "production_topology": production, "machine": machine()}
    md = (
        "# Start-up and idle memory: embedded vs production topology\n\n"
        "| mode | healthy after (s) | idle RSS (MiB) | idle PSS (MiB) |\n|---|---|---|---|\n"
        f"| embedded (Airflow components, SQLite, LocalExecutor) | {embedded['healthy_s']} | "
        f"{embedded['idle_rss_mib']} | {embedded['idle_pss_mib']} |\n"
        f"| production (Postgres, Redis, 5 Airflow processes, CeleryExecutor) | {production['healthy_s']} | "
        f"{production['idle_rss_mib']} | {production['idle_pss_mib']} |\n\n"
        "Fresh metadata database each time (migration included); Spark and emulators not counted.\n"
    )
    write_results("topologies", payload, md)


if __name__ == "__main__":
    main()
