from tricloud.operators.cluster import StartClusterOperator, StopClusterOperator
from tricloud.operators.spark import SparkJobOperator

__all__ = ["SparkJobOperator", "StartClusterOperator", "StopClusterOperator"]
