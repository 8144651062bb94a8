"""The standalone master's status as the local and azure-vm backends read it (no Spark: a stub /json/ page)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tricloud.cluster.standalone import cluster_status, master_state

STATE = {
    "status": "ALIVE",
    "workers": [
        {"state": "ALIVE", "webuiaddress": "http://127.0.0.1:8081"},
        {"state": "ALIVE", "webuiaddress": "http://127.0.0.1:8082"},
        {"state": "DEAD", "webuiaddress": "http://127.0.0.1:8083"},
    ],
    "activeapps": [{"name": "Spark Connect server"}, {"name": "ingest_customers"}],
}


@pytest.fixture
def master_ui():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(STATE).encode() if self.path == "/json/" else b"not json"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_master_is_read_past_an_http_proxy_of_the_worker(master_ui, monkeypatch):
    # An Airflow worker behind a proxy: the proxy (nothing listens on port 9) must not carry the private call.
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert master_state(master_ui) == STATE


def test_no_answer_is_none(master_ui):
    assert master_state("http://127.0.0.1:9", timeout=1) is None
    assert master_state(f"{master_ui}/nothing") is None  # answers, but not JSON


def test_status_counts_live_workers_and_jobs_only():
    status = cluster_status(STATE, ignore_apps={"Spark Connect server"})
    assert (status.alive, status.workers, status.active_apps) == (True, 2, 1)
    gone = cluster_status(STATE, worker_gone=lambda w: w["webuiaddress"].endswith(":8082"))
    assert (gone.workers, gone.active_apps) == (1, 2)


@pytest.mark.parametrize("state", [None, {}, {**STATE, "status": "STANDBY"}])
def test_a_master_not_alive_has_nothing(state):
    status = cluster_status(state)
    assert (status.alive, status.workers, status.active_apps) == (False, 0, 0)
