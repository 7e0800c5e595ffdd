"""The engine's Python side: the engine itself is native/engine (the nsm_native module); this
package hands it the catalogue (spec.py), feeds it (compute.py) and shapes what it returns
(values.py, summaries.py)."""

from processor.engine.compute import (
    ComputeResult,
    compute_file,
    compute_metrics,
    compute_stream,
)
from processor.engine.values import MetricValue, Value

__all__ = [
    "ComputeResult",
    "MetricValue",
    "Value",
    "compute_file",
    "compute_metrics",
    "compute_stream",
]
