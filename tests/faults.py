"""A failure injected into the engine on purpose (native/engine/src/fault.rs): no known message
makes it fail, so the tests of what follows a failure (`unprocessable`) make one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import nsm_native

DETAIL = "panic: injected fault"  # what an unprocessable message's detail then says


@contextmanager
def injected_fault(marker: bytes) -> Iterator[None]:
    """While inside, the engine fails after applying any message whose bytes contain `marker`
    (so that the failure leaves part of the message behind in the state, which must not count)."""
    nsm_native.inject_fault(marker)
    try:
        yield
    finally:
        nsm_native.inject_fault(None)
