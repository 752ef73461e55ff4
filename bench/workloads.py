"""Seeded layer-size arrays shared by the benchmarks and the memory check.

Sizes are int64 bytes. ``uniform`` (the reference case) draws each layer uniformly from
0..10^6; ``heavy`` draws from a Lomax (Pareto II) law with the same mean, 5 * 10^5, so
most layers are small and a few are huge (clipped at the capacity so that every layer
fits one group). Arrays are filled in chunks: building one never holds more than a
chunk of temporaries on top of the result.
"""

from __future__ import annotations

import numpy as np

# One H100's L2 cache, in bytes: about 100 uniform layers per group.
CAPACITY = 50_000_000
MAX_SIZE = 10**6
SEED = 20240601
DISTRIBUTIONS = ("uniform", "heavy")

_CHUNK = 1 << 20
_HEAVY_SHAPE = 1.5
_HEAVY_SCALE = MAX_SIZE / 2 * (_HEAVY_SHAPE - 1)  # Lomax mean = scale / (shape - 1)


def layer_sizes(n: int, distribution: str = "uniform", seed: int = SEED) -> np.ndarray:
    """A read-only, C-contiguous int64 array of n layer sizes."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    rng = np.random.default_rng(seed)
    sizes = np.empty(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        if distribution == "uniform":
            sizes[start:stop] = rng.integers(0, MAX_SIZE, stop - start, dtype=np.int64, endpoint=True)
        else:
            draws = rng.pareto(_HEAVY_SHAPE, stop - start) * _HEAVY_SCALE
            np.minimum(draws, CAPACITY, out=draws)
            sizes[start:stop] = draws  # truncates towards zero
    sizes.flags.writeable = False
    return sizes


def exponent_label(n: int) -> str:
    """``10^7`` for 10**7, the plain number otherwise."""
    exponent = len(str(n)) - 1
    return f"10^{exponent}" if n == 10**exponent else str(n)
