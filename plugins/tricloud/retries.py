"""One retry policy for every task of the pipelines: fail at once on what no retry can fix, retry the rest.

Airflow 3.3 evaluates a task's ``retry_policy`` (``airflow.sdk.definitions.retry_policy``) in the
worker with the exception the task raised. :data:`RETRY_POLICY` sorts that exception into a class:

- **deterministic** (:attr:`FailureClass.DETERMINISTIC`, decision FAIL, try 1 is the last): our own
  :class:`include.errors.DeterministicError` (a bad setting or connection, the hour's input missing or
  unusable, a failed quality gate or replica verification), a Spark job that failed on its input
  (:class:`~tricloud.operators.spark.SparkJobDataError`), a missing connection
  (``AirflowNotFoundException``), a lost hour lease, missing credentials, and the cloud replies that
  say the same: HTTP 401 / 403, and the well-known codes of a refused credential or a missing bucket /
  container (:data:`DETERMINISTIC_CODES`: ``AccessDenied``, ``NoSuchBucket``, ``InvalidAccessKeyId``,
  ``AuthenticationFailed``, ``ContainerNotFound`` …; a GCS 404 on the bucket itself);
- **transient** (:attr:`FailureClass.TRANSIENT`, RETRY): the endpoint is unreachable, dropped the
  connection or timed out, any other cloud reply (5xx, throttling, S3 ``RequestTimeout`` 400, Google
  ``Aborted`` / ``Conflict`` 409, Azure 408 / 409 lease conflicts / 429, a 404 of an object that a
  concurrent publish is replacing), a Spark job that failed other than on its input;
- **unknown** (:attr:`FailureClass.UNKNOWN`, RETRY too): nothing above matched. A built-in
  ``ValueError`` or ``FileNotFoundError`` is unknown: a file can vanish under a reader while
  ``publish_dir`` swaps a partition, and a library's ``ValueError`` says nothing about the next try.
  Retrying an unknown error with backoff is bounded by the task's ``retries``; failing it at once
  would turn every blip we did not foresee into a failed hour.

RETRY keeps the task's ``retry_delay`` and exponential backoff and never exceeds ``retries``.

The exception and its causes (``__cause__`` / ``__context__``, outermost first) are examined, so an
error the operator wraps (``ReplicationError`` from a ``botocore`` error) is classified by what really
happened. Classes are matched by their dotted names along the MRO, not imported: building the policy at
DAG parse time loads neither botocore, google-cloud nor azure (the SDK's ``RetryRule`` imports every
dotted name it is given at construction).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


class FailureClass(Enum):
    """What a failure says about the next try."""

    DETERMINISTIC = "deterministic"  # the next try fails the same way: fail now
    TRANSIENT = "transient"  # the next try may well succeed: retry with backoff
    UNKNOWN = "unknown"  # no rule matched: retried with backoff too, bounded by the task's retries


@dataclass(frozen=True)
class Classification:
    """The class of a failure and why (the exception that decided, and the rule)."""

    kind: FailureClass
    reason: str


#: Exceptions that mean the input or the configuration is wrong (dotted names; subclasses match too).
DETERMINISTIC_TYPES: dict[str, str] = {
    # Our own: every ConfigError / InputError / MissingInputError / CheckFailedError (include/errors.py).
    "include.errors.DeterministicError": "the configuration, the input or the data is wrong",
    "tricloud.operators.spark.SparkJobDataError": "the Spark job's input is missing or unusable",
    "airflow.sdk.exceptions.AirflowNotFoundException": "a connection is missing",
    "airflow.exceptions.AirflowNotFoundException": "a connection is missing",
    "include.lease.LeaseLostError": "another run holds the hour",
    "include.lease_store.LeaseStoreError": "the lake's store does not honour conditional writes",
    "botocore.exceptions.NoCredentialsError": "no AWS credentials",
    "botocore.exceptions.PartialCredentialsError": "incomplete AWS credentials",
    "botocore.exceptions.ParamValidationError": "an invalid request (e.g. a bad bucket name)",
    "google.auth.exceptions.DefaultCredentialsError": "no Google credentials",
    "azure.core.exceptions.ClientAuthenticationError": "Azure refused the credentials",
}

#: Exceptions that mean the service was not reachable or not ready (dotted names; subclasses match too).
TRANSIENT_TYPES: dict[str, str] = {
    "builtins.ConnectionError": "the endpoint is unreachable",
    "builtins.TimeoutError": "the endpoint timed out",
    "botocore.exceptions.ConnectionError": "the S3 endpoint is unreachable or timed out",
    "botocore.exceptions.HTTPClientError": "the S3 endpoint dropped the connection",
    "requests.exceptions.ConnectionError": "the endpoint is unreachable",
    "requests.exceptions.Timeout": "the endpoint timed out",
    "urllib3.exceptions.HTTPError": "the connection failed",
    "azure.core.exceptions.ServiceRequestError": "the Azure endpoint is unreachable",
    "azure.core.exceptions.ServiceResponseError": "the Azure endpoint dropped the connection",
    "tricloud.cluster.base.JobFailed": "the Spark job failed other than on its input (e.g. a lost worker)",
}

#: Service error codes that no retry fixes, whatever the HTTP status: refused or unknown credentials,
#: a bucket / container that does not exist or cannot exist. S3: docs.aws.amazon.com/AmazonS3/latest/API/
#: ErrorResponses.html; Azure Blob: learn.microsoft.com/rest/api/storageservices/blob-service-error-codes.
DETERMINISTIC_CODES = frozenset(
    {
        # S3 (and S3-compatible services)
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
        "NotSignedUp",
        # Azure Blob Storage
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationSourceIPMismatch",
        "InsufficientAccountPermissions",
        "InvalidAuthenticationInfo",
        "AccountIsDisabled",
        "ContainerNotFound",
        "ContainerDisabled",
        "InvalidResourceName",
    }
)
#: HTTP statuses that no retry fixes: the credentials are missing or refused.
DETERMINISTIC_STATUSES = frozenset({401, 403})
#: A GCS JSON-API request on a bucket itself (not one of its objects): its 404 means "no such bucket".
_GCS_BUCKET_URL = re.compile(r"/storage/v1/b/[^/?]+/?(?:\?|$)")


def _names(exc: BaseException) -> Iterator[str]:
    for cls in type(exc).__mro__:
        yield f"{cls.__module__}.{cls.__qualname__}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it, outermost first; each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _http_status(exc: BaseException) -> tuple[int | None, str | None]:
    """(HTTP status, service error code) of a cloud SDK's response error, else (None, None).

    botocore ``ClientError.response``; google-api-core ``GoogleAPICallError.code``; azure-core
    ``HttpResponseError.status_code`` / ``.error_code``. Read by attribute: nothing is imported.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "ResponseMetadata" in response:  # botocore ClientError
        code = (response.get("Error") or {}).get("Code")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return (int(status) if status else None), code
    names = set(_names(exc))
    if "google.api_core.exceptions.GoogleAPICallError" in names:
        return getattr(exc, "code", None), None
    if "azure.core.exceptions.HttpResponseError" in names:
        return getattr(exc, "status_code", None), getattr(exc, "error_code", None)
    return None, None


