"""Shared helpers for benchmarks: a world of their own, result files and process-tree memory sampling."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


#: Signals that end a benchmark: Ctrl-C, ``kill``, a closed terminal. Without a handler SIGTERM and SIGHUP end
#: Python at once, so no ``finally`` runs and the world's servers (their own sessions) outlive it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A benchmark ended by SIGTERM or SIGHUP: raised in the main thread like Ctrl-C's KeyboardInterrupt, so
    the world is stopped on the way out. ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def _stopping_cleanly(name: str) -> Iterator[list[int]]:
    """While the block runs, the first :data:`STOP_SIGNALS` signal raises (KeyboardInterrupt / :class:`Stopped`)
    and every later one is ignored with a line on stderr, so the clean-up that follows is never cut short;
    the previous handlers are restored after. Yields the list of signals caught: append to it (e.g. 0) when
    the clean-up starts to ignore every signal from then on. Outside the main thread (no signal handlers
    there): a no-op.

    Why: a second Ctrl-C used to land in the clean-up (or in ``up()``'s wait for its start-up threads,
    which then went on starting servers after the stop) and a SIGTERM / SIGHUP ended Python without any;
    either left the world's emulators, Spark and Airflow running (docs/reliability.md, bench SIGINT row).
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def on_signal(signum: int, _frame) -> None:
        if caught:
            print(f"\n{name}: {signal.Signals(signum).name} ignored: stopping the benchmark's world", file=sys.stderr)
            return
        caught.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Stopped(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def own_world(name: str) -> Iterator[dict[str, str]]:
    """Run a benchmark in a world of its own (stack.world), never against the clouds of `.env`.

    Yields the world's environment (already applied to ``os.environ``): its own Spark cluster,
    emulators, bucket, Airflow home, lake and ports, all under a temporary directory. Whatever the
    benchmark started in it (Airflow, Spark, emulators) is stopped afterwards and the directory removed,
    also when it ends by Ctrl-C (SIGINT), SIGTERM or SIGHUP: the first raises in the benchmark (SIGTERM /
    SIGHUP as :class:`Stopped`), later ones are ignored until the world is stopped. Each stop is tried
    whatever the others did; then any process of the world still running (no pid file, e.g. started just
    as the signal came; see :func:`stack.world.stop_strays`) is stopped too and named on stderr.

    :raises stack.loopback.NotLoopbackError: when this shell exports a connection that is not on 127.0.0.1.
    """
    from stack import config, world
    from stack.loopback import require_loopback

    require_loopback(dict(os.environ), who=f"the {name} benchmark")
    with _stopping_cleanly(name) as caught:
        own = world.build(Path(tempfile.mkdtemp(prefix=f"tricloud-bench-{name}-")), name="bench")
        try:
            require_loopback({**os.environ, **own.env}, who=f"the {name} benchmark")
            if dropped := world.apply(own.env):  # the shell's other AIRFLOW_* settings (metadata DB, executor, …)
                print(world.dropped_line(dropped, who=f"the {name} benchmark"), file=sys.stderr)
            if str(config.ROOT / "plugins") not in sys.path:  # in-process provider code (stores, backends)
                sys.path.insert(0, str(config.ROOT / "plugins"))
            yield own.env
        finally:
            caught.append(0)  # from here on every stop signal is ignored: the clean-up runs to its end
            _stop_world(name, own)


def _stop_world(name: str, own) -> None:
    """Stop everything of ``own`` (a :class:`stack.world.World`): the production topology, the embedded
    stack, then stray processes; release its ports and remove its directory. Each step runs even if an
    earlier one failed (the failure is printed, never raised over the benchmark's own exception)."""
    from stack import prod, world
    from stack.__main__ import down

    steps = (
        ("production topology", lambda: prod.stop_recorded(own.state / "prod", base=dict(own.env))),
        ("stack", lambda: down(own.env)),
        ("stray processes", lambda: world.stop_strays(own.state)),
    )
    for what, step in steps:
        try:
            result = step()
        except Exception as err:  # the next step still runs; the benchmark's own error is not replaced
            print(f"{name}: stopping the world's {what} failed: {err!r}", file=sys.stderr)
            continue
        if what == "stray processes" and result:
            print(
                f"{name}: stopped {len(result)} process(es) of the world left without pid file: {result}",
                file=sys.stderr,
            )
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
