"""S3, GCS and Azure Blob behind one small interface, each through its unchanged provider hook.

The SHA-256 of every object travels as object metadata (``sha256``); the cloud also checks an MD5
of each upload where it can (GCS, Azure, S3 single-part PUTs; moto does not), and our own read-back
verification covers the rest. Large files are streamed: S3 multipart via the hook's client, GCS resumable
chunks, Azure blocks.

Transfer settings (issue 16, profiled against the raw SDK calls on the emulators, docs/design.md
"Replication throughput"): an in-memory (seekable) upload goes as the SDK's own defaults send a file —
S3 8 MiB parts on up to 10 threads, GCS one request per object up to 100 MiB, Azure one Put Blob up to
64 MiB; a non-seekable stream (a file above the replication memory bound, an object lake's commit) keeps
16 MiB chunks so the SDK never buffers more than that per upload. The GCS client's own MD5 of the bytes
sent (``checksum="md5"``, a second MD5 pass on the CPU) is replaced by comparing the MD5 GCS computed
(returned with the upload) with the one we computed while reading.
"""

from __future__ import annotations

import contextlib
import logging
import os
from functools import cached_property
from typing import BinaryIO

from include.errors import ConfigError
from include.replication import RemoteObject
from tricloud.connections import env_name, require_connection

log = logging.getLogger(__name__)

META_KEY = "sha256"
#: Chunk of a non-seekable upload (S3 part, GCS resumable chunk): bounds what an SDK buffers per upload.
CHUNK = 16 * 1024 * 1024
#: An in-memory object up to this size goes to S3 in one PUT (replication holds at most 32 MiB per file).
SINGLE_PUT_MAX = 64 * 1024 * 1024
#: boto3's defaults for ``upload_file`` (the raw SDK reference) for larger in-memory objects: 8 MiB parts,
#: 10 threads per object.
S3_PART = 8 * 1024 * 1024
S3_THREADS = 10

#: cloud name -> (default connection id, allowed connection types)
CLOUDS = {
    "s3": ("aws_default", ("aws",)),
    "gcs": ("google_cloud_default", ("google_cloud_platform", "gcpcloudstorage")),
    "azure": ("wasb_default", ("wasb",)),
}


class S3Store:
    name = "s3"

    def __init__(self, bucket: str, conn_id: str = "aws_default") -> None:
        self.bucket = bucket
        self.conn_id = conn_id

    @cached_property
    def hook(self):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        require_connection(self.conn_id, CLOUDS["s3"][1])
        return S3Hook(aws_conn_id=self.conn_id)

    @cached_property
    def client(self):
        return self.hook.get_conn()

    def ensure_bucket(self) -> None:
        if not self.hook.check_for_bucket(self.bucket):
            self.hook.create_bucket(self.bucket)

    def stat(self, key: str) -> RemoteObject | None:
        head = self.hook.head_object(key, self.bucket)
        if head is None:
            return None
        return RemoteObject(key, head["ContentLength"], head.get("Metadata", {}).get(META_KEY))

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> None:
        import base64

        from boto3.s3.transfer import TransferConfig

        if stream.seekable() and size <= SINGLE_PUT_MAX:
            # One PUT carrying the SHA-256 and MD5 of the bytes we read: S3 refuses the upload if the bytes it
            # receives have other digests (moto checks neither) and keeps ChecksumSHA256 as the object's own
            # checksum. Given a checksum, botocore computes none of its own (no CRC32 pass over the body).
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=stream,
                Metadata={META_KEY: sha256},
                ContentMD5=base64.b64encode(md5).decode(),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
            )
            return
        # Multipart: each part carries the SDK's CRC32 of its bytes, checked by S3; never reads the whole file.
        part = S3_PART if stream.seekable() else CHUNK
        self.client.upload_fileobj(
            stream,
            self.bucket,
            key,
            ExtraArgs={"Metadata": {META_KEY: sha256}},
            Config=TransferConfig(
                multipart_threshold=part,
                multipart_chunksize=part,
                max_concurrency=S3_THREADS if stream.seekable() else 4,
            ),
        )

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        import base64

        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            Metadata={META_KEY: sha256},
            ContentMD5=base64.b64encode(md5).decode(),
        )

    def download_to(self, key: str, writer: BinaryIO) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(CHUNK):
            writer.write(chunk)

    def list_keys(self, prefix: str) -> list[str]:
        return self.hook.list_keys(bucket_name=self.bucket, prefix=prefix)

    def delete(self, keys: list[str]) -> None:
        self.hook.delete_objects(self.bucket, keys)


