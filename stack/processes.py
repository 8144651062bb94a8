"""Background processes of the local stack: start once, find by pid file, stop by process group."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from include.processes import read_pid, stop_group, write_pid


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
        """The live process of the pid file (an exited child of ours is reaped, a zombie is not alive)."""
        return read_pid(self.pid_file)

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
        write_pid(self.pid_file, proc.pid)
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
        stopped = stop_group(pid, timeout)  # SIGTERM, wait (reaping our own child), then SIGKILL
        self.pid_file.unlink(missing_ok=True)
        return stopped
