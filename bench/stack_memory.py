"""Peak PSS of every process of an embedded stack, grouped by role, sampled with psutil in a thread.

A process belongs to the stack when it is one of the given root pids (Airflow components, Spark
master/worker, emulators) or a descendant of one. Its group comes from its command line (process
titles that Airflow and Spark set), see :func:`group_of`. Per sample the PSS of each group is summed;
a group's peak is the largest such sum over the samples, and the stack's peak the largest total (the
groups' peaks need not coincide, so they add up to more than the stack's peak).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

import psutil

#: Groups in report order: (group, substrings of the command line, any of which marks it). First match wins.
GROUP_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Spark master", ("deploy.master.Master",)),
    ("Spark worker", ("deploy.worker.Worker",)),
    ("Spark executors (JVM)", ("CoarseGrainedExecutorBackend",)),
    ("Spark executors (Python workers)", ("pyspark.daemon", "pyspark/daemon.py", "pyspark.worker")),
    ("Spark Connect server", ("SparkConnectServer",)),
    ("Spark drivers (JVM)", ("deploy.SparkSubmit",)),
    ("Spark drivers (Python)", ("include/jobs/", "spark_jobs", "/jobs/ingest_", "tricloud.cluster.local_driver")),
    ("Airflow task processes", ("airflow worker -- ",)),
    ("Airflow executor workers / supervisors", ("LocalExecutor", "airflow supervisor", "task supervisor")),
    ("Airflow api-server", ("api-server", "api_server")),
    ("Airflow scheduler", ("airflow scheduler",)),
    ("Airflow dag-processor", ("dag-processor", "dag_processor", "DagFileProcessor")),
    ("Airflow triggerer", ("airflow triggerer",)),
    ("Celery worker", ("celery worker", "celeryd", "celery")),
    ("moto (S3 emulator)", ("moto_server",)),
    ("gcp-storage-emulator", ("gcp-storage-emulator",)),
    ("Azurite (Azure emulator)", ("azurite",)),
    ("PostgreSQL", ("postgres",)),
    ("Redis", ("redis-server",)),
)


def group_of(cmdline: str, root_group: str) -> str:
    """The group of a process from its command line; ``root_group`` (its root's) when no rule matches.

    A child of the scheduler that matches nothing more specific (e.g. a ``spark-submit`` shell wrapper
    started by a task) is counted with the group of the task that started it, via the caller.
    """
    for group, needles in GROUP_RULES:
        if any(n in cmdline for n in needles):
            return group
    return root_group


def short_command(cmdline: str, limit: int = 120) -> str:
    """A command line for a report: a JVM's main class and arguments (not its classpath), at most ``limit`` chars."""
    parts = cmdline.split()
    if "-cp" in parts:  # java -cp <long classpath> [options] <main class> ...
        i = parts.index("-cp")
        parts = [parts[0].rsplit("/", 1)[-1], *parts[i + 2 :]]
    else:
        parts = [x.rsplit("/", 1)[-1] if x.startswith("/") and i < 2 else x for i, x in enumerate(parts)]
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class GroupedPeaks:
    """Peak PSS (bytes) per group and of the whole stack, and the largest process count seen per group."""

    peak_pss: dict[str, int] = field(default_factory=dict)
    peak_processes: dict[str, int] = field(default_factory=dict)
    peak_total_pss: int = 0
    samples: int = 0
    #: Per process (pid): its group, a short command line and its own peak PSS (bytes).
    by_process: dict[int, tuple[str, str, int]] = field(default_factory=dict)

    def mib(self) -> dict[str, int]:
        order = [g for g, _ in GROUP_RULES]
        keys = sorted(self.peak_pss, key=lambda g: order.index(g) if g in order else len(order))
        return {g: round(self.peak_pss[g] / 2**20) for g in keys}

    def top_processes(self, n: int = 25) -> list[dict]:
        """The ``n`` processes with the largest own peak PSS: group, pid, command (shortened), MiB."""
        rows = sorted(self.by_process.items(), key=lambda kv: -kv[1][2])[:n]
        return [{"group": g, "pid": pid, "command": cmd, "peak_pss_mib": round(v / 2**20)} for pid, (g, cmd, v) in rows]


class GroupedMemorySampler:
    """Samples the process trees under ``root_pids`` every ``interval`` seconds (use as a context manager).

    :param root_pids: pids of the stack's long-running processes; descendants are found at each sample,
        so task processes, Spark drivers and executors started later are included.
    """

    def __init__(self, root_pids: list[int], interval: float = 1.0) -> None:
        self.root_pids = root_pids
        self.interval = interval
        self.result = GroupedPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[tuple[psutil.Process, str]]:
        out: list[tuple[psutil.Process, str]] = []
        seen: set[int] = set()
        for pid in self.root_pids:
            try:
                root = psutil.Process(pid)
                root_group = group_of(" ".join(root.cmdline()), "other")
                procs = [root, *root.children(recursive=True)]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for p in procs:
                if p.pid not in seen:
                    seen.add(p.pid)
                    out.append((p, root_group))
        return out

    def sample(self) -> None:
        pss: dict[str, int] = defaultdict(int)
        count: dict[str, int] = defaultdict(int)
        for proc, root_group in self._tree():
            try:
                cmdline = " ".join(proc.cmdline())
                group = group_of(cmdline, root_group)
                value = getattr(proc.memory_full_info(), "pss", 0)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            pss[group] += value
            count[group] += 1
            seen = self.result.by_process.get(proc.pid)
            if seen is None or value > seen[2]:
                self.result.by_process[proc.pid] = (group, short_command(cmdline), value)
        r = self.result
        for group, value in pss.items():
            r.peak_pss[group] = max(r.peak_pss.get(group, 0), value)
            r.peak_processes[group] = max(r.peak_processes.get(group, 0), count[group])
        r.peak_total_pss = max(r.peak_total_pss, sum(pss.values()))
        r.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> GroupedMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
