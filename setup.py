"""Build the private extension layerwise_fast._core from csrc/ (pybind11, C++17)."""
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# -O3 and no -march=native: the wheel must run on any x86-64 / aarch64 machine.
compile_args = ["/O2"] if sys.platform == "win32" else ["-O3", "-fvisibility=hidden"]

core = Pybind11Extension(
    "layerwise_fast._core",
    ["csrc/bindings.cpp"],
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=compile_args,
)

setup(ext_modules=[core], cmdclass={"build_ext": build_ext})
