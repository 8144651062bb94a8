"""Fixtures shared by the replication tests."""

from __future__ import annotations

import uuid

import pytest

CLOUDS = ("s3", "gcs", "azure")


@pytest.fixture
def stores(emulators):
    """One store per cloud on the session's emulators, in a fresh bucket/container of their own."""
    from tricloud.replication.stores import make_store

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    out = [make_store(c, bucket) for c in CLOUDS]
    for s in out:
        s.ensure_bucket()
    return out
