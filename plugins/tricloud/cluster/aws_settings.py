"""Settings of the AWS backends: what each needs, read from ``TRICLOUD_*`` variables and overrides.

Each ``*_settings(overrides)`` fails fast with ``ValueError`` naming the variable to set; operator
``backend_kwargs`` (and ``conn_id``, taken as the AWS connection) win over the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from include.errors import ConfigError
from tricloud.cluster import aws
from tricloud.cluster.env_settings import (
    IdleTimeoutBounds,
    backend_overrides,
    created_by,
    idle_timeout_setting,
    parse_tags,
    setting,
)

#: EMR's bounds of ``AutoTerminationPolicy.IdleTimeout``: 1 minute … 7 days.
EMR_IDLE_BOUNDS = IdleTimeoutBounds(60, 604_800, "seconds", "EMR")
#: EMR Serverless's bounds of ``autoStopConfiguration.idleTimeoutMinutes``: 1 minute … 7 days.
EMR_SERVERLESS_IDLE_BOUNDS = IdleTimeoutBounds(1, 10_080, "minutes", "EMR Serverless")


@dataclass(frozen=True)
class EmrSettings:
    """What the ``emr`` backend needs; read by :meth:`EmrBackend.from_settings` (env names in brackets).

    :param code_uri: ``s3://bucket/prefix`` for staged code (``TRICLOUD_CODE_URI``, required).
    :param aws_conn_id: AWS connection (``TRICLOUD_AWS_CONN_ID``, default ``aws_default``).
    :param emr_conn_id: EMR connection whose extra holds RunJobFlow defaults (``TRICLOUD_EMR_CONN_ID``,
        default ``emr_default``, the provider's convention; a missing one means no defaults).
    :param cluster_name: name to find or create (``TRICLOUD_EMR_CLUSTER_NAME``, default ``tricloud``).
    :param release_label: EMR release (``TRICLOUD_EMR_RELEASE_LABEL``, default ``emr-7.12.0``).
    :param log_uri: cluster ``LogUri`` (``TRICLOUD_EMR_LOG_URI``, default ``<code_uri>/emr-logs``).
    :param idle_timeout: seconds idle before EMR terminates the cluster (``TRICLOUD_EMR_IDLE_TIMEOUT``,
        default 1800; EMR accepts 60 … 604800).
    :param instance_type: primary/core instance type when the connection gives no ``Instances``
        (``TRICLOUD_EMR_INSTANCE_TYPE``, default ``m5.xlarge``).
    :param workers: core instances when the connection gives no ``Instances`` (default 2).
    :param tags: extra tags (``TRICLOUD_EMR_TAGS``: ``k=v,k=v``).
    :param created_by: value of the ``tricloud:created-by`` tag (default host:pid).
    :param poll_interval: seconds between state polls while waiting for the cluster (default 30).
    :param start_timeout: least seconds ``start`` waits for a cluster (``TRICLOUD_EMR_START_TIMEOUT``,
        default 1800): the operators' timeout is sized for a local cluster, EMR takes 5–15 minutes.
    """

    code_uri: str
    aws_conn_id: str = "aws_default"
    emr_conn_id: str | None = "emr_default"
    cluster_name: str = "tricloud"
    release_label: str = "emr-7.12.0"
    log_uri: str = ""
    idle_timeout: int = 1800
    instance_type: str = "m5.xlarge"
    workers: int = 2
    tags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    poll_interval: float = 30.0
    start_timeout: float = 1800.0


@dataclass(frozen=True)
class EmrServerlessSettings:
    """What the backend needs; read by :meth:`EmrServerlessBackend.from_settings` (env names in brackets).

    :param code_uri: ``s3://bucket/prefix`` for staged code (``TRICLOUD_CODE_URI``, required).
    :param execution_role_arn: the job runtime role (``TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN``, required).
    :param aws_conn_id: AWS connection (``TRICLOUD_AWS_CONN_ID``, default ``aws_default``).
    :param application_name: (``TRICLOUD_EMR_SERVERLESS_APPLICATION_NAME``, default ``tricloud``).
    :param release_label: (``TRICLOUD_EMR_SERVERLESS_RELEASE_LABEL``, default ``emr-7.12.0``).
    :param idle_minutes: auto-stop after this many idle minutes (``TRICLOUD_EMR_SERVERLESS_IDLE_MINUTES``,
        default 15).
    :param log_uri: (``TRICLOUD_EMR_SERVERLESS_LOG_URI``, default ``<code_uri>/emr-serverless-logs``).
    :param tags: extra tags (``TRICLOUD_EMR_TAGS``: ``k=v,k=v``).
    :param created_by: value of the ``tricloud:created-by`` tag (default host:pid).
    :param poll_interval: seconds between polls while waiting for the application (default 10).
    :param workers: accepted for symmetry with the other backends; Serverless scales by itself.
    """

    code_uri: str
    execution_role_arn: str
    aws_conn_id: str = "aws_default"
    application_name: str = "tricloud"
    release_label: str = "emr-7.12.0"
    idle_minutes: int = 15
    log_uri: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    poll_interval: float = 10.0
    workers: int | None = None


def emr_settings(overrides: Mapping[str, Any]) -> EmrSettings:
    """Settings from ``TRICLOUD_*`` variables; ``overrides`` (operator ``backend_kwargs``) win.

    ``conn_id`` (what the operators pass when a task sets one) is taken as ``aws_conn_id``.

    :raises ValueError: ``TRICLOUD_CODE_URI`` missing or not ``s3://``, a bad number or tag list,
        or an override this backend does not know.
    """
    overrides = backend_overrides(overrides, EmrSettings, backend="emr", conn_field="aws_conn_id")
    code_uri = aws.s3_uri(
        setting(
            overrides,
            "code_uri",
            "TRICLOUD_CODE_URI",
            required="set it to s3://<bucket>/<prefix> where the cluster may read the staged code",
        ),
        "TRICLOUD_CODE_URI",
    )
    idle = idle_timeout_setting(overrides, "idle_timeout", "TRICLOUD_EMR_IDLE_TIMEOUT", 1800, EMR_IDLE_BOUNDS)
    log_uri = setting(overrides, "log_uri", "TRICLOUD_EMR_LOG_URI", f"{code_uri}/emr-logs")
    return EmrSettings(
        code_uri=code_uri,
        aws_conn_id=setting(overrides, "aws_conn_id", "TRICLOUD_AWS_CONN_ID", "aws_default"),
        emr_conn_id=setting(overrides, "emr_conn_id", "TRICLOUD_EMR_CONN_ID", "emr_default"),
        cluster_name=setting(overrides, "cluster_name", "TRICLOUD_EMR_CLUSTER_NAME", "tricloud"),
        release_label=setting(overrides, "release_label", "TRICLOUD_EMR_RELEASE_LABEL", "emr-7.12.0"),
        log_uri=aws.s3_uri(log_uri, "TRICLOUD_EMR_LOG_URI"),
        idle_timeout=idle,
        instance_type=setting(overrides, "instance_type", "TRICLOUD_EMR_INSTANCE_TYPE", "m5.xlarge"),
        workers=int(overrides.get("workers") or 2),
        tags=parse_tags(setting(overrides, "tags", "TRICLOUD_EMR_TAGS"), "TRICLOUD_EMR_TAGS"),
        created_by=created_by(overrides),
        poll_interval=float(overrides.get("poll_interval") or 30.0),
        start_timeout=float(setting(overrides, "start_timeout", "TRICLOUD_EMR_START_TIMEOUT", 1800)),
    )


def emr_serverless_settings(overrides: Mapping[str, Any]) -> EmrServerlessSettings:
    """Settings from ``TRICLOUD_*`` variables; ``overrides`` (operator ``backend_kwargs``) win.

    ``conn_id`` (what the operators pass when a task sets one) is taken as ``aws_conn_id``.

    :raises ValueError: code URI or execution role missing/malformed, a bad number, an unknown override.
    """
    overrides = backend_overrides(overrides, EmrServerlessSettings, backend="emr-serverless", conn_field="aws_conn_id")
    hint = "set it to s3://<bucket>/<prefix> where the job may read the staged code"
    code_uri = aws.s3_uri(setting(overrides, "code_uri", "TRICLOUD_CODE_URI", required=hint), "TRICLOUD_CODE_URI")
    role = setting(
        overrides,
        "execution_role_arn",
        "TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN",
        required="set it to the ARN of the IAM role the job runs as (README: Run on AWS)",
    )
    if not str(role).startswith("arn:"):
        raise ConfigError(f"TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN={role!r} is not an IAM role ARN")
    idle_env = "TRICLOUD_EMR_SERVERLESS_IDLE_MINUTES"
    idle = idle_timeout_setting(overrides, "idle_minutes", idle_env, 15, EMR_SERVERLESS_IDLE_BOUNDS)
    log_uri = setting(overrides, "log_uri", "TRICLOUD_EMR_SERVERLESS_LOG_URI", f"{code_uri}/emr-serverless-logs")
    return EmrServerlessSettings(
        code_uri=code_uri,
        execution_role_arn=str(role),
        aws_conn_id=setting(overrides, "aws_conn_id", "TRICLOUD_AWS_CONN_ID", "aws_default"),
        application_name=setting(overrides, "application_name", "TRICLOUD_EMR_SERVERLESS_APPLICATION_NAME", "tricloud"),
        release_label=setting(overrides, "release_label", "TRICLOUD_EMR_SERVERLESS_RELEASE_LABEL", "emr-7.12.0"),
        idle_minutes=idle,
        log_uri=aws.s3_uri(log_uri, "TRICLOUD_EMR_SERVERLESS_LOG_URI"),
        tags=parse_tags(setting(overrides, "tags", "TRICLOUD_EMR_TAGS"), "TRICLOUD_EMR_TAGS"),
        created_by=created_by(overrides),
        poll_interval=float(overrides.get("poll_interval") or 10.0),
        workers=overrides.get("workers"),
    )
