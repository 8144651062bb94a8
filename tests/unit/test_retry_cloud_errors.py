"""The shared retry policy (``tricloud.retries.RETRY_POLICY``) fed the errors the cloud SDKs really raise.

Each error is produced by the unchanged component: the provider hooks (``S3Hook``, ``GCSHook``, ``WasbHook``)
and their cloud SDKs against a closed 127.0.0.1 port (nothing listens) or against a stdlib HTTP server on
127.0.0.1 that answers one fixed cloud reply (503 SlowDown, 404 NoSuchBucket / ContainerNotFound, 400
RequestTimeout, 403 AccessDenied / AuthenticationFailed, 409 lease conflicts, 429): tests/support/cloud_errors.py.
Nothing is patched. Deterministic = fail at try 1; everything else is retried with backoff, bounded by the
task's retries. Our own errors (connections, settings, inputs, Spark jobs): tests/unit/test_retry_classes.py.
"""

from __future__ import annotations

import json

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction

from tests.support.cloud_errors import closed_port, cloud_reply, decide, raised, s3_error
from tricloud.retries import FailureClass, classify

pytestmark = pytest.mark.fast  # the fast tier: no emulator, no Spark, no Airflow server

FAIL, RETRY = RetryAction.FAIL, RetryAction.RETRY


def transient(exc: BaseException) -> bool:
    """Retried *as transient*: an unknown error is retried too, so RETRY alone does not pin the class."""
    return decide(exc) is RETRY and classify(exc).kind is FailureClass.TRANSIENT


# -- S3 (amazon provider's S3Hook, botocore) -------------------------------------------------------
S3_404 = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchBucket</Code>"
    b"<Message>The specified bucket does not exist</Message></Error>"
)


def s3_body(code: str) -> bytes:
    return f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode()


S3_503 = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
)


