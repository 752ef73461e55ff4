"""Build the private extension layerwise_fast._core from csrc/ (pybind11, C++17), and ship
the header-only core inside the package for C++ and Cython users (get_include())."""
import shutil
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

HEADERS = Path("csrc") / "layerwise_fast"

# -O3 and no -march=native: the wheel must run on any x86-64 / aarch64 machine.
compile_args = ["/O2"] if sys.platform == "win32" else ["-O3", "-fvisibility=hidden"]


class build_py_with_headers(build_py):
    """Copies csrc/layerwise_fast/*.hpp to layerwise_fast/include/layerwise_fast/ in the build."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "layerwise_fast" / "include" / "layerwise_fast"
        target.mkdir(parents=True, exist_ok=True)
        for header in sorted(HEADERS.glob("*.hpp")):
            shutil.copy2(header, target / header.name)


core = Pybind11Extension(
    "layerwise_fast._core",
    ["csrc/bindings.cpp"],
    include_dirs=["csrc"],
    depends=[str(h) for h in sorted(HEADERS.glob("*.hpp"))],
    cxx_std=17,
    extra_compile_args=compile_args,
)

setup(ext_modules=[core], cmdclass={"build_ext": build_ext, "build_py": build_py_with_headers})
