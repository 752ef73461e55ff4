"""Replays the saved fuzzing inputs (tests/corpus/core: the partition core;
tests/corpus/json: the JSON reader and writer) through their fuzz targets' checks,
compiled without libFuzzer: every input found interesting once stays a regression
test. The bounded libFuzzer runs themselves are in .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


@pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH (set CXX)")
@pytest.mark.parametrize(("target", "corpus", "least"), [("fuzz_core", "core", 100), ("fuzz_json", "json", 50)])
def test_replay_fuzz_corpus(tmp_path: Path, target: str, corpus: str, least: int) -> None:
    inputs = sorted(str(p) for p in (ROOT / "tests" / "corpus" / corpus).iterdir())
    assert len(inputs) >= least, "the saved corpus went missing"
    replay = tmp_path / "replay"
    assert CXX is not None
    subprocess.run([CXX, "-std=c++17", "-O1", "-DLAYERWISE_FAST_REPLAY", "-I", str(ROOT / "csrc"),
                    str(ROOT / "csrc" / "tests" / f"{target}.cpp"), "-o", str(replay)], check=True, timeout=600)
    result = subprocess.run([str(replay), *inputs], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"replayed {len(inputs)} inputs, no violation"
