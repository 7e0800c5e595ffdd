"""`nsm compute` over 1M generated events with the example definitions, against a bare decode loop.

Both read the same file from the page cache; the baseline only splits lines and decodes JSON, which
is the floor of any Python processor of this input.
"""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path
from typing import Any

import orjson

from processor.cli.options import JsonLinesFile
from processor.definitions import load_definitions
from processor.engine import compute_metrics

ROOT = Path(__file__).resolve().parents[1]


def decode_baseline(path: Path) -> float:
    started = time.perf_counter()
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
            count += 1
    return count / (time.perf_counter() - started)


def run(path: Path) -> dict[str, Any]:
    catalog = load_definitions(ROOT / "definitions")
    baseline = decode_baseline(path)
    gc.collect()
    started = time.perf_counter()
    # Read anew should an event fail (a file handle, read once, would be kept in memory).
    with JsonLinesFile(str(path)) as events:
        result = compute_metrics(events, catalog)
    elapsed = time.perf_counter() - started
    rate = result.applied / elapsed
    return {
        "events": result.applied,
        "metrics": len(catalog),
        "seconds": round(elapsed, 2),
        "events_per_s": round(rate),
        "baseline_decode_events_per_s": round(baseline),
        "ratio_to_decode": round(rate / baseline, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
