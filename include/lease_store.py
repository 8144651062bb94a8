"""Where an hour lease's files live: a local directory, or a prefix of an object store.

:class:`include.lease.HourLease` needs seven operations on the small files of one hour's lease
(``000001.json``, ``000001.<task>.try2``, …): list the names, read one, **create one only if the name is
free** (two runs racing for generation n+1: exactly one wins), replace one (only its holder does: renewal,
release), create an empty marker, test that a name exists, delete one (pruning).

- :class:`LocalLeaseDir`: a directory; exclusive create by hard link (``link`` fails if the name exists),
  replace by rename. Unchanged from before the object-store lake.
- :class:`S3LeaseDir`: a prefix on S3 through a boto3 S3 client; exclusive create is a **conditional
  PUT** ``If-None-Match: *`` (S3 answers 412 ``PreconditionFailed`` when the key exists, and 409
  ``ConditionalRequestConflict`` when another conditional write of the key is in flight: both mean
  "another run got there first"); a replace is one PUT (atomic). On the Airflow side the client is the
  amazon provider's (``S3Hook(aws_conn_id).get_conn()``, :mod:`tricloud.hour_lease`); a Spark driver,
  which only *checks* the lease, uses ``boto3.client("s3")`` with the standard client settings.

- :class:`GcsLeaseDir`: a prefix on GCS through a google-cloud-storage client; exclusive create is an upload
  with the precondition ``ifGenerationMatch=0`` (GCS answers 412 when the object exists); a replace is one
  upload (atomic). On the Airflow side the client is the google provider's (``GCSHook(gcp_conn_id).get_conn()``);
  a Spark driver uses ``storage.Client()`` (Application Default Credentials, or ``STORAGE_EMULATOR_HOST``).

pyarrow's file systems cannot do a conditional write, which is why the lease talks to S3 and GCS through
their SDK clients (the provider hooks' clients) rather than through the lake's pyarrow file system. Both
stores are probed once per client and bucket: a store that ignores the condition is refused
(:class:`LeaseStoreError`) rather than letting two runs hold one hour. No Airflow here.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from include.paths import ObjectStoreLakeNotSupported

#: (id of a client, bucket) pairs whose conditional writes were probed and work.
_CONDITIONAL_WRITES_OK: set[tuple[int, str]] = set()


class LeaseStoreError(RuntimeError):
    """The lease's store cannot give one writer per hour (see :meth:`S3LeaseDir.require_conditional_writes`)."""


#: Base classes of what an object store's client raises when a request fails (dotted names, matched along
#: the MRO so nothing is imported): botocore (S3), google-api-core / google-auth (GCS), azure-core (Blob).
STORE_ERROR_TYPES = frozenset(
    {
        "botocore.exceptions.BotoCoreError",
        "botocore.exceptions.ClientError",
        "google.api_core.exceptions.GoogleAPIError",
        "google.auth.exceptions.GoogleAuthError",
        "azure.core.exceptions.AzureError",
    }
)


def is_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed request to the lake's store: an ``OSError`` (a local lake's file system,
    or a connection error) or a cloud SDK's request error (:data:`STORE_ERROR_TYPES`), including
    :class:`LeaseStoreError`. The SDK clients have already retried what their retry policy retries."""
    if isinstance(exc, (OSError, LeaseStoreError)):
        return True
    return any(f"{c.__module__}.{c.__qualname__}" in STORE_ERROR_TYPES for c in type(exc).__mro__)


class LeaseDir(Protocol):
    """The files of one hour's lease. ``where`` names the place for people (errors, logs)."""

    where: str

    def names(self) -> list[str]: ...
    def read(self, name: str) -> str | None: ...
    def create(self, name: str, text: str) -> bool: ...
    def replace(self, name: str, text: str) -> None: ...
    def touch(self, name: str) -> None: ...
    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> None: ...


