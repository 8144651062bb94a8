"""Small reads and writes of JSON documents at a lake path: a local path or an object-store URI.

Local paths use the file system; ``s3://`` and ``gs://`` URIs use pyarrow's file systems, which read the
standard client settings (S3: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, …; GCS: Application Default
Credentials, ``STORAGE_EMULATOR_HOST`` for the emulator), so the same code runs on an Airflow worker and on
an EMR or Dataproc driver. ``abfss://`` is not supported (docs/design.md "The lake on GCS"). No Airflow here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: URI schemes of object stores a lake may live on.
OBJECT_STORE_SCHEMES = ("s3", "gs")


def is_object_store(uri: str) -> bool:
    """Whether ``uri`` names an object store (``s3://bucket/key``, ``gs://bucket/key``) rather than a local path."""
    return urlsplit(str(uri)).scheme in OBJECT_STORE_SCHEMES


def by_bucket(paths: list[str]) -> dict[str, list[str]]:
    """``bucket/key`` file system paths (pyarrow's form) grouped as ``{bucket: [key, …]}``, order kept."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        bucket, key = path.split("/", 1)
        grouped.setdefault(bucket, []).append(key)
    return grouped


def boto3_deleter():
    """``delete(paths)`` for ``bucket/key`` paths through boto3's ``DeleteObjects`` (standard client settings),
    or None when boto3 is not installed. pyarrow's ``delete_file`` would leave an empty ``…/`` directory
    marker object behind whenever a "directory" empties (measured with pyarrow 26 on moto)."""
    try:
        import boto3
    except ImportError:
        return None

    def delete(paths: list[str]) -> None:
        client = boto3.client("s3")
        for bucket, keys in by_bucket(paths).items():
            for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
                batch = {"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
                errors = client.delete_objects(Bucket=bucket, Delete=batch).get("Errors", [])
                if errors:  # per-key failures come back in a 200 reply (as S3Hook.delete_objects checks)
                    first = errors[0]
                    raise OSError(
                        f"s3://{bucket}: {len(errors)} object(s) not deleted, e.g. {first.get('Key')!r}: "
                        f"{first.get('Code')} {first.get('Message', '')}; the role needs s3:DeleteObject on the lake"
                    )

    return delete


def default_deleter(uri: str) -> Callable[[list[str]], None] | None:
    """The deleter an object lake at ``uri`` uses without one handed in: :func:`boto3_deleter` on S3, None
    (pyarrow's ``delete_file``) on GCS, where deleting an object leaves no directory marker behind (measured
    with pyarrow 26 on gcp-storage-emulator: the listing after a delete holds only the other objects)."""
    return boto3_deleter() if urlsplit(str(uri)).scheme == "s3" else None


def gcs_emulator_endpoint() -> tuple[str, str] | None:
    """``(host:port, scheme)`` of ``STORAGE_EMULATOR_HOST`` (the GCS emulator), None when it is unset.

    The same variable google-cloud-storage honours, so a driver's pyarrow and its lease client reach
    the same endpoint. A value without a scheme is taken as ``http``.
    """
    import os

    value = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if not value:
        return None
    url = urlsplit(value if "://" in value else f"http://{value}")
    return url.netloc, url.scheme or "http"


def filesystem(uri: str):
    """``(pyarrow file system, path without scheme)`` for an object-store URI, from the standard client settings.

    S3: an endpoint in ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (an S3-compatible store, the emulator
    in tests) is passed to pyarrow explicitly, with the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``:
    ``FileSystem.from_uri`` would otherwise first ask AWS itself for the bucket's region. Without one,
    ``from_uri`` (AWS: region resolved, credentials from the usual chain, e.g. an EMR instance profile).

    GCS: with ``STORAGE_EMULATOR_HOST`` set, an anonymous ``GcsFileSystem`` on that endpoint (the emulator
    takes no credentials); without it, ``from_uri`` (Application Default Credentials: a Dataproc VM's or
    batch's service account, ``GOOGLE_APPLICATION_CREDENTIALS``, or the metadata server).
    """
    import os

    from pyarrow import fs

    target = urlsplit(uri)
    path = f"{target.netloc}{target.path}".rstrip("/")
    if target.scheme == "gs":
        emulator = gcs_emulator_endpoint()
        if emulator is None:
            return fs.FileSystem.from_uri(uri)
        host, scheme = emulator
        return fs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme=scheme), path
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or target.scheme != "s3":
        return fs.FileSystem.from_uri(uri)
    url = urlsplit(endpoint)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    s3 = fs.S3FileSystem(endpoint_override=url.netloc, scheme=url.scheme or "https", region=region)
    return s3, path


_filesystem = filesystem


def read_json_or_none(uri: str) -> Any | None:
    """The JSON document at ``uri``, or None when there is none. Raises ``ValueError`` on bad JSON."""
    if not is_object_store(uri):
        path = Path(uri)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        return None


def write_json(uri: str, value: Any) -> None:
    """Write ``value`` as JSON at ``uri`` (parents created locally; one PUT on an object store)."""
    data = json.dumps(value, default=str, sort_keys=True).encode("utf-8")
    if not is_object_store(uri):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return
    filesystem, path = _filesystem(uri)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)
