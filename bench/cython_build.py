"""Builds bench/embed_ext.pyx, a Cython extension that calls the core through
layerwise_fast/core.pxd, into a given folder and imports it. Used by the embedding
tests and the Cython latency benchmark."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import layerwise_fast

SOURCE = Path(__file__).resolve().parent / "embed_ext.pyx"

SETUP = """
from setuptools import setup, Extension
from Cython.Build import cythonize
ext = Extension("embed_ext", ["embed_ext.pyx"], include_dirs=[{include!r}], language="c++",
                extra_compile_args=["-std=c++17", "-O2"])
setup(name="embed_ext", ext_modules=cythonize([ext], include_path=[{package_parent!r}], quiet=True))
"""


def build_embed_ext(folder: Path) -> ModuleType:
    """Compiles the extension in `folder` (about 20 s) and returns the imported module."""
    shutil.copy(SOURCE, folder / SOURCE.name)
    package_parent = str(Path(layerwise_fast.__file__).resolve().parent.parent)
    (folder / "setup.py").write_text(SETUP.format(include=layerwise_fast.get_include(), package_parent=package_parent))
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=folder,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"building {SOURCE.name} failed:\n{result.stdout}\n{result.stderr}")
    built = next(folder.glob("embed_ext*.so"), None) or next(folder.glob("embed_ext*.pyd"))
    spec = importlib.util.spec_from_file_location("embed_ext", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
