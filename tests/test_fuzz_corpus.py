"""Replays the saved fuzzing inputs (tests/corpus/core) through the fuzz target's
checks, compiled without libFuzzer: every input found interesting once stays a
regression test. The bounded libFuzzer run itself is in .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "core"
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


@pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH (set CXX)")
def test_replay_fuzz_corpus(tmp_path: Path) -> None:
    inputs = sorted(str(p) for p in CORPUS.iterdir())
    assert len(inputs) >= 100, "the saved corpus went missing"
    replay = tmp_path / "replay"
    assert CXX is not None
    subprocess.run([CXX, "-std=c++17", "-O1", "-DLAYERWISE_FAST_REPLAY", "-I", str(ROOT / "csrc"),
                    str(ROOT / "csrc" / "tests" / "fuzz_core.cpp"), "-o", str(replay)], check=True, timeout=600)
    result = subprocess.run([str(replay), *inputs], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"replayed {len(inputs)} inputs, no violation"
