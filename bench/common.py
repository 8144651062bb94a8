"""Shared helpers for benchmarks: a world of their own, result files and process-tree memory sampling."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def own_world(name: str) -> Iterator[dict[str, str]]:
    """Run a benchmark in a world of its own (stack.world), never against the clouds of `.env`.

    Yields the world's environment (already applied to ``os.environ``): its own Spark cluster,
    emulators, bucket, Airflow home, lake and ports, all under a temporary directory. Whatever the
    benchmark started in it (Airflow, Spark, emulators) is stopped afterwards and the directory removed.

    :raises stack.loopback.NotLoopbackError: when this shell exports a connection that is not on 127.0.0.1.
    """
    from stack import config, world
    from stack.loopback import require_loopback

    require_loopback(dict(os.environ), who=f"the {name} benchmark")
    own = world.build(Path(tempfile.mkdtemp(prefix=f"tricloud-bench-{name}-")), name="bench")
    require_loopback({**os.environ, **own.env}, who=f"the {name} benchmark")
    if dropped := world.apply(own.env):  # the shell's other AIRFLOW_* settings (metadata DB, executor, …)
        print(world.dropped_line(dropped, who=f"the {name} benchmark"), file=sys.stderr)
    if str(config.ROOT / "plugins") not in sys.path:  # in-process provider code (stores, backends)
        sys.path.insert(0, str(config.ROOT / "plugins"))
    try:
        yield own.env
    finally:
        from stack import prod
        from stack.__main__ import down

        prod.stop_recorded(own.state / "prod", base=dict(own.env))  # before its pid files go
        down(own.env)
        own.release_ports()
        shutil.rmtree(own.state, ignore_errors=True)


def machine() -> dict:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def write_results(name: str, payload: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


class MemorySampler:
    """Peak RSS and PSS of process trees (roots given by pid), sampled in a thread."""

    def __init__(self, root_pids: list[int], interval: float = 0.5) -> None:
        self.root_pids = root_pids
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        procs = []
        for pid in self.root_pids:
            try:
                root = psutil.Process(pid)
                procs.extend([root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                continue
        return procs

    def sample(self) -> None:
        rss = pss = 0
        for p in self._procs():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
