"""The `write` fixture: definition files in a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.definitions.support import Writer


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """write(file name, text) -> the file's path, inside a fresh definitions directory."""
    directory = tmp_path / "definitions"
    directory.mkdir()

    def write_file(name: str, text: str) -> Path:
        path = directory / name
        path.write_text(text, encoding="utf-8")
        return path

    return write_file
