"""One retry policy for every task of the pipelines: fail at once on what no retry can fix, retry the rest.

Airflow 3.3 evaluates a task's ``retry_policy`` (``airflow.sdk.definitions.retry_policy``) in the
worker with the exception the task raised. :data:`RETRY_POLICY` sorts that exception into a class:

- **deterministic** (:attr:`FailureClass.DETERMINISTIC`, decision FAIL, try 1 is the last): the hour's
  input is missing or unusable (``NoInputError``, ``InputFormatError``, ``MissingInputError``, a zero-byte
  or re-shaped file, :class:`~tricloud.operators.spark.SparkJobDataError`), a connection is missing
  (``AirflowNotFoundException``) or malformed (``ValueError`` from the connection's parsing), the
  credentials are refused, the bucket / container does not exist (HTTP 4xx other than 408 and 429);
- **transient** (:attr:`FailureClass.TRANSIENT`, decision RETRY with the task's ``retry_delay`` and
  exponential backoff): nothing answers at the endpoint, the connection dropped or timed out, the service
  throttles or is unavailable (HTTP 429, 5xx, ``SlowDown``), a Spark job failed other than on its input
  (a lost worker or driver, ``tricloud.cluster.JobFailed``);
- anything else: DEFAULT, the task's own ``retries``.

The exception and its causes (``__cause__`` / ``__context__``, outermost first) are examined, so an
error the operator wraps (``ReplicationError`` from a ``botocore`` error) is classified by what really
happened. Classes are matched by their dotted names along the MRO, not imported: building the policy at
DAG parse time loads neither botocore, google-cloud nor azure (the SDK's ``RetryRule`` imports every
dotted name it is given at construction). A RETRY decision never extends ``retries``.
"""

from __future__ import annotations

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
    UNKNOWN = "unknown"  # no opinion: the task's own retries


@dataclass(frozen=True)
class Classification:
    """The class of a failure and why (the exception that decided, and the rule)."""

    kind: FailureClass
    reason: str


#: Exceptions that mean the input or the configuration is wrong (dotted names; subclasses match too).
DETERMINISTIC_TYPES: dict[str, str] = {
    "tricloud.operators.spark.SparkJobDataError": "the Spark job's input is missing or unusable",
    "include.jobs.inputs.NoInputError": "the hour has no input",
    "include.jobs.inputs.InputFormatError": "the input file is unusable (empty, truncated or re-shaped)",
    "include.enrichment.MissingInputError": "the hour's clean input is missing",
    "builtins.FileNotFoundError": "an input file is missing",
    "airflow.sdk.exceptions.AirflowNotFoundException": "a connection is missing",
    "airflow.exceptions.AirflowNotFoundException": "a connection is missing",
    "include.lease.LeaseLostError": "another run holds the hour",
    "include.paths.UnsupportedPathError": "the lake path is not supported",
    "botocore.exceptions.NoCredentialsError": "no AWS credentials",
    "botocore.exceptions.PartialCredentialsError": "incomplete AWS credentials",
    "botocore.exceptions.ParamValidationError": "an invalid request (e.g. a bad bucket name)",
    "google.auth.exceptions.DefaultCredentialsError": "no Google credentials",
    "azure.core.exceptions.ClientAuthenticationError": "Azure refused the credentials",
    # A malformed connection (URI, JSON extra, Azure connection string) or setting raises ValueError.
    "builtins.ValueError": "a malformed connection, setting or record",
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

#: Error codes of S3-compatible services that ask the client to slow down, whatever the HTTP status.
THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "ServerBusy"}
)
#: 4xx statuses that a later try can pass (request timeout, throttled).
RETRYABLE_4XX = frozenset({408, 429})


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


def _classify_one(exc: BaseException) -> Classification | None:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    status, code = _http_status(exc)
    if code in THROTTLING_CODES:
        return Classification(FailureClass.TRANSIENT, f"{name} {code}: the service throttles")
    if status is not None:
        if status >= 500 or status in RETRYABLE_4XX:
            return Classification(FailureClass.TRANSIENT, f"{name} HTTP {status}: the service is busy or down")
        if 400 <= status < 500:
            what = code or f"HTTP {status}"
            return Classification(
                FailureClass.DETERMINISTIC, f"{name} {what}: missing bucket/container, or refused credentials"
            )
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
    return Classification(FailureClass.UNKNOWN, f"{type(exc).__name__}: not classified, the task's retries apply")


class TricloudRetryPolicy(RetryPolicy):
    """The SDK retry policy over :func:`classify`: FAIL deterministic errors, RETRY transient ones.

    RETRY keeps the task's ``retry_delay`` and exponential backoff (``retry_delay=None``) and never
    exceeds ``retries``; UNKNOWN returns DEFAULT. Never serialised: Airflow keeps only a
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
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> TricloudRetryPolicy:
        return cls()


#: The policy of every task (``default_args["retry_policy"]`` of the DAGs; SparkJobOperator's default).
RETRY_POLICY = TricloudRetryPolicy()
