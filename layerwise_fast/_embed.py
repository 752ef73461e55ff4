"""Locations for code that embeds the native core: C++ headers and Cython declarations."""

from __future__ import annotations

from pathlib import Path

__all__ = ["get_include"]

_PACKAGE = Path(__file__).resolve().parent


def get_include() -> str:
    """The folder to put on the C++ include path for ``#include "layerwise_fast/core.hpp"``.

    An installed package carries the headers in ``layerwise_fast/include``; a source
    checkout (an editable install) uses ``csrc`` beside the package. The headers are
    self-contained C++17 with no dependency (no Python, no pybind11).
    """
    for folder in (_PACKAGE / "include", _PACKAGE.parent / "csrc"):
        if (folder / "layerwise_fast" / "core.hpp").is_file():
            return str(folder)
    raise FileNotFoundError(
        f"the layerwise_fast C++ headers are missing from {_PACKAGE / 'include'}; reinstall the package"
    )
