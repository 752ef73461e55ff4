"""Fixtures for the partition benchmarks: one seeded size array per problem.

A problem is (n, distribution). The ``workload`` fixture is module-scoped and
parametrised indirectly; the tests are ordered problem by problem, so each array is
built once, shared by all the benchmarks of its problem (which then run close together
in time, baseline included), and freed before the next one is built (10^8 layers are
800 MB).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import pytest

import layerwise_fast
import layerwise_fast._core
from workloads import exponent_label, layer_sizes


@dataclass
class Workload:
    """One problem: n seeded layer sizes and the facts the checks compare against."""

    n: int
    distribution: str
    sizes: np.ndarray
    total: int

    @property
    def group(self) -> str:
        """The pytest-benchmark group: every benchmark of this problem is compared within it."""
        return f"n={exponent_label(self.n)} {self.distribution}"

    @functools.cached_property
    def as_list(self) -> list[int]:
        """The sizes as a list of Python ints, the seed's natural input (built on first use)."""
        return self.sizes.tolist()


@pytest.fixture(scope="module")
def workload(request: pytest.FixtureRequest) -> Workload:
    """The problem named by the test's indirect parameter ``workload=(n, distribution)``."""
    n, distribution = request.param
    sizes = layer_sizes(n, distribution)
    return Workload(n=n, distribution=distribution, sizes=sizes, total=int(np.add.reduce(sizes)))


def _problem_of(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("workload")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs the tests of each problem together, in the order the problems first appear.

    pytest groups module-scoped parameters by their index in each parametrize list, and
    the suite's lists differ (not every k or seed variant applies to every n): sorting
    by the parameter's value makes consecutive tests reuse the same array.
    """
    slots = [i for i, item in enumerate(items) if _problem_of(item) is not None]
    order: dict[object, int] = {}
    for i in slots:
        order.setdefault(_problem_of(items[i]), len(order))
    ordered = sorted((items[i] for i in slots), key=lambda item: order[_problem_of(item)])
    for i, item in zip(slots, ordered):
        items[i] = item


def cpu_model() -> str:
    """The CPU model named by /proc/cpuinfo, or what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def core_build() -> str:
    """The native module on disk: file name, build time and a hash prefix."""
    path = layerwise_fast._core.__file__
    with open(path, "rb") as binary:
        digest = hashlib.sha256(binary.read()).hexdigest()[:12]
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(path)))
    return f"{os.path.basename(path)} built {built} UTC, sha256 {digest}"


# Taken when the module is imported, i.e. the build the benchmarks run.
CORE_AT_IMPORT = core_build()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes sharing the cores show here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


_LOAD_AT_START = pytest.StashKey[list]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_LOAD_AT_START] = load_average()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Records what the report needs to describe the machine and how busy it was."""
    machine_info["cpu_model"] = cpu_model()
    machine_info["logical_cores"] = os.cpu_count()
    machine_info["numpy_version"] = np.__version__
    machine_info["layerwise_fast_version"] = layerwise_fast.__version__
    machine_info["layerwise_fast_core"] = CORE_AT_IMPORT
    if core_build() != CORE_AT_IMPORT:
        machine_info["layerwise_fast_core_warning"] = f"rebuilt during the run, now {core_build()}"
    machine_info["load_average_at_start"] = config.stash.get(_LOAD_AT_START, None)
    machine_info["load_average_at_end"] = load_average()
    machine_info["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
