"""The exact engine's Python side: the engine itself is native/engine (the nsm_native module)."""

from processor.engine.compute import ComputeResult, compute_metrics, compute_stream
from processor.engine.engine import Deduplicator, Engine
from processor.engine.values import MetricValue, Value

__all__ = [
    "ComputeResult",
    "Deduplicator",
    "Engine",
    "MetricValue",
    "Value",
    "compute_metrics",
    "compute_stream",
]
