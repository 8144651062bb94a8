"""The lake a deployment uses (``LAKE_ROOT``), opened with the credentials of its connection.

A local directory needs none. ``s3://bucket/prefix`` is read and written through pyarrow's
``S3FileSystem`` built from the Airflow connection ``aws_default``: the connection's keys, region and
``endpoint_url`` extra (moto in tests), so the lake and the S3 replica store use the same connection.
``gs://bucket/prefix`` goes through pyarrow's ``GcsFileSystem`` built from ``google_cloud_default``: the
connection's credentials as an access token (anonymous for an ``is_anonymous`` connection, the emulator in
tests, reached through ``STORAGE_EMULATOR_HOST`` as the google-cloud-storage client reaches it), so the lake
and the GCS replica store use the same connection. pyarrow rather than s3fs / gcsfs: it is already a
dependency and one file system interface serves both clouds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from include.lake_commit import Lake, open_lake
from include.lake_fs import by_bucket, gcs_emulator_endpoint, is_object_store
from tricloud import settings
from tricloud.connections import require_connection

#: Connection of an ``s3://`` lake.
LAKE_CONN_ID = "aws_default"
#: Connection of a ``gs://`` lake.
GCS_LAKE_CONN_ID = "google_cloud_default"
#: Connection types a ``gs://`` lake's connection may have (as the GCS replica store's).
GCS_CONN_TYPES = ("google_cloud_platform", "gcpcloudstorage")


def s3_filesystem(conn_id: str = LAKE_CONN_ID):
    """A pyarrow ``S3FileSystem`` from an ``aws`` connection (keys, region, ``endpoint_url`` extra)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from pyarrow import fs

    require_connection(conn_id, ("aws",))
    hook = S3Hook(aws_conn_id=conn_id)
    creds = hook.get_credentials()
    kwargs = {
        "access_key": creds.access_key,
        "secret_key": creds.secret_key,
        "session_token": creds.token,
        "region": hook.conn_region_name or "us-east-1",
    }
    if endpoint := hook.conn_config.endpoint_url:
        url = urlsplit(endpoint)
        kwargs.update(endpoint_override=url.netloc, scheme=url.scheme or "https")
    return fs.S3FileSystem(**kwargs)


def s3_deleter(conn_id: str = LAKE_CONN_ID) -> Callable[[list[str]], None]:
    """Delete ``bucket/key`` paths with ``S3Hook.delete_objects`` (pyarrow's own delete leaves directory
    marker objects behind on S3)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)

    def delete(paths: list[str]) -> None:
        for bucket, keys in by_bucket(paths).items():
            hook.delete_objects(bucket, keys)

    return delete


def gcs_filesystem(conn_id: str = GCS_LAKE_CONN_ID):
    """A pyarrow ``GcsFileSystem`` from a google connection.

    An anonymous connection (``is_anonymous`` extra) gives an anonymous file system; any other hands pyarrow
    the connection's current access token and its expiry (pyarrow cannot refresh a token it was given: a
    task is expected to finish within the token's lifetime, an hour for service-account tokens).
    ``STORAGE_EMULATOR_HOST``, when set, is the endpoint (as for the provider's GCS client).
    """
    from datetime import UTC

    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.auth.credentials import AnonymousCredentials
    from pyarrow import fs

    require_connection(conn_id, GCS_CONN_TYPES)
    creds = GCSHook(gcp_conn_id=conn_id).get_credentials()
    kwargs: dict[str, Any] = {}
    if emulator := gcs_emulator_endpoint():
        kwargs.update(endpoint_override=emulator[0], scheme=emulator[1])
    if isinstance(creds, AnonymousCredentials):
        kwargs["anonymous"] = True
    else:
        from google.auth.transport.requests import Request

        creds.refresh(Request())
        kwargs.update(access_token=creds.token, credential_token_expiration=creds.expiry.replace(tzinfo=UTC))
    return fs.GcsFileSystem(**kwargs)


def lake_client(root: str) -> Any | None:
    """The SDK client of an object-store lake's connection (boto3 S3 for ``s3://``, google-cloud-storage for
    ``gs://``, each from the provider hook), None for a local lake. The hour lease uses it for its
    conditional writes, which pyarrow cannot make."""
    scheme = urlsplit(str(root)).scheme
    if scheme == "s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        require_connection(LAKE_CONN_ID, ("aws",))
        return S3Hook(aws_conn_id=LAKE_CONN_ID).get_conn()
    if scheme == "gs":
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        require_connection(GCS_LAKE_CONN_ID, GCS_CONN_TYPES)
        return GCSHook(gcp_conn_id=GCS_LAKE_CONN_ID).get_conn()
    return None


def lake(root: str | None = None, conn_id: str | None = None) -> Lake:
    """The lake at ``root`` (default ``settings.lake_root()``); an object-store root uses ``conn_id``
    (default :data:`LAKE_CONN_ID` for ``s3://``, :data:`GCS_LAKE_CONN_ID` for ``gs://``)."""
    root = root or settings.lake_root()
    if not is_object_store(root):
        return open_lake(root)
    if urlsplit(root).scheme == "gs":
        # GCS leaves no directory marker when an object is deleted: pyarrow's delete_file is enough.
        return open_lake(root, gcs_filesystem(conn_id or GCS_LAKE_CONN_ID))
    return open_lake(root, s3_filesystem(conn_id or LAKE_CONN_ID), s3_deleter(conn_id or LAKE_CONN_ID))
