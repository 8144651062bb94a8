"""The embedded Airflow as background processes, and a small REST client for it."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack.processes import ManagedProcess

TRIGGERER_ENV = "TRICLOUD_TRIGGERER"
_TRUE = ("1", "true", "yes", "on")


def wants_triggerer(env: dict[str, str]) -> bool:
    """Whether the embedded stack starts a triggerer (``TRICLOUD_TRIGGERER``: ``on``, ``off`` or ``auto``).

    Unset: ``on``, as ``airflow standalone``. ``auto`` (the stack's setting, stack.config.LEAN_SETTINGS):
    only when tasks defer by default (``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE`` true). No DAG of the
    project sets ``deferrable=True`` and the local backend offers no trigger, so the embedded hour never
    defers; a triggerer would hold ~220 MiB (two processes) for nothing (bench/results/stack_memory.md).
    A DAG of your own that defers needs ``TRICLOUD_TRIGGERER=on``.

    :raises ValueError: any other value, naming the setting and the values it takes.
    """
    value = env.get(TRIGGERER_ENV, "on").strip().lower() or "on"
    if value not in ("on", "off", "auto"):
        raise ValueError(
            f"{TRIGGERER_ENV}={value!r}: set it to on (deferrable tasks run), off, or auto "
            "(on when AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE is true)"
        )
    if value == "auto":
        return env.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "").strip().lower() in _TRUE
    return value == "on"


def airflow_processes(
    env: dict[str, str], state_dir: Path, api_port: int, triggerer: bool | None = None
) -> list[ManagedProcess]:
    """What ``airflow standalone`` runs, as separate processes, minus the log servers (and the triggerer
    unless :func:`wants_triggerer`; ``triggerer`` overrides it).

    Airflow 3.3 binds the scheduler's and the triggerer's log servers to every interface (hard-coded
    ``host=""``); on one machine the API server reads task logs from disk, so they are skipped.
    """

    def af(name: str, *args: str, port: int = 0) -> ManagedProcess:
        return ManagedProcess(name, ["airflow", *args], state_dir, port, env)

    processes = [
        af("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), port=api_port),
        af("scheduler", "scheduler", "--skip-serve-logs"),
        af("dag-processor", "dag-processor"),
    ]
    if wants_triggerer(env) if triggerer is None else triggerer:
        processes.append(af("triggerer", "triggerer", "--skip-serve-logs"))
    return processes


class LocalAirflow:
    """The embedded Airflow (SQLite, LocalExecutor): api-server, scheduler, dag-processor (and triggerer,
    :func:`wants_triggerer`).

    Ready when the API reports the metadata DB, scheduler, DAG processor (and triggerer, if started) healthy.
    Each component is a ManagedProcess (own session, pid file and log under ``AIRFLOW_HOME``).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.home = Path(env["AIRFLOW_HOME"])
        port = int(env.get("AIRFLOW__API__PORT", "8080"))
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        # What stop() and kill() reach: also a triggerer started before TRICLOUD_TRIGGERER turned it off.
        # Built without reading TRICLOUD_TRIGGERER, so a mistyped value never keeps Airflow running.
        self._stoppable = airflow_processes(env, self.home, port, triggerer=True)

    @functools.cached_property
    def processes(self) -> list[ManagedProcess]:
        """The components this stack starts.

        :raises ValueError: a bad ``TRICLOUD_TRIGGERER`` (:func:`wants_triggerer`); only starting and
            health checks read it, :meth:`stop` and :meth:`kill` do not.
        """
        return airflow_processes(self.env, self.home, self._port)

    @property
    def components(self) -> tuple[str, ...]:
        """The components the API's health report must list as healthy."""
        started = any(p.name == "triggerer" for p in self.processes)
        return ("metadatabase", "scheduler", "dag_processor") + (("triggerer",) if started else ())

    def pids(self) -> list[int]:
        return [pid for p in self.processes if (pid := p.pid())]

    def pid(self) -> int | None:
        """The API server's pid (the component people talk to)."""
        return self.processes[0].pid()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                health = json.load(resp)
        except (OSError, ValueError):
            return False
        return all((health.get(k) or {}).get("status") == "healthy" for k in self.components)

    def start(self, timeout: float = 180) -> bool:
        """Start unless running and healthy (a partly running or unhealthy one is replaced)."""
        if not self.prepare():
            return False
        self.launch(timeout)
        return True

    def prepare(self) -> bool:
        """Stop a partly running or unhealthy Airflow and migrate the metadata DB (about 5 s on SQLite).

        :returns: False when Airflow already runs healthy (nothing to do), else True: call :meth:`launch`.
            Split from :meth:`start` so a caller can migrate while it starts other things (``stack up``).
        """
        processes = self.processes  # a bad TRICLOUD_TRIGGERER fails here, before anything is stopped
        if self.healthy() and len(self.pids()) == len(processes):
            return False
        self.stop()
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["airflow", "db", "migrate"], env=self.env, check=True, capture_output=True)
        return True

    def launch(self, timeout: float = 180) -> None:
        """Start the components (after :meth:`prepare`) and wait until the API reports all of them healthy.

        :raises TimeoutError: not healthy after ``timeout`` seconds (names the log directory).
        """
        for proc in self.processes:
            proc.start(timeout=timeout)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s; logs in {self.home}/*/")
            time.sleep(0.5)

    def stop(self, timeout: float = 30) -> bool:
        # The scheduler last: it is the one that would start new tasks.
        return any([p.stop(timeout) for p in reversed(self._stoppable)])

    def kill(self) -> None:
        """SIGKILL every component's process group, as a crash would (for the fault tests)."""
        for pid in [pid for p in self._stoppable if (pid := p.pid())]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def admin_password(self) -> str | None:
        # SimpleAuthManager's api-server generates it on first start (never in git).
        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            return json.loads(path.read_text()).get("admin")
        except (OSError, ValueError):
            return None


class ApiError(RuntimeError):
    """An HTTP error reply of Airflow's REST API: ``status`` (int) and ``body`` (the reply's text)."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body}")
        self.status = status
        self.body = body


class RestClient:
    """Just enough of Airflow's REST API v2 for the demo and the tests."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        body = json.dumps({"username": username, "password": password}).encode()
        req = urllib.request.Request(
            f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.token = json.load(resp)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One REST call; its JSON reply.

        An HTTP 503 is retried (exponential wait from 0.5 s, for up to :attr:`UNAVAILABLE_FOR` seconds):
        Airflow answers 503 when the metadata database is briefly locked, e.g. ``POST /backfills`` on
        SQLite while the scheduler writes ("Database is locked. Backfill creation is not supported on
        SQLite under concurrent access"). Airflow rolls such a request back, but for ``POST /backfills``
        only best-effort (it commits the backfill row first and deletes it after the lock error; that
        delete can meet the same lock): a retry may then get 409 "Another backfill is running", and the
        error says that 503s came before it. Backfills belong on PostgreSQL (the production topology).

        :raises ApiError: any other HTTP error, or a 503 that outlasts the wait (status and body in it).
        """
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

        locked = 0
        for attempt in Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ApiError) and e.status == 503),
            wait=wait_exponential(multiplier=0.5, max=8),
            stop=stop_after_delay(self.UNAVAILABLE_FOR),
            reraise=True,
        ):
            with attempt:
                try:
                    return self._call_once(method, path, body)
                except ApiError as err:
                    if err.status == 503:
                        locked += 1
                    elif locked:
                        note = f" (after {locked} HTTP 503 replies, retried: the refused request may be partly applied)"
                        raise ApiError(method, path, err.status, err.body + note) from err
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    #: Seconds a 503 (metadata database locked) is retried before :meth:`call` gives up.
    UNAVAILABLE_FOR = 60.0

    def _call_once(self, method: str, path: str, body: dict | None) -> dict:
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:
            raise ApiError(method, path, err.code, err.read().decode(errors="replace")) from err

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", f"/dags/{dag_id}")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
