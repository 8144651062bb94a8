"""Background processes of the local stack: start once, find by pid file, stop by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is a child of this process that has exited."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class ManagedProcess:
    def __init__(self, name: str, cmd: list[str], state_dir: Path, port: int, env: dict[str, str]) -> None:
        self.name = name
        self.cmd = cmd
        self.dir = state_dir / name
        self.port = port
        self.env = env
        self.pid_file = self.dir / f"{name}.pid"
        self.log_file = self.dir / f"{name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            _reap(pid)  # an exited child of ours is a zombie until reaped, and kill(pid, 0) would find it
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        # A process without a port (port 0) is ready once it runs.
        return port_open("127.0.0.1", self.port) if self.port else self.pid() is not None

    def start(self, timeout: float = 60, reuse: bool = True) -> bool:
        """Start unless something already answers on the port. Returns True if it started it.

        :param reuse: False in a world of its own (tests, benchmarks): a server on the port that is
            not this process's (no live pid in its pid file) is someone else's, e.g. a ``make demo``
            emulator, and raises ``RuntimeError`` instead of being used.
        """
        if self.ready():
            if not reuse and self.pid() is None:
                raise RuntimeError(
                    f"{self.name}: port {self.port} is already served by another process (not started from "
                    f"{self.dir}); refusing to use it"
                )
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not self.ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {proc.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} not listening on {self.port} after {timeout:.0f}s; see {self.log_file}"
                )
            time.sleep(0.2)
        return True

    def stop(self, timeout: float = 15) -> bool:
        pid = self.pid()
        if not pid:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Started by this very process (tests, benchmarks)? Then its group "exists" until the
            # leader is reaped: every stop used to wait for the full timeout.
            _reap(pid)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
