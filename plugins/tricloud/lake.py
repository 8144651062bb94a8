"""The lake a deployment uses (``LAKE_ROOT``), opened with the credentials of its connection.

A local directory needs none; ``s3://bucket/prefix`` is read and written through pyarrow's
``S3FileSystem`` built from the Airflow connection (``aws_default`` unless told otherwise): the
connection's keys, region and ``endpoint_url`` extra (moto in tests), so the lake and the S3 replica
store use the same connection. pyarrow rather than s3fs: it is already a dependency, and s3fs is not
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from include.lake_commit import Lake, open_lake
from include.lake_fs import by_bucket, is_object_store
from tricloud import settings
from tricloud.connections import require_connection

#: Connection of an ``s3://`` lake.
LAKE_CONN_ID = "aws_default"


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


def lake(root: str | None = None, conn_id: str = LAKE_CONN_ID) -> Lake:
    """The lake at ``root`` (default ``settings.lake_root()``); an ``s3://`` root uses ``conn_id``."""
    root = root or settings.lake_root()
    if not is_object_store(root):
        return open_lake(root)
    return open_lake(root, s3_filesystem(conn_id), s3_deleter(conn_id))
