"""`nsm explain`: which diagnostics and which segment values moved a metric between two times."""

from processor.analysis.explain.attribution import (
    Contribution,
    RatioDecomposition,
    RatioSegment,
    additive_contributions,
    ratio_decomposition,
)
from processor.analysis.explain.tree import FieldBreakdown, MetricChange, explain_change

__all__ = [
    "Contribution",
    "FieldBreakdown",
    "MetricChange",
    "RatioDecomposition",
    "RatioSegment",
    "additive_contributions",
    "explain_change",
    "ratio_decomposition",
]
