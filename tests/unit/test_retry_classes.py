"""The shared retry policy (``tricloud.retries.RETRY_POLICY``) fed the exceptions the real components raise.

Each error is produced by the unchanged component: the provider hooks and their cloud SDKs against a
closed 127.0.0.1 port (nothing listens) or against a stdlib HTTP server on 127.0.0.1 that answers one
fixed cloud reply (503 SlowDown, 404 NoSuchBucket / ContainerNotFound); Airflow's connection lookup;
our enrichment on a lake without the hour. Nothing is patched. The real-Airflow side (a missing hour
fails on try 1, no retry): tests/faults/test_alerts.py.
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

from tricloud.retries import RETRY_POLICY, FailureClass, classify

pytestmark = pytest.mark.fast  # the fast tier: no emulator, no Spark, no Airflow server

FAIL, RETRY = RetryAction.FAIL, RetryAction.RETRY


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
    with pytest.raises(Exception) as info:
        call()
    return info.value


def decide(exc: BaseException) -> RetryAction:
    return RETRY_POLICY.evaluate(exc, try_number=1, max_tries=3).action


# -- S3 (amazon provider's S3Hook, botocore) -------------------------------------------------------
def s3_error(monkeypatch, url: str) -> BaseException:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    extra = {"endpoint_url": url, "region_name": "us-east-1", "config_kwargs": {"retries": {"max_attempts": 1}}}
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}  # pragma: allowlist secret
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_S3", json.dumps(conn))
    return raised(lambda: S3Hook(aws_conn_id="retry_s3").list_keys(bucket_name="tricloud-replicas"))


S3_404 = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchBucket</Code>"
    b"<Message>The specified bucket does not exist</Message></Error>"
)
S3_503 = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
)


class TestS3:
    def test_an_unreachable_endpoint_is_retried(self, monkeypatch):
        exc = s3_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        assert type(exc).__name__ == "EndpointConnectionError"
        assert decide(exc) is RETRY

    def test_throttling_is_retried(self, monkeypatch):
        with cloud_reply(503, S3_503, {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert exc.response["Error"]["Code"] == "SlowDown"
        assert decide(exc) is RETRY

    def test_a_missing_bucket_fails_at_once(self, monkeypatch):
        with cloud_reply(404, S3_404, {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert exc.response["Error"]["Code"] == "NoSuchBucket"
        assert decide(exc) is FAIL


# -- GCS (google provider's GCSHook, google-cloud-storage) -------------------------------------------
def gcs_error(monkeypatch, url: str) -> BaseException:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "tricloud"}}
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_GCS", json.dumps(conn))
    client = GCSHook(gcp_conn_id="retry_gcs").get_conn()
    # retry=None: the client's own retry would try for 120 s before the task sees the error.
    return raised(lambda: client.get_bucket("tricloud-replicas", retry=None))


def gcs_body(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "errors": [{"message": message}]}}).encode()


class TestGcs:
    def test_an_unreachable_endpoint_is_retried(self, monkeypatch):
        exc = gcs_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        assert type(exc).__module__.startswith("requests")
        assert decide(exc) is RETRY

    def test_service_unavailable_is_retried(self, monkeypatch):
        with cloud_reply(503, gcs_body(503, "Backend Error"), {"Content-Type": "application/json"}) as url:
            exc = gcs_error(monkeypatch, url)
        assert type(exc).__name__ == "ServiceUnavailable"
        assert decide(exc) is RETRY

    def test_a_missing_bucket_fails_at_once(self, monkeypatch):
        with cloud_reply(404, gcs_body(404, "Not Found"), {"Content-Type": "application/json"}) as url:
            exc = gcs_error(monkeypatch, url)
        assert type(exc).__name__ == "NotFound"
        assert decide(exc) is FAIL


# -- Azure Blob (microsoft-azure provider's WasbHook, azure-storage-blob) --------------------------------
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # pragma: allowlist secret (Azurite's published key)


def azure_error(monkeypatch, url: str, connection_string: str | None = None) -> BaseException:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    cs = connection_string or (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={url}/devstoreaccount1;"
    )
    conn = {"conn_type": "wasb", "extra": {"connection_string": cs}}
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_WASB", json.dumps(conn))
    return raised(
        lambda: (
            WasbHook(wasb_conn_id="retry_wasb")
            .get_conn()
            .get_container_client("tricloud-replicas")
            .get_container_properties(retry_total=0)
        )
    )


class TestAzure:
    def test_an_unreachable_endpoint_is_retried(self, monkeypatch):
        exc = azure_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        assert type(exc).__name__ == "ServiceRequestError"
        assert decide(exc) is RETRY

    def test_server_busy_is_retried(self, monkeypatch):
        with cloud_reply(503, b"", {"x-ms-error-code": "ServerBusy"}) as url:
            exc = azure_error(monkeypatch, url)
        assert getattr(exc, "status_code", None) == 503
        assert decide(exc) is RETRY

    def test_a_missing_container_fails_at_once(self, monkeypatch):
        with cloud_reply(404, b"", {"x-ms-error-code": "ContainerNotFound"}) as url:
            exc = azure_error(monkeypatch, url)
        assert type(exc).__name__ == "ResourceNotFoundError"
        assert decide(exc) is FAIL

    def test_a_malformed_connection_string_fails_at_once(self, monkeypatch):
        exc = azure_error(monkeypatch, "", connection_string="not a connection string")
        assert isinstance(exc, ValueError)
        assert decide(exc) is FAIL


# -- Airflow connections, our inputs ---------------------------------------------------------------------
class TestConfigAndData:
    def test_a_missing_connection_fails_at_once_naming_the_variable(self, monkeypatch):
        from tricloud.connections import require_connection

        monkeypatch.delenv("AIRFLOW_CONN_TRICLOUD_NOWHERE", raising=False)
        exc = raised(lambda: require_connection("tricloud_nowhere"))
        assert "AIRFLOW_CONN_TRICLOUD_NOWHERE" in str(exc)
        assert decide(exc) is FAIL

    def test_a_malformed_connection_fails_at_once(self, monkeypatch):
        from airflow.sdk import BaseHook

        monkeypatch.setenv("AIRFLOW_CONN_TRICLOUD_BROKEN", '{"conn_type": "aws", "extra": {oops}')
        exc = raised(lambda: BaseHook.get_connection("tricloud_broken"))
        assert decide(exc) is FAIL, repr(exc)

    def test_an_hour_without_clean_input_fails_at_once(self, tmp_path):
        from include.enrichment import enrich_hour

        exc = raised(lambda: enrich_hour(tmp_path, "2026-11-24T10:00:00+00:00"))
        assert type(exc).__name__ == "MissingInputError"
        assert decide(exc) is FAIL

    def test_a_spark_data_error_fails_and_a_lost_worker_is_retried(self):
        from airflow.sdk.exceptions import AirflowException

        from tricloud.cluster.base import JobFailed
        from tricloud.operators.spark import SparkJobDataError

        def operator_error(kind, message):  # as SparkJobOperator._finish raises them
            try:
                raise JobFailed(message, handle=None, status=None)
            except JobFailed as failure:
                try:
                    raise kind(f"Spark job k ended FAILED: {message}") from failure
                except kind as exc:
                    return exc

        assert decide(operator_error(SparkJobDataError, "NoInputError: no input for hour")) is FAIL
        assert decide(operator_error(AirflowException, "Lost executor 0: worker lost")) is RETRY

    def test_a_wrapped_cause_decides(self, monkeypatch):
        from include.replication.objects import ReplicationError

        cause = s3_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        exc = ReplicationError("copy to s3 failed")
        exc.__cause__ = cause  # as `raise ReplicationError(...) from cause` leaves it
        found = classify(exc)
        assert found.kind is FailureClass.TRANSIENT
        assert "EndpointConnectionError" in found.reason

    def test_an_unknown_error_keeps_the_tasks_retries(self):
        assert decide(RuntimeError("something new")) is RetryAction.DEFAULT
