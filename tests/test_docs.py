"""The examples in README.md and in the package docstring run as written."""

from __future__ import annotations

import doctest
from pathlib import Path

import layerwise_fast

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples() -> None:
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False)
    assert result.attempted >= 5 and result.failed == 0


def test_package_docstring_examples() -> None:
    result = doctest.testmod(layerwise_fast)
    assert result.attempted >= 2 and result.failed == 0
