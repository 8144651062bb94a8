"""stack.airflow.RestClient against a local HTTP server that answers like Airflow's API under a locked DB."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stack.airflow import ApiError, RestClient

LOCKED = {
    "detail": "Database is locked. Backfill creation is not supported on SQLite under concurrent access. "
    "Please use PostgreSQL or MySQL."
}


class FakeApi(ThreadingHTTPServer):
    """Answers ``POST /auth/token``; every other call gets the next queued (status, body), then 200 ``{}``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.replies: list[tuple[int, dict]] = []
        self.calls: list[tuple[str, str, dict | None]] = []


class Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.path == "/auth/token":
            return self._reply(201, {"access_token": "t"})
        self.server.calls.append((self.command, self.path, body))
        status, reply = self.server.replies.pop(0) if self.server.replies else (200, {"ok": True})
        self._reply(status, reply)

    do_GET = do_POST = _handle


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_of(api: FakeApi, unavailable_for: float = 10.0) -> RestClient:
    client = RestClient(f"http://127.0.0.1:{api.server_address[1]}", "admin", "pw")
    client.UNAVAILABLE_FOR = unavailable_for
    return client


def test_a_locked_database_503_is_retried_until_the_call_goes_through(api):
    api.replies = [(503, LOCKED), (503, LOCKED)]
    body = {"dag_id": "d", "from_date": "2024-01-01T00:00:00+00:00", "to_date": "2024-01-01T00:00:00+00:00"}
    assert client_of(api).call("POST", "/backfills", body) == {"ok": True}
    assert api.calls == [("POST", "/api/v2/backfills", body)] * 3


def test_a_503_that_outlasts_the_wait_raises_with_status_and_body(api):
    api.replies = [(503, LOCKED)] * 50
    with pytest.raises(ApiError, match="HTTP 503: .*Database is locked") as err:
        client_of(api, unavailable_for=1.0).call("POST", "/backfills", {})
    assert err.value.status == 503
    assert 2 <= len(api.calls) < 50


@pytest.mark.parametrize("status", [400, 404, 409, 500])
def test_other_errors_fail_at_once(api, status):
    api.replies = [(status, {"detail": "no"})]
    with pytest.raises(ApiError, match=f"GET /dags/x: HTTP {status}") as err:
        client_of(api).call("GET", "/dags/x")
    assert err.value.status == status
    assert len(api.calls) == 1


def test_a_conflict_after_retried_503s_says_so(api):
    """Airflow 3.3 commits a backfill before its runs; a lock error's cleanup may fail, so the retry conflicts."""
    api.replies = [(503, LOCKED), (409, {"detail": "Another backfill is running for dag d"})]
    with pytest.raises(ApiError, match=r"HTTP 409: .*Another backfill.*after 1 HTTP 503 replies") as err:
        client_of(api).call("POST", "/backfills", {})
    assert err.value.status == 409
    assert len(api.calls) == 2
