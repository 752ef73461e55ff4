"""The shipped type information (inline annotations, _core.pyi, py.typed) matches the
runtime objects, as mypy's stubtest sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent



def test_stubs_match_runtime() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "layerwise_fast", "--concise"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_marked_typed() -> None:
    assert (ROOT / "layerwise_fast" / "py.typed").is_file()
    assert (ROOT / "layerwise_fast" / "_core.pyi").is_file()