class GCSStore:
    name = "gcs"

    def __init__(self, bucket: str, conn_id: str = "google_cloud_default", retry_timeout: float = 30.0) -> None:
        self.bucket = bucket
        self.conn_id = conn_id
        # The client's default retries a dead endpoint for minutes; fail sooner and let Airflow retry.
        self.retry_timeout = retry_timeout

    @property
    def _retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_timeout)

    @cached_property
    def hook(self):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        require_connection(self.conn_id, CLOUDS["gcs"][1])
        return GCSHook(gcp_conn_id=self.conn_id)

    @cached_property
    def _bucket(self):
        return self.hook.get_conn().bucket(self.bucket)

    def ensure_bucket(self) -> None:
        from google.api_core.exceptions import Conflict

        with contextlib.suppress(Conflict):
            self.hook.get_conn().create_bucket(self.bucket)

    def stat(self, key: str) -> RemoteObject | None:
        blob = self._bucket.get_blob(key, retry=self._retry, timeout=self.retry_timeout)
        if blob is None:
            return None
        return RemoteObject(key, blob.size, (blob.metadata or {}).get(META_KEY))

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> RemoteObject | None:
        import base64

        from include.replication import ReplicationError

        # In memory (seekable): the client's default, one request per object up to 100 MiB (the emulator
        # serves one request at a time: fewer, larger requests). A stream: 16 MiB resumable chunks.
        chunk = CHUNK if not stream.seekable() and size > CHUNK else None
        blob = self._bucket.blob(key, chunk_size=chunk)
        blob.metadata = {META_KEY: sha256}
        sent_md5 = base64.b64encode(md5).decode()
        blob.md5_hash = sent_md5  # GCS rejects the upload if the bytes differ
        blob.upload_from_file(stream, size=size, checksum=None, retry=self._retry, timeout=self.retry_timeout)
        # The object resource GCS returns holds the MD5 of what it stored: the bytes we hashed, or a failure.
        if blob.md5_hash != sent_md5 or blob.size != size:
            raise ReplicationError(
                f"gcs: {key} arrived as {blob.size} bytes with MD5 {blob.md5_hash}, not the {size} bytes with MD5 "
                f"{sent_md5} sent: corrupted in transit; re-run the task"
            )
        # The resource returned is the object as stored: no second request to read its metadata back.
        return RemoteObject(key, blob.size, (blob.metadata or {}).get(META_KEY))

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        self.hook.upload(self.bucket, key, data=data, metadata={META_KEY: sha256})

    def download_to(self, key: str, writer: BinaryIO) -> None:
        # One streamed GET, no Range header: a ranged read of an empty object is answered differently by
        # the emulator ("bytes 0--1/0") and by GCS (416), and chunked reads cost a request per chunk.
        self._bucket.blob(key).download_to_file(writer, retry=self._retry, timeout=self.retry_timeout)

    def list_keys(self, prefix: str) -> list[str]:
        return self.hook.list(self.bucket, prefix=prefix)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.hook.delete(self.bucket, key)


