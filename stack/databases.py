"""Throw-away PostgreSQL and MariaDB servers from Debian's packages, in a private directory on 127.0.0.1.

Used by the production topology (Postgres: metadata DB + warehouse) and by the warehouse tests
(Postgres and MariaDB). Neither package starts anything on install; these classes run the server
binaries directly, as the ``postgres`` / ``mysql`` user when we are root (both refuse to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from stack.processes import ManagedProcess, port_open


def _as(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _own(path: Path, user: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, user)


class PostgresServer:
    """``initdb`` once, then ``pg_ctl start`` on ``port``; socket and data under ``directory``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.data = directory / "data"

    @staticmethod
    def bin() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise FileNotFoundError("PostgreSQL is not installed: apt-get install postgresql (`make test` does it)")
        return Path(found[-1]).parent

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*_as("postgres"), str(self.bin() / tool), *args], check=check, capture_output=True)

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            _own(self.dir, "postgres")
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")
        if port_open("127.0.0.1", self.port):
            if self.pid() is None:
                raise RuntimeError(f"PostgreSQL port {self.port} is served by another process, not {self.data}")
        else:
            opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "-o", opts, "start")

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; return its connection URI (Airflow's form)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), name, check=False)  # exists on re-start
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None

    def stop(self) -> None:
        if (self.data / "PG_VERSION").exists() and port_open("127.0.0.1", self.port):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop", check=False)


class MariaDBServer:
    """``mariadb-install-db`` once, then ``mariadbd`` on ``port`` (root only through the private socket)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.data = directory / "data"
        self.socket = directory / "mysqld.sock"
        self.user = "mysql" if os.geteuid() == 0 else os.environ.get("USER", "")
        self.process = ManagedProcess(
            "mariadbd",
            [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--socket={self.socket}",
                f"--pid-file={directory / 'mariadbd.server.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",  # throw-away data: no fsync per commit
                *([f"--user={self.user}"] if os.geteuid() == 0 else []),
            ],
            directory,
            port,
            {"PATH": os.environ.get("PATH", "")},
        )

    def start(self, timeout: float = 60) -> None:
        if not Path("/usr/sbin/mariadbd").exists():
            raise FileNotFoundError("MariaDB is not installed: apt-get install mariadb-server (`make test` does it)")
        if not (self.data / "mysql").exists():
            _own(self.dir, "mysql")
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={self.data}",
                    *([f"--user={self.user}"] if os.geteuid() == 0 else []),
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
            )
        self.process.start(timeout=timeout, reuse=False)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():  # the port opens a moment before the socket
            if time.monotonic() > deadline:
                raise TimeoutError(f"mariadbd socket {self.socket} missing; see {self.process.log_file}")
            time.sleep(0.1)

    def create_database(self, name: str, user: str = "warehouse", password: str = "warehouse") -> str:  # noqa: S107
        """Create ``name`` and a user with all rights on it; return its connection URI (Airflow's form)."""
        import MySQLdb

        admin = MySQLdb.connect(unix_socket=str(self.socket), user="root")
        try:
            cur = admin.cursor()
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT ALL ON `{name}`.* TO '{user}'@'127.0.0.1'")
        finally:
            admin.close()
        return f"mysql://{user}:{password}@127.0.0.1:{self.port}/{name}"

    def pid(self) -> int | None:
        return self.process.pid()

    def stop(self) -> None:
        self.process.stop(timeout=30)
