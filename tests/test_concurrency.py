"""Threads, the GIL and interruption."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf


def mixed_calls(inputs: list[np.ndarray]) -> list[tuple[int, int, tuple[int, ...]]]:
    out = []
    for i, sizes in enumerate(inputs):
        capacity = int(sizes.max()) * (2 + i % 5)
        for p in (lf.greedy(sizes, capacity), lf.balanced(sizes, 1 + i % 17), lf.dp(sizes, capacity),
                  lf.balanced(sizes, capacity=capacity)):
            out.append((p.k, p.bottleneck, tuple(p.boundaries.tolist())))
    return out


def test_eight_threads_agree_with_serial_results() -> None:
    rng = np.random.default_rng(8)
    inputs = [rng.integers(0, 10**6, int(rng.integers(17, 3000))) for _ in range(250)]  # 1000 calls
    serial = mixed_calls(inputs)
    results: list[list | None] = [None] * 8
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, mixed_calls(inputs))) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(r == serial for r in results)


def _long_bytes_dp() -> Callable[[], object]:
    """dp on 10^7 layers: the bytes DP slides over them in a few hundred milliseconds."""
    sizes = np.random.default_rng(0).integers(0, 10**6, 10**7)
    return lambda: lf.dp(sizes, 5 * 10**7)


def _long_stage_time_dp() -> Callable[[], object]:
    """The stage-time DP with about 1000 layers per group: it scans every start of each."""
    sizes = np.random.default_rng(0).integers(0, 10**6, 10**5)
    layer_time, cut_time = np.ones(10**5), np.zeros(10**5)
    return lambda: lf.dp(sizes, 5 * 10**8, layer_time=layer_time, cut_time=cut_time)


@pytest.mark.parametrize("prepare", [_long_bytes_dp, _long_stage_time_dp], ids=["dp", "dp stage time"])
def test_long_call_releases_the_gil(prepare: Callable[[], Callable[[], object]]) -> None:
    call = prepare()
    ticks = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        before = ticks[0]
        call()
        during = ticks[0] - before
    finally:
        stop.set()
        counter.join()
    # Holding the GIL for the whole call would leave the counter at a standstill.
    assert during > 10_000


def test_ctrl_c_exits_130_without_traceback(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("1000\n" * 3_000_000)
    # The interrupt comes once the command line has started (the package imported: an
    # interrupt during Python's own start-up shows Python's traceback), whatever the load.
    start = ("import sys, layerwise_fast.cli as cli; print('ready', file=sys.stderr, flush=True); "
             f"sys.exit(cli.main(['partition', {str(big)!r}, '--capacity', '1MB']))")
    process = subprocess.Popen([sys.executable, "-c", start],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None and process.stderr.readline() == "ready\n"
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