class TestS3:
    def test_an_unreachable_endpoint_is_retried(self, monkeypatch):
        exc = s3_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        assert type(exc).__name__ == "EndpointConnectionError"
        assert transient(exc)

    def test_throttling_is_retried(self, monkeypatch):
        with cloud_reply(503, S3_503, {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert exc.response["Error"]["Code"] == "SlowDown"
        assert transient(exc)

    def test_a_missing_bucket_fails_at_once(self, monkeypatch):
        with cloud_reply(404, S3_404, {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert exc.response["Error"]["Code"] == "NoSuchBucket"
        assert decide(exc) is FAIL

    def test_a_request_timeout_400_is_retried(self, monkeypatch):
        """S3 answers an idle upload with 400 RequestTimeout: a 4xx that a later try passes."""
        with cloud_reply(400, s3_body("RequestTimeout"), {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert (exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "RequestTimeout",
            400,
        )
        assert transient(exc)

    @pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (403, "InvalidAccessKeyId")])
    def test_refused_credentials_fail_at_once(self, monkeypatch, status, code):
        with cloud_reply(status, s3_body(code), {"Content-Type": "application/xml"}) as url:
            exc = s3_error(monkeypatch, url)
        assert exc.response["Error"]["Code"] == code
        assert decide(exc) is FAIL
        assert code in classify(exc).reason


# -- GCS (google provider's GCSHook, google-cloud-storage) -------------------------------------------
def gcs_error(monkeypatch, url: str) -> BaseException:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "tricloud"}}
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_GCS", json.dumps(conn))
    client = GCSHook(gcp_conn_id="retry_gcs").get_conn()
    # retry=None: the client's own retry would try for 120 s before the task sees the error.
    return raised(lambda: client.get_bucket("tricloud-replicas", retry=None))


def gcs_object_error(monkeypatch, url: str) -> BaseException:
    """The error of downloading one object (a request on ``…/b/<bucket>/o/<object>``)."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "tricloud"}}
    monkeypatch.setenv("AIRFLOW_CONN_RETRY_GCS", json.dumps(conn))
    client = GCSHook(gcp_conn_id="retry_gcs").get_conn()
    blob = client.bucket("tricloud-replicas").blob("enriched/date=2026-11-24/hour=10/part-0.parquet")
    return raised(lambda: blob.download_as_bytes(retry=None))


def gcs_body(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "errors": [{"message": message}]}}).encode()


def gcs_reply_error(monkeypatch, code: int, message: str, read=gcs_error) -> BaseException:
    """The error ``read`` (:func:`gcs_error` or :func:`gcs_object_error`) raises against a server answering
    every request with GCS's JSON error ``code`` / ``message``."""
    with cloud_reply(code, gcs_body(code, message), {"Content-Type": "application/json"}) as url:
        return read(monkeypatch, url)


class TestGcs:
    def test_an_unreachable_endpoint_is_retried(self, monkeypatch):
        exc = gcs_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        assert type(exc).__module__.startswith("requests")
        assert transient(exc)

    def test_service_unavailable_is_retried(self, monkeypatch):
        exc = gcs_reply_error(monkeypatch, 503, "Backend Error")
        assert type(exc).__name__ == "ServiceUnavailable"
        assert transient(exc)

    def test_a_missing_bucket_fails_at_once(self, monkeypatch):
        exc = gcs_reply_error(monkeypatch, 404, "Not Found")
        assert type(exc).__name__ == "NotFound"
        assert decide(exc) is FAIL

    def test_a_missing_object_is_retried(self, monkeypatch):
        """A 404 of an object (not of the bucket) can be a partition a concurrent publish is replacing."""
        exc = gcs_reply_error(monkeypatch, 404, "No such object", read=gcs_object_error)
        assert type(exc).__name__ == "NotFound"
        assert transient(exc)

    def test_a_conflict_409_is_retried(self, monkeypatch):
        """409 over HTTP is api_core's Conflict, whose gRPC form is Aborted (a concurrent change): retried."""
        exc = gcs_reply_error(monkeypatch, 409, "conflict", read=gcs_object_error)
        assert type(exc).__name__ == "Conflict" and exc.code == 409
        assert transient(exc)

    def test_aborted_is_retried(self):
        """``Aborted`` as the library builds it from a gRPC ABORTED status (code 409)."""
        import grpc
        from google.api_core import exceptions

        exc = exceptions.from_grpc_status(grpc.StatusCode.ABORTED, "transaction aborted, retry")
        assert type(exc).__name__ == "Aborted" and exc.code == 409
        assert transient(exc)

    def test_refused_credentials_fail_at_once(self, monkeypatch):
        exc = gcs_reply_error(monkeypatch, 403, "denied", read=gcs_object_error)
        assert type(exc).__name__ == "Forbidden" and exc.code == 403
        assert decide(exc) is FAIL

    def test_a_401_fails_at_once(self, monkeypatch):
        """On 401 the client tries to refresh its credentials; anonymous ones cannot be: google.auth says so."""
        exc = gcs_reply_error(monkeypatch, 401, "denied", read=gcs_object_error)
        assert type(exc).__module__ == "google.auth.exceptions"
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
        assert transient(exc)

    def test_server_busy_is_retried(self, monkeypatch):
        with cloud_reply(503, b"", {"x-ms-error-code": "ServerBusy"}) as url:
            exc = azure_error(monkeypatch, url)
        assert getattr(exc, "status_code", None) == 503
        assert transient(exc)

    def test_a_missing_container_fails_at_once(self, monkeypatch):
        with cloud_reply(404, b"", {"x-ms-error-code": "ContainerNotFound"}) as url:
            exc = azure_error(monkeypatch, url)
        assert type(exc).__name__ == "ResourceNotFoundError"
        assert decide(exc) is FAIL

    @pytest.mark.parametrize(
        ("status", "code"),
        [(409, "LeaseAlreadyPresent"), (409, "LeaseIdMismatchWithContainerOperation"), (429, None), (408, None)],
    )
    def test_lease_conflicts_throttling_and_timeouts_are_retried(self, monkeypatch, status, code):
        with cloud_reply(status, b"", {"x-ms-error-code": code} if code else {}) as url:
            exc = azure_error(monkeypatch, url)
        assert type(exc).__module__.startswith("azure.core")
        assert (exc.status_code, exc.error_code) == (status, code)
        assert transient(exc)

    @pytest.mark.parametrize(("status", "code"), [(403, "AuthenticationFailed"), (403, "AuthorizationFailure")])
    def test_refused_credentials_fail_at_once(self, monkeypatch, status, code):
        with cloud_reply(status, b"", {"x-ms-error-code": code}) as url:
            exc = azure_error(monkeypatch, url)
        assert exc.error_code == code
        assert decide(exc) is FAIL

    def test_a_malformed_connection_string_fails_at_once_naming_the_connection(self, monkeypatch):
        """The SDK's bare ValueError (retried if it came through) becomes a ConfigError where we build the
        client: fails at try 1 saying what to set."""
        from tricloud.replication.stores import AzureBlobStore

        conn = {"conn_type": "wasb", "extra": {"connection_string": "not a connection string"}}
        monkeypatch.setenv("AIRFLOW_CONN_RETRY_WASB", json.dumps(conn))
        exc = raised(lambda: AzureBlobStore("tricloud-replicas", "retry_wasb").list_keys("_tricloud_check/"))
        assert type(exc).__name__ == "ConfigError"
        assert type(exc.__cause__) is ValueError and "malformed" in str(exc.__cause__)  # the SDK's own error
        assert "AIRFLOW_CONN_RETRY_WASB" in str(exc) and "connection_string" in str(exc)
        assert decide(exc) is FAIL
