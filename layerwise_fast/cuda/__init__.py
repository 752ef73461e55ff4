"""On-GPU checks of a plan with Numba CUDA kernels (the optional ``cuda`` extra).

Install with ``pip install "layerwise_fast[cuda]"`` (numba and numba-cuda; numba-cuda
compiles kernels only under numpy < 2.5 for now). Everything here also runs on the
CPU under ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is first imported): results
are checked there, nothing is timed.

Submodules are imported on first use, so ``import layerwise_fast.cuda`` is cheap:

- :mod:`~layerwise_fast.cuda.reference`: layer specs and the float64 numpy oracle;
- :mod:`~layerwise_fast.cuda.kernels`: the chunked group kernel, the layer-by-layer
  control and the calibration stream;
- :mod:`~layerwise_fast.cuda.calibrate`: the bandwidth sweep, its plateau, HBM rate and
  knee, and the calibration JSON;
- :mod:`~layerwise_fast.cuda.verify`: ``verify_groups``, ``verify_plan`` and the one-call
  GPU run.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np

_INSTALL_HINT = (
    'install the GPU extra with: pip install "layerwise_fast[cuda]" '
    "(numba and numba-cuda; numba-cuda needs numpy < 2.5 for now: under numpy 2.5 it "
    "fails to compile kernels, numpy having dropped row_stack)"
)
_NUMPY_LIMIT = (2, 5)


def _numpy_version() -> tuple[int, int]:
    major, minor = np.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _require_dependencies() -> None:
    modules = {"numba": "numba", "numba_cuda": "numba-cuda"}  # module: distribution
    missing = [dist for module, dist in modules.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"layerwise_fast.cuda needs {' and '.join(missing)}: {_INSTALL_HINT}")
    if _numpy_version() >= _NUMPY_LIMIT:
        raise ImportError(
            f"layerwise_fast.cuda needs numpy < 2.5, found numpy {np.__version__}: {_INSTALL_HINT}"
        )


_require_dependencies()

_EXPORTS = {
    "LayerSpec": "reference",
    "affine": "reference",
    "rmsnorm": "reference",
    "reference_forward": "reference",
    "make_params": "reference",
    "DeviceInfo": "kernels",
    "device_info": "kernels",
    "is_simulated": "kernels",
    "Calibration": "calibrate",
    "analyse_curve": "calibrate",
    "load_calibration": "calibrate",
    "GroupSpec": "verify",
    "PlannedGroup": "verify",
    "groups_from_plan": "verify",
    "verify_groups": "verify",
    "verify_plan": "verify",
    "run_gpu_verification": "verify",
    "main": "verify",
}
# The sweep itself is ``calibrate.calibrate``: the name ``calibrate`` here is the submodule.

if TYPE_CHECKING:
    from .calibrate import Calibration, analyse_curve, load_calibration
    from .kernels import DeviceInfo, device_info, is_simulated
    from .reference import LayerSpec, affine, make_params, reference_forward, rmsnorm
    from .verify import (
        GroupSpec,
        PlannedGroup,
        groups_from_plan,
        main,
        run_gpu_verification,
        verify_groups,
        verify_plan,
    )

__all__ = [
    "Calibration",
    "DeviceInfo",
    "GroupSpec",
    "LayerSpec",
    "PlannedGroup",
    "affine",
    "analyse_curve",
    "device_info",
    "groups_from_plan",
    "is_simulated",
    "load_calibration",
    "main",
    "make_params",
    "reference_forward",
    "rmsnorm",
    "run_gpu_verification",
    "verify_groups",
    "verify_plan",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'layerwise_fast.cuda' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
