"""One generated history with a planted truth, shared by the evaluation and report tests."""

from __future__ import annotations

from typing import Any

import pytest
from analysis_support import history_with_churn


@pytest.fixture(scope="session")
def churn_history() -> list[dict[str, Any]]:
    return history_with_churn()
