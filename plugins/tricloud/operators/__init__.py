from tricloud.operators.cluster import StartClusterOperator, StopClusterOperator
from tricloud.operators.replication import ReplicateHourOperator, RestoreLakeOperator, VerifyReplicasOperator
from tricloud.operators.spark import SparkJobOperator

__all__ = [
    "ReplicateHourOperator",
    "RestoreLakeOperator",
    "SparkJobOperator",
    "StartClusterOperator",
    "StopClusterOperator",
    "VerifyReplicasOperator",
]
