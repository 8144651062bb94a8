from tricloud.operators.cluster import StartClusterOperator, StopClusterOperator
from tricloud.operators.hourly import EnrichHourOperator, LoadWarehouseOperator
from tricloud.operators.replication import (
    ReplicateHourOperator,
    ReplicatePathOperator,
    RestoreLakeOperator,
    VerifyReplicasOperator,
)
from tricloud.operators.spark import SparkJobOperator

__all__ = [
    "EnrichHourOperator",
    "LoadWarehouseOperator",
    "ReplicateHourOperator",
    "ReplicatePathOperator",
    "RestoreLakeOperator",
    "SparkJobOperator",
    "StartClusterOperator",
    "StopClusterOperator",
    "VerifyReplicasOperator",
]
