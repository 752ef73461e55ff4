"""One-call GPU verification of layerwise_fast: environment, calibration sweep, bundled plan.

    python bench/gpu_verify.py --out DIR [--quick] [--repeats N]

Writes calibration.json, verification.json and bandwidth.png into DIR and prints a short
table last; it was sized to finish within 5 minutes on one H100 or H200 before the
barrier comparison and the variant sweep were added (their cost on a GPU is not
measured yet; --quick halves the rest). With
NUMBA_ENABLE_CUDASIM=1 it runs at tiny sizes on the CPU (checked, untimed). The logic
lives in :mod:`layerwise_fast.cuda.verify`; ``layerwise-fast verify`` runs the same.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script from a checkout: make the package beside bench/ importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run, and return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from layerwise_fast.cuda.verify import main as verify_main
    except ImportError as exc:
        if "-h" in args or "--help" in args:
            print(__doc__)
        print(f"gpu_verify: cannot run: {exc}", file=sys.stderr)
        return 0 if "-h" in args or "--help" in args else 2
    return verify_main(args, prog="gpu_verify")


if __name__ == "__main__":
    sys.exit(main())
