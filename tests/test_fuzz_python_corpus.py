"""Replays the saved inputs of the Python fuzz target (tests/corpus/python) once each:
inputs that were interesting once stay regression tests. The bounded fuzzing run is in
.ci/run, which installs atheris (the `fuzz` extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("atheris", reason="atheris is the fuzz extra: pip install -e '.[fuzz]'")


def test_replay_python_corpus() -> None:
    inputs = sorted(str(p) for p in (ROOT / "tests" / "corpus" / "python").iterdir())
    assert len(inputs) >= 50, "the saved corpus went missing"
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz" / "fuzz_python.py"), *inputs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Executed {inputs[-1]}" in result.stderr
