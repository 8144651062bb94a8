"""A local OpenLineage receiver: an HTTP server on 127.0.0.1 (free port) that keeps every event POSTed.

What Marquez would receive (the provider's ``http`` transport POSTs each event as JSON to
``{url}/api/v1/lineage``), minus the storage: the events stay in a list for the test to read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LineageReceiver:
    """The events received so far (``events``: parsed JSON, in arrival order) and the server's ``url``."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.paths: list[str] = []
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def transport(self) -> str:
        """The value of ``AIRFLOW__OPENLINEAGE__TRANSPORT`` that sends every event here."""
        return json.dumps({"type": "http", "url": self.url, "endpoint": "api/v1/lineage", "timeout": 5})

    def complete_events(self, job_namespace_prefix: str) -> dict[str, dict]:
        """The COMPLETE event of each task job whose name starts with ``job_namespace_prefix`` (by job name)."""
        with self.lock:
            events = list(self.events)
        return {
            e["job"]["name"]: e
            for e in events
            if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith(job_namespace_prefix)
        }


@contextmanager
def lineage_receiver() -> Iterator[LineageReceiver]:
    """Serve on a free port of 127.0.0.1 until the block ends."""
    holder: dict[str, LineageReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver = holder["r"]
            with receiver.lock:
                receiver.paths.append(self.path)
                receiver.events.append(json.loads(body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet: the test reads the events, not the access log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = receiver = LineageReceiver(server)
    thread = threading.Thread(target=server.serve_forever, name="lineage-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def openlineage_on(monkeypatch, transport: str) -> Iterator[None]:
    """OpenLineage on for the block, in this process: ``transport`` set and the provider's listener registered.

    The provider decides at import whether its plugin registers the listener (only when a transport is
    configured), and the task SDK builds its listener manager once per process: a test session has
    imported both with lineage off, so the listener is added here (the very object the plugin would
    register) and removed at the end, as is the transport.
    """
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager

    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", transport)
    manager, listener = get_listener_manager(), get_openlineage_listener()
    registered = manager.pm.is_registered(listener)
    manager.add_listener(listener)
    try:
        yield
    finally:
        if not registered:
            manager.pm.unregister(listener)
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
