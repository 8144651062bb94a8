"""Airflow standalone as a background process, and a small REST client for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class AirflowStandalone:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.home = Path(env["AIRFLOW_HOME"])
        self.port = int(env.get("AIRFLOW__API__PORT", "8080"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid_file = self.home / "standalone.pid"
        self.log_file = self.home / "standalone.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                health = json.load(resp)
        except (OSError, ValueError):
            return False
        return all(
            (health.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")
        )

    def start(self, timeout: float = 180) -> bool:
        """Start unless running; wait until healthy. Returns True if it started it."""
        if self.pid() and self.healthy():
            return False
        if self.pid():
            self.stop()
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                ["airflow", "standalone"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited with {proc.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s; see {self.log_file}")
            time.sleep(1)
        return True

    def stop(self, timeout: float = 30) -> bool:
        pid = self.pid()
        if not pid:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def admin_password(self) -> str | None:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            return json.loads(path.read_text()).get("admin")
        except (OSError, ValueError):
            return None


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
            raise RuntimeError(f"{method} {path}: HTTP {err.code}: {err.read().decode(errors='replace')}") from err

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", f"/dags/{dag_id}")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
