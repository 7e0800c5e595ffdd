"""The exact engine: pure, I/O-free, shared by the worker, the replay and `nsm compute`."""

from processor.engine.compute import ComputeResult, compute_metrics
from processor.engine.engine import Deduplicator, Engine
from processor.engine.segments import MetricValue, Value

__all__ = [
    "ComputeResult",
    "Deduplicator",
    "Engine",
    "MetricValue",
    "Value",
    "compute_metrics",
]
