"""Cloud replication of lake hours: incremental, checksum-verified, manifest last; verify, repair, restore.

Pure logic over a tiny object-store interface (:class:`ObjectStore`); the Airflow side wraps the
provider hooks (S3Hook, GCSHook, WasbHook) into it. Nothing here knows which cloud, or emulator, it
talks to. Modules by concern: ``objects`` (the interface, the lake as a store, hashing I/O),
``manifests`` (layout, versions, validation of untrusted manifests), ``digests`` (the digest cache),
``sending`` (one read per file, hashed as read, sent to every cloud that lacks it), ``uploads`` (streaming
one file or committed object to one store, hashed as streamed), ``replicate``, ``verify`` (and repair),
``restore``, ``primary`` (the primary lake as a store, local or on an object store), ``results`` (the
typed values returned).

Object layout in every bucket: the lake's own relative paths, plus one manifest per hour at
``_manifests/<pipeline>/date=YYYY-MM-DD/hour=HH.json`` listing path, size and SHA-256 of every file
of the hour, the row counts and a version. The manifest is written last: an hour without a manifest
(or whose files do not match it) is not complete.
"""

from include.replication.digests import build_manifest, hour_digests
from include.replication.manifests import (
    CUSTOMER_ENRICHMENT,
    PIPELINE,
    PIPELINES,
    Pipeline,
    hour_prefixes,
    manifest_bytes,
    manifest_from_digests,
    manifest_key,
    pipeline_named,
    read_manifest,
    validate_manifest,
)
from include.replication.objects import (
    CHUNK,
    HashingReader,
    HashingWriter,
    LocalStore,
    ManifestError,
    ObjectStore,
    RemoteObject,
    ReplicationError,
    StaleRunError,
    file_digests,
    md5_b64,
    remote_sha256,
)
from include.replication.primary import ObjectLakeStore, primary_store
from include.replication.replicate import replicate_dataset, replicate_hour, replicate_hour_to
from include.replication.restore import list_hours, restore_hour
from include.replication.results import Problem, Replicated, Restored, VerifyReport
from include.replication.verify import verify_hour

__all__ = [
    "CHUNK",
    "CUSTOMER_ENRICHMENT",
    "PIPELINE",
    "PIPELINES",
    "HashingReader",
    "HashingWriter",
    "LocalStore",
    "ManifestError",
    "ObjectLakeStore",
    "ObjectStore",
    "Pipeline",
    "Problem",
    "RemoteObject",
    "Replicated",
    "ReplicationError",
    "Restored",
    "StaleRunError",
    "VerifyReport",
    "build_manifest",
    "file_digests",
    "hour_digests",
    "hour_prefixes",
    "list_hours",
    "manifest_bytes",
    "manifest_from_digests",
    "manifest_key",
    "md5_b64",
    "pipeline_named",
    "primary_store",
    "read_manifest",
    "remote_sha256",
    "replicate_dataset",
    "replicate_hour",
    "replicate_hour_to",
    "restore_hour",
    "validate_manifest",
    "verify_hour",
]