def _gcs_bucket_missing(exc: BaseException, status: int | None) -> bool:
    """A google-api-core 404 of a request on the bucket itself (``GET …/storage/v1/b/<bucket>``)."""
    if status != 404 or "google.api_core.exceptions.GoogleAPICallError" not in set(_names(exc)):
        return False
    url = str(getattr(getattr(getattr(exc, "response", None), "request", None), "url", "") or "")
    return bool(_GCS_BUCKET_URL.search(url))


def _classify_one(exc: BaseException) -> Classification | None:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    status, code = _http_status(exc)
    if code in DETERMINISTIC_CODES or status in DETERMINISTIC_STATUSES or _gcs_bucket_missing(exc, status):
        what = code or f"HTTP {status}"
        return Classification(FailureClass.DETERMINISTIC, f"{name} {what}: refused credentials or no such bucket")
    if status is not None or code is not None:
        what = " ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
        return Classification(FailureClass.TRANSIENT, f"{name} {what}: a cloud reply a later try can pass")
    names = list(_names(exc))
    # Transient first: a requests/urllib3 ConnectionError can also be an OSError/ValueError subclass.
    for table, kind in ((TRANSIENT_TYPES, FailureClass.TRANSIENT), (DETERMINISTIC_TYPES, FailureClass.DETERMINISTIC)):
        for n in names:
            if n in table:
                return Classification(kind, f"{name}: {table[n]}")
    return None


def classify(exc: BaseException) -> Classification:
    """Sort a task's exception (and its causes) into deterministic, transient or unknown.

    The outermost exception that some rule recognises decides, so an operator's own data error wins
    over the ``FileNotFoundError`` it wraps, and a wrapper nobody recognises is looked through.

    :param exc: the exception the task raised.
    :returns: the class and a reason naming the exception that decided.
    """
    for link in _chain(exc):
        if (found := _classify_one(link)) is not None:
            return found
    return Classification(FailureClass.UNKNOWN, f"{type(exc).__name__}: not a known deterministic error")


class TricloudRetryPolicy(RetryPolicy):
    """The SDK retry policy over :func:`classify`: FAIL deterministic errors, RETRY every other one.

    RETRY keeps the task's ``retry_delay`` and exponential backoff (``retry_delay=None``) and never
    exceeds ``retries``. Never serialised: Airflow keeps only a
    ``has_retry_policy`` flag and evaluates the policy object of the parsed DAG file in the worker.
    """

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Context | None = None
    ) -> RetryDecision:
        found = classify(exception)
        if found.kind is FailureClass.DETERMINISTIC:
            return RetryDecision.fail(f"deterministic, not retried: {found.reason}; fix it, then clear the task")
        if found.kind is FailureClass.TRANSIENT:
            return RetryDecision.retry(reason=f"transient, retried with backoff: {found.reason}")
        return RetryDecision.retry(reason=f"unknown, retried with backoff up to the task's retries: {found.reason}")

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> TricloudRetryPolicy:
        return cls()


#: The policy of every task (``default_args["retry_policy"]`` of the DAGs; SparkJobOperator's default).
RETRY_POLICY = TricloudRetryPolicy()
