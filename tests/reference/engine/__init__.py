"""The Python engine of earlier versions (see tests/reference/__init__.py)."""

from tests.reference.engine.engine import Deduplicator, Engine

__all__ = ["Deduplicator", "Engine"]
