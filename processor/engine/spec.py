"""The catalogue as the engine (native/engine, the nsm_native module) reads it.

The engine gets the definitions as written, validated by the model: each condition and aggregate
as its mapping, so that a kind is read by its own module in the engine and this file knows no
kind. Built once per catalogue; building it also checks that the engine can run every metric.
"""

from __future__ import annotations

import ast
import json
import math
import weakref
from typing import Any

from nsm_native import Catalog as EngineCatalog

from processor.definitions.formula import parse_formula
from processor.definitions.model import Catalog, Metric

_compiled: dict[int, tuple[weakref.ref[Catalog], EngineCatalog]] = {}


def _jsonable(value: Any) -> Any:
    """JSON for a definition's values: floats JSON cannot write become {"$float": ...}."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _formula_tree(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Constant):
        return {"number": str(node.value)}
    if isinstance(node, ast.Name):
        return {"name": node.id}
    if isinstance(node, ast.UnaryOp):
        inner = _formula_tree(node.operand)
        return {"neg": inner} if isinstance(node.op, ast.USub) else inner
    assert isinstance(node, ast.BinOp)
    op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}[type(node.op)]
    return {"op": op, "left": _formula_tree(node.left), "right": _formula_tree(node.right)}


def metric_spec(metric: Metric) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": metric.name,
        "segments": list(metric.segments),
        "max_segment_values": metric.max_segment_values,
    }
    if metric.formula is not None:
        formula = parse_formula(metric.formula)
        spec["formula"] = {"tree": _formula_tree(formula.tree), "operands": formula.operands}
        return spec
    spec["window_ms"], spec["bucket_ms"] = metric.window_ms, metric.bucket_ms
    if metric.entities is not None:
        spec["entities"] = {
            "key": metric.entities.key,
            "all": [c.model_dump(by_alias=True, exclude_unset=True) for c in metric.entities.all],
        }
    elif metric.aggregate is not None:
        spec["aggregate"] = metric.aggregate.model_dump(by_alias=True, exclude_unset=True)
    return spec


def catalog_spec(catalog: Catalog, horizon_of: Catalog | None = None) -> str:
    """The engine's catalogue; `horizon_of`: the catalogue `catalog` is a part of, whose dedup
    horizon it keeps (which repeats are duplicates is one rule for every metric)."""
    spec: dict[str, Any] = {"metrics": [metric_spec(m) for m in catalog]}
    if horizon_of is not None:
        # The whole catalogue's horizon, as the engine derives it (docs/semantics.md, Dedup).
        spec["horizon"] = [list(term) for term in compile_catalog(horizon_of).horizon_terms]
    return json.dumps(_jsonable(spec))


def compile_part(catalog: Catalog, metrics: list[str]) -> EngineCatalog:
    """The engine's catalogue of some metrics of `catalog` (not formulas), deduplicating by the
    whole catalogue's rule: a rebuild of those metrics (processor/worker/rebuild.py)."""
    part = Catalog(metrics={name: catalog[name] for name in metrics})
    return EngineCatalog(catalog_spec(part, horizon_of=catalog))


def compile_catalog(catalog: Catalog) -> EngineCatalog:
    """The engine's catalogue (kept while `catalog` lives). ValueError names a metric the engine
    cannot run."""
    found = _compiled.get(id(catalog))
    if found is not None and found[0]() is catalog:
        return found[1]
    compiled = EngineCatalog(catalog_spec(catalog))
    key = id(catalog)
    _compiled[key] = (weakref.ref(catalog, lambda _: _compiled.pop(key, None)), compiled)
    return compiled