class LocalLeaseDir:
    """A lease directory on a local (or NFS) file system."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def names(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except FileNotFoundError:
            return []

    def read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except FileNotFoundError:
            return None

    def create(self, name: str, text: str) -> bool:
        """Write ``name`` with ``text`` unless it exists: written to a temporary name, then hard-linked (the
        link fails if the name exists, so of two creators exactly one wins and nobody sees half a file)."""
        import errno

        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(text)
        try:
            os.link(tmp, self.path / name)
            return True
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise OSError(
                    err.errno,
                    f"cannot hard-link {self.path / name} ({err.strerror}): LAKE_ROOT must be on a "
                    "filesystem with hard links (local disk, NFS)",
                ) from err
            raise
        finally:
            tmp.unlink()

    def replace(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.path / name)

    def touch(self, name: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / name).touch()

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class _BucketLeaseDir:
    """What the object-store lease directories share: ``bucket``, ``prefix`` and ``where`` from the URI, and
    a client made on first use by the subclass's ``_new_client`` unless one was given."""

    def __init__(self, uri: str, client: Any = None) -> None:
        url = urlsplit(uri.rstrip("/"))
        self.bucket, self.prefix = url.netloc, url.path.strip("/") + "/"
        self.where = uri.rstrip("/")
        self._client = client

    @staticmethod
    def _new_client() -> Any:
        raise NotImplementedError

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client


class S3LeaseDir(_BucketLeaseDir):
    """A lease "directory" ``s3://bucket/prefix/`` on S3, through a boto3 S3 client (see the module docstring).

    :param uri: ``s3://bucket/key/prefix`` of the hour's lease.
    :param client: a boto3 S3 client; default ``boto3.client("s3")`` (standard client settings).
    """

    @staticmethod
    def _new_client() -> Any:
        import boto3

        return boto3.client("s3")

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        return [o["Key"][len(self.prefix) :] for page in pages for o in page.get("Contents", [])]

    def read(self, name: str) -> str | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read().decode()
        except self.client.exceptions.NoSuchKey:
            return None

    def create(self, name: str, text: str) -> bool:
        """PUT ``name`` with ``If-None-Match: *``: True when written, False when the key already existed
        (412) or another conditional write of it was in flight (409).

        :raises LeaseStoreError: the store does not honour conditional writes (checked once per client and
            bucket: :meth:`require_conditional_writes`).
        """
        from botocore.exceptions import ClientError

        self.require_conditional_writes()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=text.encode(), IfNoneMatch="*")
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def require_conditional_writes(self) -> None:
        """Make sure the store refuses a second ``If-None-Match: *`` PUT of one key, once per client and bucket.

        An S3-compatible store that ignores the header (or answers 501) would let two runs each create
        generation n+1 and both pass the fencing check: two writers of one hour. A probe object under the
        lease prefix is created twice and deleted.

        :raises LeaseStoreError: the store wrote the second PUT, or does not implement conditional writes;
            the message names what to use instead.
        """
        from botocore.exceptions import ClientError

        if (id(self.client), self.bucket) in _CONDITIONAL_WRITES_OK:
            return
        key = f"{self.prefix}.probe-{uuid.uuid4().hex}"
        refused = False
        try:
            for _ in range(2):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict", "NotImplemented", "501"):
                raise
            refused = code in ("PreconditionFailed", "ConditionalRequestConflict")
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        if not refused:
            raise LeaseStoreError(
                f"s3://{self.bucket}/{self.prefix} does not honour conditional writes (If-None-Match: *), so two "
                "runs could both hold an hour: use Amazon S3 or an S3-compatible store that implements them, "
                "or a local LAKE_ROOT"
            )
        _CONDITIONAL_WRITES_OK.add((id(self.client), self.bucket))

    def replace(self, name: str, text: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=text.encode())

    def touch(self, name: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=b"")

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + name)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)


