"""Stream one file (or committed object) to one store, hashing the bytes as they are streamed.

The path for what is not held in memory (:mod:`include.replication.sending` keeps files up to
``BUFFER_MAX`` in memory): files above it, and an object-store primary lake read through its commits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from include.replication.objects import HashingReader, LocalStore, ObjectStore, ReplicationError, remote_sha256


def upload_verified(store: ObjectStore, path: Path, entry: dict, md5: bytes) -> None:
    """Send the local file ``path`` as ``entry['path']`` (see :func:`upload_verified_from`)."""
    upload_verified_from(store, partial(open, path, "rb"), path, entry, md5)


def upload_verified_from(
    store: ObjectStore, opener: Callable[[], BinaryIO], source: object, entry: dict, md5: bytes
) -> None:
    """Send the stream ``opener()`` returns as ``entry['path']``, hashing the bytes as they are streamed
    (one pass). ``source`` names where they come from, in errors.

    :raises ReplicationError: "changed while replicating" when the bytes sent are not the ones the
        manifest lists; the object just written is deleted, so the cloud holds no object that
        disagrees with its manifest.
    """
    key, path = entry["path"], source
    with opener() as f:
        reader = HashingReader(f)
        try:
            store.upload_stream(reader, key, entry["size"], entry["sha256"], md5)
        except Exception as err:
            # A cloud that checks Content-MD5 refuses the changed bytes itself: say what happened.
            if not reader.reread and reader.size >= entry["size"] and reader.hexdigest() != entry["sha256"]:
                raise changed_error(store.name, path, entry, reader.hexdigest()) from err
            raise
    sent = reader.hexdigest() if not reader.reread else remote_sha256(store, key)
    if reader.size != entry["size"] or sent != entry["sha256"]:
        store.delete([key])
        raise changed_error(store.name, path, entry, sent)
    after = store.stat(key)
    sha_ok = after is not None and (after.sha256 == entry["sha256"] or isinstance(store, LocalStore))
    if not after or after.size != entry["size"] or not sha_ok:
        raise ReplicationError(f"{store.name}: {key} did not land intact ({after})")


def changed_error(who: str, path: object, entry: dict, sent: str | None) -> ReplicationError:
    """The error for bytes that are not the ones the manifest lists (``who``: the store, or "local")."""
    return ReplicationError(
        f"{who}: {path} changed while replicating (manifest SHA-256 {entry['sha256'][:12]}…, bytes read "
        f"{(sent or '?')[:12]}…): the object was not kept and no manifest written; re-run the task"
    )