class AzureBlobStore:
    name = "azure"

    def __init__(self, bucket: str, conn_id: str = "wasb_default") -> None:
        self.bucket = bucket  # the container
        self.conn_id = conn_id

    @cached_property
    def hook(self):
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        require_connection(self.conn_id, CLOUDS["azure"][1])
        hook = WasbHook(wasb_conn_id=self.conn_id)
        hook.blob_service_client = azure_client(hook, self.conn_id)  # the hook's later calls reuse it
        return hook

    @cached_property
    def _container(self):
        return self.hook.blob_service_client.get_container_client(self.bucket)

    def ensure_bucket(self) -> None:
        self.hook.create_container(self.bucket)

    def stat(self, key: str) -> RemoteObject | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._container.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return RemoteObject(key, props.size, (props.metadata or {}).get(META_KEY))

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> None:
        from azure.storage.blob import ContentSettings

        # content_md5 is stored even for block uploads (Azure computes none for those itself).
        self.hook.upload(
            self.bucket,
            key,
            stream,
            length=size,
            overwrite=True,
            metadata={META_KEY: sha256},
            content_settings=ContentSettings(content_md5=bytearray(md5)),
            max_concurrency=4,
        )

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        from azure.storage.blob import ContentSettings

        self.hook.upload(
            self.bucket,
            key,
            data,
            overwrite=True,
            metadata={META_KEY: sha256},
            content_settings=ContentSettings(content_md5=bytearray(md5)),
        )

    def download_to(self, key: str, writer: BinaryIO) -> None:
        for chunk in self.hook.download(self.bucket, key).chunks():
            writer.write(chunk)

    def list_keys(self, prefix: str) -> list[str]:
        return [b.name for b in self._container.list_blobs(name_starts_with=prefix)]

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._container.delete_blob(key)


def azure_client(hook, conn_id: str):
    """The hook's ``BlobServiceClient`` (``WasbHook.get_conn``), built once, failing fast on a bad connection.

    Building the client does no I/O; the Azure SDK raises a bare ``ValueError`` when the connection's
    fields cannot make one (``Connection string is either blank or malformed.``, a shared key without an
    account name, …). The retry policy retries a bare ``ValueError`` (it may come from anywhere), so
    it becomes a :class:`~include.errors.ConfigError` naming the connection and what to set: fails at try 1.

    :raises ConfigError: the SDK refused the connection's fields (the SDK's error is the cause).
    """
    try:
        return hook.get_conn()
    except ValueError as err:
        raise ConfigError(
            f"connection {conn_id!r} cannot make an Azure Blob client ({err}): fix {env_name(conn_id)} in .env, "
            "e.g. extra connection_string 'DefaultEndpointsProtocol=https;AccountName=<account>;"
            "AccountKey=<key>;EndpointSuffix=core.windows.net' (see .env.example)"
        ) from err


STORES = {"s3": S3Store, "gcs": GCSStore, "azure": AzureBlobStore}


def make_store(cloud: str, bucket: str, conn_id: str | None = None):
    """The store of ``cloud`` (``s3``, ``gcs``, ``azure``) for ``bucket`` through connection ``conn_id``
    (the cloud's default when None). Its hook is built on first use, which may be in a worker thread
    (:func:`include.replication.objects.parallel`), so Airflow is imported here, in the caller's thread:
    two threads importing it for the first time at once deadlock on Python's import locks
    (docs/reliability.md row 21; tests/unit/test_stack_imports.py).

    :raises ConfigError: an unknown cloud.
    """
    import airflow  # noqa: F401

    try:
        cls = STORES[cloud]
    except KeyError:
        raise ConfigError(f"unknown cloud {cloud!r}: choose one of {sorted(STORES)}") from None
    return cls(bucket, conn_id or CLOUDS[cloud][0])


def replica_bucket() -> str:
    bucket = os.environ.get("REPLICA_BUCKET")
    if not bucket:
        raise ConfigError("REPLICA_BUCKET is not set: set it in .env (see .env.example)")
    return bucket


#: URI scheme of a lake root -> the cloud (store name) that holds it. That cloud gets no replica of its own:
#: the lake is its copy, checked as one store among the replicas (docs/design.md "The lake on GCS").
LAKE_SCHEMES = {"s3": "s3", "gs": "gcs"}


def primary_cloud(lake_root: str) -> str | None:
    """The cloud holding the primary lake (``s3`` for ``s3://…``, ``gcs`` for ``gs://…``), None for a local
    directory."""
    from urllib.parse import urlsplit

    return LAKE_SCHEMES.get(urlsplit(str(lake_root)).scheme)


def stores_from_env(bucket: str | None = None) -> list:
    return [make_store(c, bucket or replica_bucket()) for c in STORES]
