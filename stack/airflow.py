"""Airflow standalone as a background process, and a small REST client for it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack.processes import ManagedProcess


class AirflowStandalone(ManagedProcess):
    """``airflow standalone`` in the background; ready when the API reports every component healthy."""

    def __init__(self, env: dict[str, str]) -> None:
        self.home = Path(env["AIRFLOW_HOME"])
        port = int(env.get("AIRFLOW__API__PORT", "8080"))
        super().__init__("standalone", ["airflow", "standalone"], self.home.parent, port, env)
        # Pid file and log live in AIRFLOW_HOME, next to what standalone writes itself.
        self.dir = self.home
        self.pid_file = self.home / "standalone.pid"
        self.log_file = self.home / "standalone.log"
        self.url = f"http://127.0.0.1:{port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                health = json.load(resp)
        except (OSError, ValueError):
            return False
        return all(
            (health.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")
        )

    def ready(self) -> bool:
        return self.healthy()

    def start(self, timeout: float = 180) -> bool:
        """Start unless running and healthy (a running but unhealthy one is replaced)."""
        if self.pid() and not self.healthy():
            self.stop()
        return super().start(timeout)

    def stop(self, timeout: float = 30) -> bool:
        return super().stop(timeout)

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
