"""An AWS control plane of the test's own: moto's ThreadedMotoServer in this process on 127.0.0.1.

In-process so a test can move what moto never moves (EMR steps never finish; ``CancelSteps`` is not
implemented) through moto's own backend objects, visibly, and never by patching our code. The
provider hooks reach it through an ordinary AWS connection with ``endpoint_url`` given as
``AIRFLOW_CONN_<ID>`` (set only for the test, removed after).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from stack import ports

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
CONN_ID = "aws_tricloud_test"
EMR_CONN_ID = "emr_tricloud_test"


@dataclass(frozen=True)
class MotoAws:
    """The running emulator: its endpoint and helpers that act as AWS would."""

    endpoint: str

    def reset(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    @staticmethod
    def emr():
        from moto.emr.models import emr_backends

        return emr_backends[ACCOUNT][REGION]

    @staticmethod
    def serverless():
        from moto.emrserverless.models import emrserverless_backends

        return emrserverless_backends[ACCOUNT][REGION]

    def step(self, cluster_id: str, step_id: str):
        return next(s for s in self.emr().clusters[cluster_id].steps if s.id == step_id)

    def steps_named(self, cluster_id: str, name: str) -> list:
        return [s for s in self.emr().clusters[cluster_id].steps if s.name == name]

    def job_runs_named(self, application_id: str, name: str) -> list:
        return [r for r in self.serverless().job_runs.get(application_id, []) if r.name == name]

    def client(self, service: str):
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=CONN_ID, client_type=service).get_conn()

    def put_object(self, uri: str, data: bytes) -> None:
        bucket, _, key = uri[len("s3://") :].partition("/")
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=data)

    def put_json(self, uri: str, value: Any) -> None:
        self.put_object(uri, json.dumps(value).encode())

    def put_gz(self, uri: str, text: str) -> None:
        self.put_object(uri, gzip.compress(text.encode()))


def _cancel_steps(self) -> Any:
    """``CancelSteps`` as EMR answers it, for moto's EMR responses (moto 5.2.5 raises NotImplementedError).

    A pending or running step becomes CANCELLED; the reply lists each step as SUBMITTED.
    """
    from moto.core.responses import ActionResult

    cluster_id = self._get_param("ClusterId")
    step_ids = self._get_param("StepIds", [])
    infos = []
    for step in self.backend.clusters[cluster_id].steps:
        if step.id in step_ids:
            if step.state in ("PENDING", "RUNNING"):
                step.state = "CANCELLED"
            infos.append({"StepId": step.id, "Status": "SUBMITTED", "Reason": ""})
    return ActionResult({"CancelStepsInfoList": infos})


@contextmanager
def moto_aws() -> Iterator[MotoAws]:
    """Start the emulator on a free port of 127.0.0.1 with ``CancelSteps`` added; set the connections.

    Sets ``AIRFLOW_CONN_AWS_TRICLOUD_TEST`` (aws, dummy keys, ``endpoint_url``) and
    ``AIRFLOW_CONN_EMR_TRICLOUD_TEST`` (emr, empty extra) for the duration, restoring the environment after.
    """
    from moto.emr.responses import ElasticMapReduceResponse
    from moto.server import ThreadedMotoServer

    port = ports.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    had_cancel = hasattr(ElasticMapReduceResponse, "cancel_steps")
    ElasticMapReduceResponse.cancel_steps = _cancel_steps  # emulator side: what AWS does and moto lacks
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (f"AIRFLOW_CONN_{CONN_ID.upper()}", f"AIRFLOW_CONN_{EMR_CONN_ID.upper()}")}
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": REGION},
        }
    )
    os.environ[f"AIRFLOW_CONN_{EMR_CONN_ID.upper()}"] = json.dumps({"conn_type": "emr", "extra": {}})
    server.start()
    try:
        yield MotoAws(endpoint=endpoint)
    finally:
        server.stop()
        ports.release([port])
        if not had_cancel:
            del ElasticMapReduceResponse.cancel_steps
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
