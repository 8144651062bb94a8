"""Fixtures of the hour lease tests (tests/unit/test_lease.py, test_lease_callers.py): a hand-moved clock and
a lease on a local-directory lake in ``tmp_path``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.lease import HourLease
from tests.support.lease import HOUR, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lease(tmp_path, clock) -> HourLease:
    return HourLease(tmp_path, "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock)
