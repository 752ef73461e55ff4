"""The differential campaign (bench/differential.py): random cases through every
algorithm against brute force. A short run in every test session; the full 10^6-case
campaign behind the slow marker (pytest -m slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "differential.py"


def run_campaign(cases: int, seed: int) -> str:
    result = subprocess.run([sys.executable, str(SCRIPT), "--cases", str(cases), "--seed", str(seed)],
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_short_campaign() -> None:
    assert "differential: 20000 cases, 0 mismatches" in run_campaign(20_000, seed=7)


@pytest.mark.slow
def test_million_case_campaign() -> None:
    assert "differential: 1000000 cases, 0 mismatches" in run_campaign(1_000_000, seed=2026)
