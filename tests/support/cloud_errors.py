"""Real errors for the retry tests, from unchanged components: a 127.0.0.1 port where nothing listens, a
stdlib HTTP server answering one fixed cloud reply, the amazon provider's ``S3Hook`` against either, and
what the shared retry policy decides about an error on try 1.

Used by tests/unit/test_retry_cloud_errors.py (the cloud SDKs' errors), test_retry_classes.py (our own
errors, and a cloud error wrapped in ours) and test_lease_callers.py (a lease renewal answered by an error).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction

from tricloud.retries import RETRY_POLICY


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def cloud_reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Iterator[str]:
    """A 127.0.0.1 HTTP server answering every request with one fixed reply; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _reply

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def raised(call) -> BaseException:
    """The exception ``call()`` raises (the test fails when it raises none)."""
    with pytest.raises(Exception) as info:
        call()
    return info.value


def decide(exc: BaseException) -> RetryAction:
    """What :data:`tricloud.retries.RETRY_POLICY` does with ``exc`` on try 1 of 3: FAIL or RETRY."""
    return RETRY_POLICY.evaluate(exc, try_number=1, max_tries=3).action


def s3_error(monkeypatch, url: str) -> BaseException:
    """The error ``S3Hook.list_keys`` raises against the endpoint ``url`` (one attempt, no client retry),
    through the connection ``retry_s3`` set in the environment."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    extra = {"endpoint_url": url, "region_name": "us-east-1", "config_kwargs": {"retries": {"max_attempts": 1}}}
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}  # pragma: allowlist secret
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_S3", json.dumps(conn))
    return raised(lambda: S3Hook(aws_conn_id="retry_s3").list_keys(bucket_name="tricloud-replicas"))
