"""``tricloud.health.check_connection`` (the check_connections DAG's check) with connections set in the
environment (``AIRFLOW_CONN_*``): the error it raises names what to fix, once. No server, nothing patched."""

from __future__ import annotations

import json

import pytest

from include.errors import ConfigError
from tests.support.cloud_errors import closed_port
from tricloud.health import check_connection

pytestmark = pytest.mark.fast  # the fast tier: no emulator, no Spark, no Airflow server


def test_a_malformed_azure_connection_string_is_named_once(monkeypatch):
    """The Azure store already raises a ConfigError naming the connection (``azure_client``); the check
    passes it on as it is instead of wrapping it in a second "does not work (…): check …" around it."""
    conn = {"conn_type": "wasb", "extra": {"connection_string": "not a connection string"}}
    monkeypatch.setenv("AIRFLOW_CONN_TRICLOUD_BAD_WASB", json.dumps(conn))
    monkeypatch.setenv("REPLICA_BUCKET", "tricloud-replicas")

    with pytest.raises(ConfigError) as info:
        check_connection("tricloud_bad_wasb", "azure")

    message = str(info.value)
    assert message.count("'tricloud_bad_wasb'") == 1, message
    assert message.count("AIRFLOW_CONN_TRICLOUD_BAD_WASB") == 1, message
    assert "cannot make an Azure Blob client" in message and "does not work" not in message
    assert type(info.value.__cause__) is ValueError  # the SDK's own error stays the cause


def test_any_other_failure_is_wrapped_naming_the_variable(monkeypatch):
    """A Spark master where nothing listens: a ConnectionError that names the connection's variable."""
    conn = {"conn_type": "spark", "host": "127.0.0.1", "port": closed_port()}
    monkeypatch.setenv("AIRFLOW_CONN_TRICLOUD_NO_MASTER", json.dumps(conn))

    with pytest.raises(ConnectionError) as info:
        check_connection("tricloud_no_master", "spark")

    message = str(info.value)
    assert message.startswith("connection 'tricloud_no_master' does not work (Spark master of")
    assert message.endswith("check AIRFLOW_CONN_TRICLOUD_NO_MASTER in .env")
