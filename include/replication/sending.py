"""Send a local lake's files to one or more stores, reading and hashing each file once.

One read per file, whatever the number of clouds: the file is read into memory once, SHA-256 and MD5
computed over those very bytes, and the same immutable bytes are then handed to every
store that lacks them (S3, GCS and Azure side by side). So the bytes sent are the bytes hashed by
construction, each cloud gets the MD5 to check the upload itself (GCS and Azure refuse a mismatch) and
the SHA-256 as object metadata, and each SDK receives a seekable in-memory stream (parallel parts and
retries of a part need no second read of the file).

A file whose digest the cache (:mod:`include.replication.digests`) already trusts and which every store
already holds (same size and SHA-256 metadata) is not read at all. A file larger than
:data:`BUFFER_MAX` is not held in memory: it is hashed (or its digest taken from the cache) and streamed
to each store with the SHA-256 computed again over the bytes streamed (:func:`upload_verified`), the
behaviour before issue 16. Memory per process: ``workers × BUFFER_MAX`` for the files held, plus
what each SDK buffers for a streamed upload. A rewrite after the single read is seen by the file's
stat only, so the stat before the read waits until the last change is one timestamp step old
(:func:`include.replication.digests.settled_stat`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

from include.replication.digests import (
    checked_name,
    hash_entry,
    load_cache,
    save_cache,
    settled_stat,
    stat_key,
    trusted,
)
from include.replication.objects import (
    LocalStore,
    ObjectStore,
    RemoteObject,
    ReplicationError,
    md5_b64,
    parallel,
)
from include.replication.uploads import changed_error, upload_verified

#: Files up to this size are read into memory once and sent from there to every store (bytes). Above
#: it they are streamed (one read per store). 32 MiB × 4 workers keeps replication under ~128 MiB.
BUFFER_MAX = 32 << 20


@dataclass(frozen=True)
class Loaded:
    """A file's bytes as read once, with the digests of exactly those bytes."""

    data: bytes
    sha256: str  # hex
    md5: bytes  # raw digest
    size: int


def read_hashed(path: Path) -> Loaded:
    """Read ``path`` once into memory (one ``read``, no chunk joining) and hash those bytes (SHA-256, MD5)."""
    with open(path, "rb") as f:
        data = f.read()
    return Loaded(data, hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).digest(), len(data))


def _holds(store: ObjectStore, rel: str, digest: dict) -> bool:
    remote = store.stat(rel)
    return bool(remote and remote.size == digest["size"] and remote.sha256 == digest["sha256"])


def _landed(store: ObjectStore, rel: str, digest: dict, reported: RemoteObject | None = None) -> None:
    """The object's metadata as the cloud holds it now: ``reported`` (the object resource the upload call
    returned, GCS) or else read back with ``stat``; its size and SHA-256 must be the file's."""
    after = reported or store.stat(rel)
    sha_ok = after is not None and (after.sha256 == digest["sha256"] or isinstance(store, LocalStore))
    if not after or after.size != digest["size"] or not sha_ok:
        raise ReplicationError(f"{store.name}: {rel} did not land intact ({after})")


def send_local_files(
    stores: list[ObjectStore], root: Path, files: list[Path], cache_file: Path, workers: int
) -> tuple[dict[str, dict], list[list[int]]]:
    """Bring every store in line for ``files`` (under the local lake ``root``), one read per file.

    Returns the digests of every file (``size``, ``sha256``, ``md5`` base64, ``ctime_ns`` …, as
    :func:`include.replication.digests.digests` gives them; also written to ``cache_file``) and, per store
    (in the order of ``stores``), the bytes sent for each file (0 = already there).

    :raises ReplicationError: a file name a cloud would rewrite (before anything is sent), a file that
        changed while it was read (nothing of it sent) or after it was sent (no manifest may list it), a
        trusted cache digest that is not the one of the bytes read, or an object that did not land intact.
        An error of a store's SDK (a refused MD5, a cut connection) propagates as raised.
    """
    names = {path: checked_name(root, path) for path in files}  # every name refused before a byte is sent
    cache = load_cache(cache_file)

    def send(path: Path) -> tuple[str, dict, list[int]]:
        rel = names[path]
        st = settled_stat(path)  # one read: a later rewrite must be visible in the stat
        known = cache.get(rel) if trusted(cache.get(rel), st) else None
        pending = [s for s in stores if not _holds(s, rel, known)] if known else list(stores)
        if known and not pending:
            return rel, known, [0 for _ in stores]
        if st.st_size > BUFFER_MAX:
            digest = known or hash_entry(path, st)
            if not known:
                pending = [s for s in stores if not _holds(s, rel, digest)]
            entry = {"path": rel, "size": digest["size"], "sha256": digest["sha256"]}
            md5 = base64.b64decode(digest["md5"])
            parallel(lambda s: upload_verified(s, path, entry, md5), pending, len(pending) or 1)
            return rel, digest, [digest["size"] if any(s is p for p in pending) else 0 for s in stores]
        hashed_ns = time.time_ns()  # before reading: a change during the read is later than this
        loaded = read_hashed(path)
        if stat_key(path.stat()) != stat_key(st) or loaded.size != st.st_size:
            raise changed_error("local", path, {"sha256": known["sha256"] if known else "?"}, loaded.sha256)
        if known and known["sha256"] != loaded.sha256:
            raise changed_error("local", path, known, loaded.sha256)
        digest = known or {
            "size": loaded.size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino,
            "hashed_ns": hashed_ns,
            "sha256": loaded.sha256,
            "md5": md5_b64(loaded.md5),
        }
        if not known:
            pending = [s for s in stores if not _holds(s, rel, digest)]

        def put(store: ObjectStore) -> None:
            reported = store.upload_stream(io.BytesIO(loaded.data), rel, loaded.size, loaded.sha256, loaded.md5)
            _landed(store, rel, digest, reported)

        if len(pending) == 1:
            put(pending[0])
        elif pending:
            parallel(put, pending, len(pending))
        if pending and stat_key(path.stat()) != stat_key(st):
            # What was sent is the bytes read (object and metadata agree), but the lake moved on: no manifest
            # for a file in flux; the re-run sends the new bytes.
            raise ReplicationError(
                f"{path} changed while replicating (after it was read and sent as SHA-256 "
                f"{loaded.sha256[:12]}…): no manifest written; re-run the task"
            )
        return rel, digest, [loaded.size if any(s is p for p in pending) else 0 for s in stores]

    results = parallel(send, files, workers)
    found = {rel: digest for rel, digest, _ in results}
    save_cache(cache_file, found, cache)
    return found, [[sent[i] for _, _, sent in results] for i in range(len(stores))]