class GcsLeaseDir(_BucketLeaseDir):
    """A lease "directory" ``gs://bucket/prefix/`` on GCS, through a google-cloud-storage client (module docstring).

    :param uri: ``gs://bucket/key/prefix`` of the hour's lease.
    :param client: a ``google.cloud.storage.Client``; default ``storage.Client()`` (Application Default
        Credentials; anonymous on the emulator named by ``STORAGE_EMULATOR_HOST``).
    """

    @staticmethod
    def _new_client() -> Any:
        from google.cloud import storage

        return storage.Client()

    def _blob(self, key: str) -> Any:
        return self.client.bucket(self.bucket).blob(key)

    def names(self) -> list[str]:
        return [b.name[len(self.prefix) :] for b in self.client.list_blobs(self.bucket, prefix=self.prefix)]

    def read(self, name: str) -> str | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob(self.prefix + name).download_as_bytes().decode()
        except NotFound:
            return None

    def create(self, name: str, text: str) -> bool:
        """Upload ``name`` with ``ifGenerationMatch=0``: True when written, False when it already existed (412).

        :raises LeaseStoreError: the store does not honour the precondition (checked once per client and
            bucket: :meth:`require_conditional_writes`).
        """
        from google.api_core.exceptions import PreconditionFailed

        self.require_conditional_writes()
        try:
            self._blob(self.prefix + name).upload_from_string(text.encode(), if_generation_match=0)
            return True
        except PreconditionFailed:
            return False

    def require_conditional_writes(self) -> None:
        """Make sure the store refuses a second ``ifGenerationMatch=0`` upload of one object, once per client
        and bucket (a probe object under the lease prefix, written twice, then deleted).

        GCS itself honours the precondition; gcp-storage-emulator 2026.7.19 does not (it writes the second
        upload: measured), and neither would a proxy that drops query parameters.

        :raises LeaseStoreError: the store wrote the second upload; the message names what to use instead.
        """
        from google.api_core.exceptions import NotFound, PreconditionFailed

        if (id(self.client), self.bucket) in _CONDITIONAL_WRITES_OK:
            return
        blob = self._blob(f"{self.prefix}.probe-{uuid.uuid4().hex}")
        refused = False
        try:
            for _ in range(2):
                blob.upload_from_string(b"", if_generation_match=0)
        except PreconditionFailed:
            refused = True
        finally:
            with contextlib.suppress(NotFound):
                blob.delete()
        if not refused:
            raise LeaseStoreError(
                f"gs://{self.bucket}/{self.prefix} does not honour the ifGenerationMatch=0 precondition, so two "
                "runs could both hold an hour: use Google Cloud Storage itself (gcp-storage-emulator ignores "
                "preconditions), or an s3:// or local LAKE_ROOT"
            )
        _CONDITIONAL_WRITES_OK.add((id(self.client), self.bucket))

    def replace(self, name: str, text: str) -> None:
        self._blob(self.prefix + name).upload_from_string(text.encode())

    def touch(self, name: str) -> None:
        self._blob(self.prefix + name).upload_from_string(b"")

    def exists(self, name: str) -> bool:
        return bool(self._blob(self.prefix + name).exists())

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self._blob(self.prefix + name).delete()


def lease_dir(lake_root: str | Path, relpath: str, client: Any = None) -> LeaseDir:
    """The lease place ``<lake_root>/<relpath>``: :class:`S3LeaseDir` for an ``s3://`` lake, :class:`GcsLeaseDir`
    for a ``gs://`` one (each with ``client``, or one from the standard client settings), else
    :class:`LocalLeaseDir`.

    :raises include.paths.ObjectStoreLakeNotSupported: ``lake_root`` is another store's URI (``abfss://``),
        where the lease does not run.
    """
    root = str(lake_root).rstrip("/")
    scheme = urlsplit(root).scheme
    if scheme == "s3":
        return S3LeaseDir(f"{root}/{relpath}", client)
    if scheme == "gs":
        return GcsLeaseDir(f"{root}/{relpath}", client)
    # Path("abfss://b/x") would be the relative directory abfss:/b/x under the working directory: two workers
    # would each hold "the" lease. Stores the lease cannot use are refused, naming what to set.
    if "://" in root:
        raise ObjectStoreLakeNotSupported(
            f"the hour lease (one writer per hour) cannot live on {root!r}: "
            "set LAKE_ROOT to an s3:// or gs:// URI or a local directory"
        )
    return LocalLeaseDir(Path(lake_root) / relpath)
