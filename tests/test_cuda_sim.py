"""Tests of layerwise_fast.cuda: correctness on the Numba CUDA simulator, timings on a GPU.

Kernels run on the CPU simulator (``NUMBA_ENABLE_CUDASIM=1``, set here before numba is
first imported) unless the variable is already set or an NVIDIA device node exists; set
``NUMBA_ENABLE_CUDASIM=0`` on a GPU machine to run every test on the GPU, the timed ones
included. Shapes are small: the simulator runs each CUDA thread as a Python thread.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _nvidia_device_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _nvidia_device_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# Tiny test grids would otherwise warn (and warnings are errors in this suite).
os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import re  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("numba_cuda", reason="the cuda extra (numba, numba-cuda) is not installed")

from layerwise_fast.cuda import calibrate as cal_mod  # noqa: E402
from layerwise_fast.cuda import kernels, verify  # noqa: E402
from layerwise_fast.hardware import CalibrationError  # noqa: E402
from layerwise_fast.cuda.barrier import BARRIER_MODES  # noqa: E402
from layerwise_fast.cuda.reference import (  # noqa: E402
    LayerSpec,
    affine,
    make_params,
    reference_forward,
    worst_row_error,
    rmsnorm,
    weight_bytes,
)

cuda = kernels.cuda  # numba.cuda, imported after NUMBA_ENABLE_CUDASIM was settled above
SIMULATED = kernels.is_simulated()
HAVE_GPU = not SIMULATED and cuda.is_available()
NO_GPU_REASON = "no CUDA GPU: timings need real hardware"
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason=NO_GPU_REASON)
needs_device = pytest.mark.skipif(
    not (SIMULATED or HAVE_GPU),
    reason="numba was imported before NUMBA_ENABLE_CUDASIM was set, and there is no GPU",
)
TPB = 64  # threads per block of the small kernel runs


def tolerance(dtype: str) -> float:
    """The checks' tolerance, but 1e-5 for float32 under the simulator: its tanh and exp
    are exact, where the GPU's fast math is not."""
    return 1e-5 if SIMULATED and dtype == "float32" else verify.TOLERANCE[dtype]
ROOT = Path(__file__).resolve().parent.parent
CHAIN = (rmsnorm(), affine("gelu_tanh"), affine("silu"), rmsnorm(1e-5), affine("relu"))


@pytest.fixture(autouse=True, scope="module")
def _quick_thread_switching() -> Iterator[None]:
    """The simulator's block manager polls its threads: switch between them more often."""
    previous = sys.getswitchinterval()
    if SIMULATED:
        sys.setswitchinterval(5e-4)
    yield
    sys.setswitchinterval(previous)


def _inputs(
    tokens: int, hidden: int, dtype: type, layers: tuple[LayerSpec, ...] = CHAIN, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x: np.ndarray = rng.standard_normal((tokens, hidden), dtype=np.float32).astype(dtype)
    params = make_params(layers, hidden, rng)
    return x, params, reference_forward(x, layers, params)


def _run(
    kind: str,
    x: np.ndarray,
    params: np.ndarray,
    *,
    layers: tuple[LayerSpec, ...] = CHAIN,
    chunk_tokens: int = 16,
    team_size: int | None = None,
    barrier: str = "cg",
    packs_in_flight: int = kernels.PACKS_IN_FLIGHT,
) -> tuple[np.ndarray, kernels.LaunchGeometry, Any]:
    """Run ``kind`` ("chunked" or "layer_by_layer") on a poisoned output; return it."""
    group = kernels.upload_group(layers, params)
    x_dev = cuda.to_device(x)
    y_dev = cuda.device_array_like(x_dev)
    kernels.poison(y_dev)
    if kind == "chunked":
        launch = kernels.prepare_chunked(x_dev, y_dev, group, chunk_tokens, TPB, team_size, barrier,
                                         packs_in_flight)
        geometry = launch()
        launch.check_barrier()
    else:
        geometry = kernels.run_layer_by_layer(x_dev, y_dev, group, TPB, team_size=team_size,
                                              packs_in_flight=packs_in_flight)
    cuda.synchronize()
    return y_dev.copy_to_host(), geometry, x_dev


def test_package_exports_resolve_lazily() -> None:
    import layerwise_fast.cuda as package

    assert sorted(package.__all__) == sorted(package._EXPORTS)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="module 'layerwise_fast.cuda' has no attribute 'nope'"):
        package.nope  # noqa: B018


# --------------------------------------------------------------------------- reference


def test_reference_matches_a_hand_computed_row() -> None:
    x = np.array([[3.0, -4.0]])
    params = np.array([[[2.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.5, -0.5]]], dtype=np.float32)
    out = reference_forward(x, [rmsnorm(1e-6), affine("relu")], params)
    rms = math.sqrt((9.0 + 16.0) / 2 + 1e-6)
    assert out[0, 0] == pytest.approx(3.0 / rms * 2.0 + 0.5)
    assert out[0, 1] == 0.0  # -4/rms - 0.5 < 0, clipped by relu


def test_reference_silu_and_gelu_stay_finite_for_large_inputs() -> None:
    x = np.array([[-1000.0, 1000.0, -30.0, 30.0]])
    params = np.stack([np.stack([np.ones(4), np.zeros(4)])] * 2).astype(np.float32)
    out = reference_forward(x, [affine("silu"), affine("gelu_tanh")], params)
    assert np.all(np.isfinite(out))
    assert out[0, 1] == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("conv",), "LayerSpec.kind must be one of ('affine_act', 'rmsnorm'), got 'conv'"),
        (("affine_act", "tanh"), "activation of an 'affine_act' layer must be one of ('relu', 'gelu_tanh', 'silu'), got 'tanh'"),
        (("rmsnorm", "relu"), "LayerSpec.activation must be None for an 'rmsnorm' layer, got 'relu'"),
        (("rmsnorm", None, 0.0), "LayerSpec.eps of an 'rmsnorm' layer must be finite and > 0, got 0.0"),
    ],
)
def test_layer_spec_rejects_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LayerSpec(*args)


def test_reference_rejects_params_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"params must have shape \(1, 2, 3\) for 1 layers and hidden=3, got \(1, 2, 4\)"):
        reference_forward(np.zeros((2, 3)), [affine("relu")], np.zeros((1, 2, 4), np.float32))


# --------------------------------------------------------------------------- kernels


@needs_device
@pytest.mark.parametrize("hidden", [40, 36])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("kind", ["chunked", "layer_by_layer"])
def test_kernels_match_the_float64_reference(kind: str, dtype: type, hidden: int) -> None:
    # float16, hidden=40: five packs, so one lane takes the single-pack tail; hidden=36
    # is no whole number of packs (scalar path) nor of unrolled steps (a ragged tail);
    # float32 takes the scalar path.
    x, params, ref = _inputs(64, hidden, dtype)
    out, geometry, _ = _run(kind, x, params, chunk_tokens=16)
    assert not np.isnan(out).any(), "some output element was never written"
    assert worst_row_error(out, ref) <= tolerance(np.dtype(dtype).name)
    assert geometry.team_size == 32
    assert geometry.packed == (hidden % 8 == 0 and dtype is np.float16)


@needs_device
@pytest.mark.parametrize("barrier", BARRIER_MODES)
def test_chunked_kernel_handles_a_partial_last_chunk_and_keeps_x(barrier: str) -> None:
    x, params, ref = _inputs(40, 24, np.float32)
    out, geometry, x_dev = _run("chunked", x, params, chunk_tokens=16, barrier=barrier)
    assert worst_row_error(out, ref) <= tolerance("float32")
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(x_dev.copy_to_host(), x)
    assert geometry.barrier == barrier


@needs_device
@pytest.mark.parametrize("packs", kernels.PACKS_IN_FLIGHT_CHOICES)
@pytest.mark.parametrize("kind", ["chunked", "layer_by_layer"])
def test_packed_rows_match_the_reference_with_each_count_of_packs_in_flight(kind: str, packs: int) -> None:
    # hidden 768 with a 32-lane team: 3 packs per lane, so a step of 2 ends with one pack
    # and steps of 4 or 8 are partly past the row's end.
    x, params, ref = _inputs(4, 768, np.float16)
    out, geometry, _ = _run(kind, x, params, chunk_tokens=2, team_size=32, packs_in_flight=packs)
    assert not np.isnan(out).any(), "some output element was never written"
    assert worst_row_error(out, ref) <= verify.TOLERANCE["float16"]
    assert (geometry.packed, geometry.packs_in_flight) == (True, packs)


@needs_device
def test_unpacked_rows_report_no_packs_in_flight() -> None:
    x, params, _ = _inputs(16, 36, np.float16)  # 36 channels: no whole number of packs
    for kind in ("chunked", "layer_by_layer"):
        _, geometry, _ = _run(kind, x, params, chunk_tokens=8)
        assert (geometry.packed, geometry.packs_in_flight) == (False, None)


def test_team_size_default_gives_each_lane_a_full_step_of_packs() -> None:
    # Few rows of 4096 halves (512 packs): lanes are capped so each gets a whole step.
    assert kernels._team_or_default(None, 1024, 1 << 20, 4, 4096, 2) == 256
    assert kernels._team_or_default(None, 1024, 1 << 20, 4, 4096, 8) == 64
    assert kernels._team_or_default(None, 1024, 1 << 20, 4, 4096, None) == 512  # UNROLL elements
    assert kernels._team_or_default(128, 1024, 1 << 20, 4, 4096, 8) == 128  # given: kept


@needs_device
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_kernel_with_the_atomic_barrier_matches_the_reference(dtype: type) -> None:
    x, params, ref = _inputs(64, 40, dtype)
    out, _, _ = _run("chunked", x, params, chunk_tokens=16, barrier="atomic")
    assert not np.isnan(out).any()
    assert worst_row_error(out, ref) <= tolerance(np.dtype(dtype).name)


@needs_device
@pytest.mark.parametrize("barrier", BARRIER_MODES)
def test_barrier_rounds_leave_the_barrier_state_consistent(barrier: str) -> None:
    launch = kernels.prepare_barrier_rounds(5, threads_per_block=TPB, barrier=barrier)
    for _ in range(3):
        assert launch() == kernels.LaunchGeometry(launch.geometry.blocks, TPB, 0, barrier=barrier)
    launch.check_barrier()
    count, gave_up = launch.barrier_word.copy_to_host()
    blocks = launch.geometry.blocks
    assert gave_up == 0
    # The atomic barrier moves its count by `blocks` per barrier, modulo 2 * blocks;
    # Numba's own barrier leaves the word alone.
    assert count == ((15 * blocks) % (2 * blocks) if barrier == "atomic" else 0)


@needs_device
def test_check_barrier_reports_waits_that_gave_up() -> None:
    launch = kernels.prepare_barrier_rounds(1, threads_per_block=TPB, barrier="atomic")
    launch.barrier_word.copy_to_device(np.array([0, 2], dtype=np.uint32))
    with pytest.raises(RuntimeError, match=r"the atomic grid barrier timed out 2 time\(s\) in a launch of 1 blocks"):
        launch.check_barrier()
    kernels.prepare_layer_by_layer(*(cuda.to_device(np.ones((2, 8), np.float32)) for _ in range(2)),
                                   kernels.upload_group([affine("relu")], np.ones((1, 2, 8), np.float32)),
                                   TPB).check_barrier()  # no barrier: nothing to report


def _model_atomic_barrier(blocks: int, rounds: int, seed: int) -> tuple[list[list[int]], int]:
    """A thread-per-block model of the atomic barrier's protocol (barrier.py).

    Returns, for each block and round, how many blocks had arrived at that round when the
    block left it, and the final count.
    """
    import random
    import threading
    import time

    lock = threading.Lock()
    state = {"count": 0}
    arrived = [0] * rounds
    seen: list[list[int]] = [[] for _ in range(blocks)]

    def atomic_inc(limit: int) -> int:  # CUDA's atomicInc: wraps to 0 past ``limit``
        with lock:
            old = state["count"]
            state["count"] = 0 if old >= limit else old + 1
            return old

    def block(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        for r in range(rounds):
            time.sleep(rng.random() * 1e-4)  # uneven work before the barrier
            with lock:
                arrived[r] += 1
            upper = atomic_inc(2 * blocks - 1) >= blocks
            while (state["count"] >= blocks) == upper:
                time.sleep(0)
            with lock:
                seen[index].append(arrived[r])

    threads = [threading.Thread(target=block, args=(i,)) for i in range(blocks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a block never left a barrier"
    return seen, state["count"]


@pytest.mark.parametrize("blocks", [1, 2, 7])
def test_atomic_barrier_protocol_holds_every_block_until_all_arrive(blocks: int) -> None:
    rounds = 60
    seen, count = _model_atomic_barrier(blocks, rounds, seed=blocks)
    assert seen == [[blocks] * rounds for _ in range(blocks)]
    assert count == (rounds * blocks) % (2 * blocks)


@needs_device
@pytest.mark.parametrize("kind", ["chunked", "layer_by_layer"])
def test_kernels_reduce_rows_over_a_two_warp_team(kind: str) -> None:
    layers = (rmsnorm(), affine("silu"))
    x, params, ref = _inputs(4, 200, np.float32, layers)
    out, geometry, _ = _run(kind, x, params, layers=layers, chunk_tokens=2, team_size=64)
    assert geometry.team_size == 64
    assert worst_row_error(out, ref) <= tolerance("float32")


_PACK_PTX_PROBE = """
import sys
from numba import cuda, float32, uint32
from layerwise_fast.cuda.packed import pack_functions, quad_functions
load_pack, store_pack, load_words, widen_words = pack_functions(False)
load_quad, store_quad = quad_functions(False)

def kernel(a, b):
    buf = cuda.local.array(16, float32)
    i = uint32(cuda.grid(1)) * uint32(8)
    load_pack(a, i, buf, 8)
    for j in range(8):
        buf[8 + j] = buf[8 + j] * float32(2)
    store_pack(b, i, buf, 8)

def raw(a, b):  # two packs loaded unwidened, the second widened and stored
    words = cuda.local.array(16, float32)
    buf = cuda.local.array(8, float32)
    i = uint32(cuda.grid(1)) * uint32(16)
    load_words(a, i, words, 0)
    load_words(a, i + uint32(8), words, 8)
    widen_words(a, words, 8, buf, 0)
    store_pack(b, i, buf, 0)

def quad(a, b):
    buf = cuda.local.array(8, float32)
    i = uint32(cuda.grid(1)) * uint32(4)
    load_quad(a, i, buf, 4)
    store_quad(b, i, buf, 4)

try:
    for name, function in (("pack", kernel), ("raw", raw)):
        for dtype in ("float16", "float32"):
            ptx, _ = cuda.compile_ptx(function, f"{dtype}[::1], {dtype}[::1]", cc=(9, 0))
            print(name, dtype, ptx.count("ld.global.v4"), ptx.count("st.global.v4"), ptx.count(".local"))
    ptx, _ = cuda.compile_ptx(quad, "float32[::1], float32[::1]", cc=(9, 0))
    print("quad", "float32", ptx.count("ld.global.v4.f32"), ptx.count("st.global.v4.f32"), ptx.count(".local"))
except Exception as exc:  # no NVVM on this machine
    print("NO-NVVM", type(exc).__name__, exc)
"""


_BARRIER_PTX_PROBE = """
import numba.cuda.dispatcher as dispatcher
from numba import cuda

class Hopper:  # device functions compile for the current device's cc; there is none here
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: Hopper()
from layerwise_fast.cuda.kernels import BARRIER_KERNELS

try:
    for mode, kernel in BARRIER_KERNELS.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, "uint32, uint32[::1]", cc=(9, 0))
        print("@@", mode)
        print(ptx)
except Exception as exc:  # no NVVM on this machine
    print("NO-NVVM", type(exc).__name__, exc)
"""


def _run_ptx_probe(probe: str) -> str:
    """Run ``probe`` in a fresh interpreter without the simulator; its standard output.

    Skips where NVVM cannot compile (the probe prints NO-NVVM).
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               timeout=300, env=env, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    if completed.stdout.startswith("NO-NVVM"):
        pytest.skip(f"NVVM cannot compile here: {completed.stdout.strip()[:200]}")
    return completed.stdout


def test_barriers_compile_to_the_intended_instructions() -> None:
    output = _run_ptx_probe(_BARRIER_PTX_PROBE)
    ptx = dict(part.split("\n", 1) for part in output.split("@@ ")[1:])
    assert set(ptx) == set(BARRIER_MODES)
    # Numba's barrier calls into the device runtime; the atomic one is inline: a fence,
    # one atom.inc per block, then acquire loads in a loop.
    assert "call.uni" in ptx["cg"] and "cudaCGSynchronize" in ptx["cg"]
    atomic = ptx["atomic"]
    assert "cudaCGSynchronize" not in atomic
    fence, arrive = atomic.find("membar.gl"), atomic.find("atom.global.inc.u32")
    poll = atomic.find("ld.acquire.gpu.u32", arrive)
    assert 0 <= fence < arrive < poll
    loop_label = atomic.rfind("$L__BB", 0, atomic.find("ld.acquire.gpu.u32", poll + 1))
    assert loop_label > arrive, "the acquire load must be repeated in the spin loop"


_MACHINE_CODE_PROBE = """
import json, re, subprocess, sys, tempfile
from pathlib import Path
import numba.cuda.dispatcher as dispatcher
from numba import cuda

class Hopper:  # device functions compile for the current device's cc; there is none here
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: Hopper()
from layerwise_fast.cuda import kernels

try:
    from cuda.pathfinder import find_nvidia_binary_utility
    tools = {name: find_nvidia_binary_utility(name) for name in ("ptxas", "nvdisasm")}
except Exception as exc:
    tools = {"error": repr(exc)}
if None in tools.values() or "error" in tools:
    print("NO-TOOLS", tools)
    sys.exit(0)
def longest_run(sass, load):  # the most `load` lines in a row, no other access or use between
    longest = run = 0
    for line in sass.splitlines():
        if re.search(load, line):
            run += 1
            longest = max(longest, run)
        elif re.search(r"\\b(LDG|STG|LDS|STS|HADD2|F2F|FMUL|FFMA|FADD|MUFU)", line):
            run = 0
    return longest

rows = "float16[::1], float16[::1], uint32, uint32"
chunked = rows + ", int32[::1], float32[::1], float32[::1], uint32, uint32, uint32, uint32, uint32[::1]"
control = rows + ", float32[::1], uint32, int32, float32, uint32, uint32"
cases = {f"chunked {b} {p}": (kernels.chunked_group_kernel(b, p), chunked)
         for b in kernels.BARRIER_MODES for p in (4, 8)}
cases.update({f"control {p}": (kernels.layer_kernel(p), control) for p in (2, 4, 8)})
stream = "float32[::1], uint32, float32, float32, uint32[::1]"
cases.update({f"stream {a} {b}": (kernel, stream)
              for a, by_barrier in kernels.STREAM_KERNELS.items() for b, kernel in by_barrier.items()})
report = {}
work = Path(tempfile.mkdtemp())
for name, (kernel, signature) in cases.items():
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    except Exception as exc:  # no NVVM on this machine
        print("NO-NVVM", type(exc).__name__, exc)
        sys.exit(0)
    source, cubin = work / "k.ptx", work / "k.cubin"
    source.write_text(ptx)
    done = subprocess.run([tools["ptxas"], "-c", "-arch=sm_90", "-v", str(source), "-o", str(cubin)],
                          capture_output=True, text=True)
    if done.returncode:
        print("NO-TOOLS", done.stderr[-300:])
        sys.exit(0)
    sass = subprocess.run([tools["nvdisasm"], str(cubin)], capture_output=True, text=True, check=True).stdout
    # The longest run of predicated 16-byte loads with no other memory access or use of
    # loaded data in between: the activation packs of one step (weights load unpredicated);
    # and the same for 16-byte loads with or without a predicate (the stream loads no weights).
    longest, longest_any = (longest_run(sass, load) for load in (r"@!?P\\d LDG\\.E\\.128", r"\\bLDG\\.E\\.128"))
    spills = re.findall(r"(\\d+) bytes spill stores, (\\d+) bytes spill loads", done.stderr)
    report[name] = {
        "registers": int(re.search(r"Used (\\d+) registers", done.stderr).group(1)),
        "spill_bytes": sum(int(a) + int(b) for a, b in spills),
        "loads_in_a_row": longest,
        "vector_loads_in_a_row": longest_any,
        "scalar_loads": len(re.findall(r"\\bLDG\\.E\\b(?!\\.128)", sass)),
    }
print(json.dumps(report))
"""


def test_kernels_assemble_without_spills_and_keep_each_steps_loads_in_flight() -> None:
    output = _run_ptx_probe(_MACHINE_CODE_PROBE)
    if output.startswith("NO-TOOLS"):
        pytest.skip(f"ptxas or nvdisasm cannot assemble here: {output.strip()[:300]}")
    report = json.loads(output)
    assert all(kernel["spill_bytes"] == 0 for kernel in report.values()), report
    # Blocks of 256 threads per SM: 4 with 4 packs (at most 64 registers), 3 with 8 (80).
    assert max(report[f"chunked {b} 4"]["registers"] for b in BARRIER_MODES) <= 64, report
    assert max(report[f"chunked {b} 8"]["registers"] for b in BARRIER_MODES) <= 80, report
    # Every activation load of a step is issued before the first is used.
    for packs in (2, 4, 8):
        assert report[f"control {packs}"]["loads_in_a_row"] == packs, report
    assert report["chunked cg 8"]["loads_in_a_row"] == 8, report
    # The quad stream issues its quads' 16-byte loads before it uses the first, and loads
    # 4 bytes only for the tail past the last quad; the scalar stream never loads 16.
    for b in BARRIER_MODES:
        quad, scalar = report[f"stream quad {b}"], report[f"stream scalar {b}"]
        assert quad["vector_loads_in_a_row"] == kernels.STREAM_QUADS_IN_FLIGHT, report
        assert quad["scalar_loads"] == 1, report
        assert scalar["vector_loads_in_a_row"] == 0, report


def test_packs_compile_to_16_byte_vector_loads_and_stores() -> None:
    output = _run_ptx_probe(_PACK_PTX_PROBE)
    counts = {tuple(line.split()[:2]): line.split(" ", 2)[2] for line in output.strip().splitlines()}
    # float16: one v4.b32 load and store of 8 halves; float32: two v4 of each; the pack
    # buffers live in registers (no local memory). Unwidened packs load the same way.
    assert counts == {("pack", "float16"): "1 1 0", ("pack", "float32"): "2 2 0",
                      ("raw", "float16"): "2 1 0", ("raw", "float32"): "4 2 0",
                      ("quad", "float32"): "1 1 0"}


@needs_device
def test_poison_fills_every_element_with_nan() -> None:
    y = cuda.to_device(np.zeros((3, 50), dtype=np.float16))
    kernels.poison(y)
    assert np.isnan(y.copy_to_host()).all()


@needs_device
@pytest.mark.parametrize("barrier", BARRIER_MODES)
@pytest.mark.parametrize("access", kernels.STREAM_ACCESSES)
@pytest.mark.parametrize("elements", [3, 1003, 2048])  # no quad; a ragged tail; whole steps
def test_stream_passes_add_the_shift_once_per_pass(barrier: str, access: str, elements: int) -> None:
    buf = cuda.to_device(np.full(elements, 1.0, dtype=np.float32))
    geometry = kernels.run_stream_passes(buf, 3, 1.0, 0.25, threads_per_block=32, barrier=barrier,
                                         access=access)
    np.testing.assert_array_equal(buf.copy_to_host(), np.full(elements, 1.75, dtype=np.float32))
    assert (geometry.team_size, geometry.barrier) == (0, barrier)


def test_stream_refuses_an_unknown_access_and_unaligned_quads(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = _FakeDeviceArray((1024,), "float32")
    with pytest.raises(ValueError, match=r"access must be one of \('quad', 'scalar'\), got 'wide'"):
        kernels.prepare_stream_passes(buf, 1, access="wide")
    monkeypatch.setattr(kernels, "_data_address", lambda array: 0x7F0000000004)
    with pytest.raises(ValueError, match="the quad stream needs 16-byte aligned data, got address "
                                         "0x7f0000000004: pass a slice starting at a multiple of 4"):
        kernels.prepare_stream_passes(buf, 1, access="quad")
    with pytest.raises(ValueError, match=r"access must be one of"):
        cal_mod.calibrate([4096], l2_bytes=1024, access="wide")


def test_team_size_spreads_rows_and_stops_at_the_row_length() -> None:
    # 270336 threads over 2048 rows: 132 per row, rounded down to 128.
    assert kernels.team_size_for(256, 270336, 2048, 4096) == 128
    # Many rows: one warp each.
    assert kernels.team_size_for(256, 270336, 32768, 4096) == 32
    # Few rows, short row: no more lanes than hidden / UNROLL rounded up to a power of two.
    assert kernels.team_size_for(1024, 270336, 4, 1000) == 128
    assert kernels.team_size_for(64, 64, 64, 8) == 32


class _FakeDeviceArray:
    """Shape, dtype and layout only: enough for the argument checks."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "float16", contiguous: bool = True) -> None:
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(dtype)
        self.size = math.prod(shape)
        self._contiguous = contiguous

    def is_c_contiguous(self) -> bool:
        return self._contiguous

    def copy_to_host(self) -> np.ndarray:  # marks a device array; never called by the checks
        raise AssertionError("the argument checks read no data")


@pytest.fixture(scope="module")
def small_group() -> kernels.DeviceGroup:
    return kernels.upload_group([affine("relu")], np.ones((1, 2, 8), np.float32))


@pytest.mark.parametrize(
    ("x", "y", "options", "message"),
    [
        ((16, 8), (16, 8), {"chunk_tokens": 3}, r"chunk_tokens must be a power of two in \[1, 2\*\*30\], got 3"),
        ((16, 8), (16, 8), {"chunk_tokens": 4, "threads_per_block": 48}, r"threads_per_block must be a power of two in \[32, 1024\], got 48"),
        ((16, 8), (16, 8), {"chunk_tokens": 4, "team_size": 16}, r"team_size must be a power of two in \[32, threads_per_block=256\], got 16"),
        ((16, 8), (8, 16), {"chunk_tokens": 4}, r"x and y must have the same shape, got \(16, 8\) and \(8, 16\)"),
        ((16, 4), (16, 4), {"chunk_tokens": 4}, "x has hidden=4 but the group's weights have hidden=8"),
        ((2**28 + 1, 8), (2**28 + 1, 8), {"chunk_tokens": 4}, r"accept at most 2147483648"),
        ((16,), (16,), {"chunk_tokens": 4}, r"x and y must be 2-D \(tokens, hidden\)"),
    ],
)
def test_run_chunked_rejects_bad_arguments(small_group, x, y, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        kernels.run_chunked(_FakeDeviceArray(x), _FakeDeviceArray(y), small_group, **options)


def test_launchers_refuse_host_arrays_and_other_dtypes(small_group) -> None:
    host = np.zeros((4, 8), np.float16)
    with pytest.raises(TypeError, match="x must be a device array .* got ndarray"):
        kernels.run_layer_by_layer(host, _FakeDeviceArray((4, 8)), small_group)
    with pytest.raises(TypeError, match="y must be a device array"):
        kernels.poison(host)
    with pytest.raises(ValueError, match="x and y must hold one of float32, float16, bfloat16, got int32"):
        kernels.run_layer_by_layer(_FakeDeviceArray((4, 8), "int32"), _FakeDeviceArray((4, 8), "int32"),
                                   small_group)


@needs_device
def test_count_mismatches_counts_elements_off_the_expected_and_non_finite_ones() -> None:
    expected = np.linspace(-4, 4, 3 * 50, dtype=np.float32).reshape(3, 50).astype(np.float16)
    actual = expected.copy()
    same = kernels.count_mismatches(cuda.to_device(actual), cuda.to_device(expected), 1e-2)
    actual[1, 7] += np.float16(0.5)  # a stale element
    actual[2, 0] = np.nan  # an unwritten one
    actual[0, 3] = expected[0, 3] * np.float16(1.004)  # within the tolerance
    off = kernels.count_mismatches(cuda.to_device(actual), cuda.to_device(expected), 1e-2)
    assert (same, off) == (0, 2)
    actual[0, 0] = np.inf
    assert kernels.count_non_finite(cuda.to_device(actual)) == 2  # the NaN and the inf
    with pytest.raises(ValueError, match="shapes differ"):
        kernels.count_mismatches(cuda.to_device(actual), cuda.to_device(expected[:2]), 1e-2)


def test_worst_row_error_counts_one_stale_row_in_full() -> None:
    rng = np.random.default_rng(1)
    expected = rng.standard_normal((4096, 64))
    actual = expected * (1 + 1e-4)
    assert worst_row_error(actual, expected) == pytest.approx(1e-4)
    actual[17] = expected[17] * 1.3  # one row from a layer too few, say
    assert worst_row_error(actual, expected) == pytest.approx(0.3)
    actual[5, 2] = np.nan
    assert np.isnan(worst_row_error(actual, expected))
    assert worst_row_error(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0
    assert worst_row_error(np.ones((2, 3)), np.zeros((2, 3))) == math.inf


def test_a_run_that_differs_from_the_control_is_wrong() -> None:
    cal = _synthetic_calibration()
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048)
    runs = _timed_runs(4.3, 3.1, 2.9, 3.0)
    assert verify.group_report(group, cal, 5e-3, runs).verdict != "wrong"
    runs["planned"].mismatches = 12
    assert verify.group_report(group, cal, 5e-3, runs).verdict == "wrong"


def test_launchers_reject_other_bad_arguments(small_group) -> None:
    with pytest.raises(ValueError, match="x and y must have the same dtype, got float16 and float32"):
        kernels.run_layer_by_layer(_FakeDeviceArray((4, 8)), _FakeDeviceArray((4, 8), "float32"), small_group)
    with pytest.raises(ValueError, match="x and y must be C-contiguous"):
        kernels.run_layer_by_layer(_FakeDeviceArray((4, 8), contiguous=False), _FakeDeviceArray((4, 8)), small_group)
    with pytest.raises(ValueError, match="buf must be a 1-D float32 array, got 1-D float16"):
        kernels.run_stream_passes(_FakeDeviceArray((8,)), 1)
    with pytest.raises(ValueError, match=r"passes must be in \[1, 2\*\*31\], got 0"):
        kernels.run_stream_passes(_FakeDeviceArray((8,), "float32"), 0)
    with pytest.raises(ValueError, match=r"params must have shape \(2, 2, hidden >= 1\) for 2 layers, got \(2, 3, 8\)"):
        kernels.upload_group([affine("relu"), rmsnorm()], np.ones((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match="a group needs at least one layer, got 0"):
        kernels.upload_group([], np.ones((0, 2, 8), np.float32))
    bad_barrier = r"barrier must be one of \('cg', 'atomic'\), got 'spin'"
    with pytest.raises(ValueError, match=bad_barrier):
        kernels.run_chunked(_FakeDeviceArray((16, 8)), _FakeDeviceArray((16, 8)), small_group, 4, barrier="spin")
    with pytest.raises(ValueError, match=bad_barrier):
        kernels.run_stream_passes(_FakeDeviceArray((8,), "float32"), 1, barrier="spin")
    with pytest.raises(ValueError, match=bad_barrier):
        kernels.prepare_barrier_rounds(1, barrier="spin")
    with pytest.raises(ValueError, match=r"rounds must be in \[0, 2\*\*31\], got -1"):
        kernels.prepare_barrier_rounds(-1)
    bad_packs = r"packs_in_flight must be one of \(2, 4, 8\), got 3"
    with pytest.raises(ValueError, match=bad_packs):
        kernels.run_chunked(_FakeDeviceArray((16, 8)), _FakeDeviceArray((16, 8)), small_group, 4, packs_in_flight=3)
    with pytest.raises(ValueError, match=bad_packs):
        kernels.run_layer_by_layer(_FakeDeviceArray((16, 8)), _FakeDeviceArray((16, 8)), small_group,
                                   packs_in_flight=3)


@needs_device
def test_barrier_rounds_refuse_more_blocks_than_stay_resident() -> None:
    limit = kernels.prepare_barrier_rounds(1, threads_per_block=TPB).geometry.blocks
    with pytest.raises(ValueError, match=rf"blocks must be in \[1, {limit}\] \(the most that stay resident "
                                         rf"with {TPB} threads per block\), got {limit + 1}"):
        kernels.prepare_barrier_rounds(1, limit + 1, TPB)
    with pytest.raises(ValueError, match=rf"blocks must be in \[1, {limit}\]"):
        kernels.prepare_barrier_rounds(1, 0, TPB)


@pytest.mark.skipif(not SIMULATED, reason="checks the simulator's limits")
def test_bfloat16_is_refused_under_the_simulator() -> None:
    with pytest.raises(ValueError, match="dtype 'bfloat16' is not available under the simulator"):
        kernels.storage_dtype("bfloat16")
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float16', 'bfloat16'\), got 'int8'"):
        kernels.storage_dtype("int8")


# --------------------------------------------------------------------------- calibration

# An H100-like curve: sizes in MiB, rates in TB/s.
CURVE_MIB = [1, 2, 4, 8, 16, 24, 32, 40, 64, 100, 128, 200]
CURVE_TBPS = [2.0, 3.0, 4.0, 4.5, 4.7, 4.79, 4.4, 3.6, 3.1, 3.02, 3.0, 3.04]
L2_MIB = 50


def _synthetic_calibration() -> cal_mod.Calibration:
    summary = cal_mod.analyse_curve([m << 20 for m in CURVE_MIB], [t * 1e12 for t in CURVE_TBPS], L2_MIB << 20)
    return cal_mod.Calibration.from_dict({
        "schema": "layerwise_fast.calibration",
        "version": 1,
        "device_name": "NVIDIA H100 80GB HBM3",
        "l2_bytes": L2_MIB << 20,
        "knee_bytes": summary.knee_bytes,
        "plateau_bytes_per_s": summary.plateau_bytes_per_s,
        "hbm_bytes_per_s": summary.hbm_bytes_per_s,
        "sizes": [m << 20 for m in CURVE_MIB],
        "bytes_per_s": [t * 1e12 for t in CURVE_TBPS],
    })


def test_analyse_curve_finds_plateau_knee_and_hbm_rate() -> None:
    summary = _synthetic_calibration().summary
    assert summary is not None
    assert summary.plateau_bytes_per_s == pytest.approx(4.79e12)
    assert summary.plateau_size_bytes == 24 << 20
    # 4.4 >= 0.9 * 4.79 = 4.311 but 3.6 is not: the knee is the 32 MiB point.
    assert summary.knee_bytes == 32 << 20
    # Sizes >= 100 MiB: median of 3.02, 3.0, 3.04.
    assert summary.hbm_bytes_per_s == pytest.approx(3.02e12)


def test_one_dip_past_the_plateau_does_not_cut_the_knee_short() -> None:
    rates = list(CURVE_TBPS)
    rates[CURVE_MIB.index(32)] = 4.0  # a noisy point between the plateau (24) and 40 MiB
    rates[CURVE_MIB.index(40)] = 4.4
    summary = cal_mod.analyse_curve([m << 20 for m in CURVE_MIB], [t * 1e12 for t in rates], L2_MIB << 20)
    assert summary.knee_bytes == 40 << 20  # the walk from the plateau stopped at 24 MiB


def test_a_noisy_point_past_the_step_moves_neither_knee_nor_plateau() -> None:
    # Two points below 0.9 of the plateau end the walk: the high point at 48 MiB after
    # them does not stretch the knee; 56 MiB, past the 50 MiB L2, is not the plateau.
    sizes = [16, 24, 32, 36, 40, 48, 56, 100, 128, 200]
    rates = [4.5, 4.79, 4.4, 3.6, 3.4, 4.5, 5.5, 3.0, 3.0, 3.0]
    summary = cal_mod.analyse_curve([m << 20 for m in sizes], [t * 1e12 for t in rates], L2_MIB << 20)
    assert (summary.plateau_size_bytes, summary.knee_bytes) == (24 << 20, 32 << 20)
    assert summary.plateau_bytes_per_s == pytest.approx(4.79e12)


def test_the_knee_stays_within_the_l2() -> None:
    # 64 MiB keeps 0.9 of the plateau, but lies beyond the 50 MiB L2: the knee is 40 MiB.
    sizes = [16, 24, 40, 64, 100, 128, 200]
    rates = [4.5, 4.79, 4.4, 4.4, 3.0, 3.0, 3.0]
    summary = cal_mod.analyse_curve([m << 20 for m in sizes], [t * 1e12 for t in rates], L2_MIB << 20)
    assert summary.knee_bytes == 40 << 20


@pytest.mark.parametrize(
    ("rates", "why"),
    [
        ([2.0, 2.5, 2.9, 3.0, 3.0, 3.1, 3.2], r"is 2.90 TB/s at 32.0 MiB, .* runs at 3.10 TB/s "
                                              r"\(107% of it\)"),  # rising to the end
        ([4.0, 4.2, 4.2, 4.1, 4.0, 4.0, 4.1], r"runs at 4.00 TB/s \(95% of it\)"),  # flat: no L2 step
    ],
)
def test_a_curve_without_a_cache_step_has_no_knee(tmp_path: Path, rates: list[float], why: str) -> None:
    sizes = [m << 20 for m in (8, 16, 32, 64, 100, 150, 200)]
    with pytest.raises(ValueError, match=f"the curve shows no cache step: .*{why}"):
        cal_mod.analyse_curve(sizes, [t * 1e12 for t in rates], L2_MIB << 20)
    data = _synthetic_calibration().to_dict()
    data.update(sizes=sizes, bytes_per_s=[t * 1e12 for t in rates], knee_bytes=32 << 20)
    path = tmp_path / "flat.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match=f"calibration file '{re.escape(str(path))}': the curve "
                                               "shows no cache step"):
        cal_mod.load_calibration(path)


@pytest.mark.parametrize(
    ("sizes", "rates", "message"),
    [
        ([1, 2], [1.0], "sizes_bytes and rates_bytes_per_s must have equal lengths, got 2 and 1"),
        ([2, 1], [1.0, 1.0], "sizes_bytes must be strictly increasing"),
        ([1, 2], [1.0, math.nan], "rates_bytes_per_s must all be finite and > 0"),
        ([1, 2], [1.0, 1.0], r"no size reaches 2x l2_bytes = 20 bytes \(largest: 2\)"),
    ],
)
def test_analyse_curve_rejects_bad_curves(sizes, rates, message) -> None:
    with pytest.raises(ValueError, match=message):
        cal_mod.analyse_curve(sizes, rates, 10)


def test_calibration_sizes_are_aligned_geometric_and_end_at_four_l2() -> None:
    sizes = cal_mod.calibration_sizes(50 << 20)
    assert sizes[0] == 1 << 20 and sizes[-1] == 200 << 20
    assert all(s % 4096 == 0 for s in sizes)
    assert all(b > a for a, b in zip(sizes, sizes[1:]))
    assert len(sizes) == math.ceil(math.log2(200) * 4) + 1  # 4 points per octave over 200x
    with pytest.raises(ValueError, match="max_factor \\* l2_bytes = 4096 bytes must exceed min_bytes = 1048576"):
        cal_mod.calibration_sizes(1024)


def test_calibration_file_round_trips_and_loads_as_hardware(tmp_path: Path) -> None:
    from layerwise_fast import Hardware

    cal = _synthetic_calibration()
    path = cal.save(tmp_path / "calibration.json")
    data = json.loads(path.read_text())
    assert (data["schema"], data["version"], data["knee_bytes"]) == ("layerwise_fast.calibration", 1, 32 << 20)
    assert data["meta"]["plateau_size_bytes"] == 24 << 20
    again = cal_mod.load_calibration(path)
    assert again.summary == cal.summary and again.sizes_bytes == cal.sizes_bytes
    assert again.rate_at(24 << 20) == pytest.approx(4.79e12)
    assert again.rate_at(1) == pytest.approx(2.0e12)  # clamped below the first size
    hardware = Hardware.from_calibration(path)
    assert hardware.capacity == 32 << 20
    with pytest.raises(ValueError, match="not a calibration file of this version: schema 'other'"):
        cal_mod.Calibration.from_dict({**data, "schema": "other"})


@needs_device
def test_calibrate_runs_the_sweep_and_checks_every_increment(tmp_path: Path) -> None:
    cal = cal_mod.calibrate([1024, 2048, 4096], l2_bytes=1024, repeats=2, bytes_per_launch=8192,
                            threads_per_block=32)
    assert cal.passes == (4, 2, 1)
    assert cal.timed is (not SIMULATED)
    assert cal.describe()["timed"] is cal.timed
    if SIMULATED:
        assert cal.rates_bytes_per_s is None and cal.summary is None
        with pytest.raises(ValueError, match="an untimed calibration \\(simulator\\) has no rates"):
            cal.save(tmp_path / "c.json")


@needs_device
@pytest.mark.parametrize("warmup_seconds", [0.0, 1e-9, 0.05])
def test_calibrate_counts_its_warm_up_launches_in_the_increment_check(warmup_seconds: float) -> None:
    cal = cal_mod.calibrate([1024, 2048], l2_bytes=1024, repeats=1, bytes_per_launch=4096,
                            threads_per_block=32, warmup_seconds=warmup_seconds)
    launches = cal.method["warmup"]["launches"]
    if warmup_seconds == 0.0:
        assert launches == 0
    elif warmup_seconds < 1e-6:
        assert launches == 1  # the compiling launch alone
    else:
        assert launches >= 2


@needs_device
def test_calibrate_warm_up_stops_where_the_increments_would_stop_being_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 passes a launch: the sweep's 3 launches, then room for 3 warm-up launches, not 4
    monkeypatch.setattr(cal_mod, "_MAX_INCREMENTS", 4 * (1 + 2) + 4 * 3 + 3)
    cal = cal_mod.calibrate([1024], l2_bytes=1024, repeats=1, bytes_per_launch=8192,
                            threads_per_block=32, warmup_seconds=60.0)
    assert cal.passes == (4,)
    assert cal.method["warmup"] == {"seconds": 60.0, "launches": 3}


def test_calibrate_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"calibration sizes must be multiples of 4 bytes in \[4, 8589934592\], got 1022"):
        cal_mod.calibrate([1022], l2_bytes=1024)
    with pytest.raises(ValueError, match="the sweep would make"):
        cal_mod.calibrate([4096], l2_bytes=1024, repeats=100, max_passes=2**20, bytes_per_launch=2**40)
    for bad in (-1.0, 61.0, float("nan")):
        with pytest.raises(ValueError, match="warmup_seconds must be in \\[0, 60\\], got"):
            cal_mod.calibrate([4096], l2_bytes=1024, warmup_seconds=bad)


@pytest.mark.skipif(not SIMULATED, reason="checks the simulator's behaviour")
def test_time_launches_under_the_simulator_launches_nothing() -> None:
    calls = []
    assert cal_mod.time_launches(lambda: calls.append(1), 3) is None
    assert cal_mod.time_launches(lambda: calls.append(1), 3, warm_up_seconds=0.1) is None
    assert calls == []


@needs_device
def test_warm_up_runs_for_its_wall_time_within_its_launch_limit() -> None:
    calls = []
    assert cal_mod.warm_up_clocks(lambda: calls.append(1), 0.0, 100) == 1 == len(calls)
    assert cal_mod.warm_up_clocks(lambda: calls.append(1), 60.0, 5) == 5
    assert len(calls) == 6


def test_two_checks_combine_to_the_worse_even_when_one_is_nan() -> None:
    ok = verify._Checked(1e-3, 0, 0)
    broken = verify._Checked(float("nan"), 2, None)
    for combined in (ok.worse(broken), broken.worse(ok)):
        assert math.isnan(combined.error)
        assert (combined.unwritten, combined.mismatches) == (2, None)


# --------------------------------------------------------------------------- verification


def test_chunk_tokens_for_rounds_down_for_plans_and_up_for_cache_multiples() -> None:
    layers = (rmsnorm(), affine("relu"))  # 3 weight vectors
    weights = weight_bytes(layers, 4096)
    assert weights == 3 * 4096 * 4
    assert verify.chunk_tokens_for(16 * 2**20 + weights, layers, 4096, 2, at_least=False) == 2048
    assert verify.chunk_tokens_for(16 * 2**20 + weights - 1, layers, 4096, 2, at_least=False) == 1024
    assert verify.chunk_tokens_for(16 * 2**20 + weights + 1, layers, 4096, 2, at_least=True) == 4096
    with pytest.raises(ValueError, match="holds less than the weights"):
        verify.chunk_tokens_for(weights, layers, 4096, 2, at_least=False)


def test_groups_from_plan_keep_the_planned_chunk_and_scale_the_tokens() -> None:
    groups = verify.groups_from_plan(verify.bundled_plan(), cache_bytes=50 << 20, total_bytes=1 << 30)
    a, b = groups
    assert (a.hidden, a.chunk_tokens, len(a.layers)) == (4096, 2048, 8)
    assert (b.hidden, b.chunk_tokens, len(b.layers)) == (5120, 2048, 4)
    # The 4x-cache chunk is 32768 rows for both; tokens are a multiple of it.
    assert a.tokens == 131072 and b.tokens == 98304
    assert a.working_set_bytes == 16 * 2**20 + weight_bytes(a.layers, 4096)
    with pytest.raises(ValueError, match="dtype must be one of"):
        verify.groups_from_plan(verify.bundled_plan(), cache_bytes=1, dtype="int8")


def test_groups_from_plan_run_at_the_planned_working_set() -> None:
    layers = (rmsnorm(), affine("silu"), affine("relu"))
    planned = 29_750_000  # no power-of-two chunk at 4096 channels comes near it
    group = verify.PlannedGroup("p", layers, 4096, planned)
    (spec,) = verify.groups_from_plan([group], cache_bytes=50 << 20)
    ran = spec.chunk_working_set_bytes
    assert ran == verify.chunk_working_set_bytes(spec.layers, spec.hidden, spec.chunk_tokens, 2)
    per_channel = spec.chunk_tokens * 2 + weight_bytes(layers, 1)
    assert planned - 8 * per_channel < ran <= planned  # within 8 channels, never above
    assert spec.hidden % 8 == 0 and spec.hidden >= 4096
    assert spec.planned_working_set_bytes == planned


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layers": ()}, "group 'g': layers must hold at least one layer"),
        ({"hidden": 0}, "group 'g': hidden must be >= 1, got 0"),
        ({"chunk_tokens": 6}, "group 'g': chunk_tokens must be a power of two, got 6"),
        ({"dtype": "float64"}, "group 'g': dtype must be one of"),
        ({"predicted_speedup": -1.0}, "group 'g': predicted_speedup must be finite and > 0, got -1.0"),
        ({"hidden": 8.0}, "group 'g': hidden must be an int, got float 8.0"),
        ({"tokens": 2**28, "hidden": 16}, r"group 'g': 268435456 tokens x 16 channels = 4294967296 "
                                          r"elements; the kernels take at most 2147483648"),
    ],
)
def test_group_spec_rejects_bad_fields(changes: dict, message: str) -> None:
    fields = {"name": "g", "layers": (affine("relu"),), "hidden": 8, "tokens": 16, "chunk_tokens": 4}
    with pytest.raises((ValueError, TypeError), match=message):
        verify.GroupSpec(**{**fields, **changes})


def test_model_speedup_follows_the_two_rate_model() -> None:
    cal = _synthetic_calibration()
    ratio = 3.02 / 4.79  # HBM rate over the rate at 24 MiB
    assert verify.model_speedup(8, 24 << 20, cal) == pytest.approx(8 / (1 + 7 * ratio))
    assert verify.model_speedup(1, 24 << 20, cal) == pytest.approx(1.0)


def _timed_runs(planned: float, four_x: float, control: float, copy: float) -> dict[str, verify.RunReport]:
    """Runs of an 8-layer group moving 16 GiB, with the given rates (TB/s)."""
    moved = 16 << 30
    rates = {"planned": planned, "2x_cache": (planned + four_x) / 2, "4x_cache": four_x,
             "layer_by_layer": control}
    runs = {
        name: verify.RunReport(name, None, None, moved, moved / (r * 1e12), r * 1e12, 1e-4, 0)
        for name, r in rates.items()
    }
    runs["device_copy"] = verify.RunReport("device_copy", None, None, 1 << 31, (1 << 31) / (copy * 1e12), copy * 1e12)
    return runs


def test_group_report_judges_each_criterion() -> None:
    cal = _synthetic_calibration()
    layers = verify.bundled_plan()[0].layers
    group = verify.GroupSpec("A", layers, 4096, 131072, 2048, planned_working_set_bytes=16 << 20)
    predicted = verify.model_speedup(8, 16 << 20, cal)
    good = verify.group_report(group, cal, 5e-3, _timed_runs(4.3, 3.1, 4.3 / predicted, 4.0))
    assert {c.name: c.passed for c in good.criteria} == {
        "working_set_vs_knee": True,  # 16 / 32 = 0.5
        "planned_vs_hbm": True,  # 4.3 / 3.02
        "4x_cache_vs_hbm": True,  # 3.1 / 3.02
        "speedup_agreement": True,  # exactly the model
        "control_vs_copy": False,  # (4.3 / predicted) / 4.0 < 0.85
    }
    assert good.prediction_source == "model" and good.verdict == "fail"
    assert good.measured_speedup == pytest.approx(predicted)
    wrong_runs = _timed_runs(4.3, 3.1, 2.9, 3.0)
    wrong_runs["planned"].unwritten = 5
    assert verify.group_report(group, cal, 5e-3, wrong_runs).verdict == "wrong"
    fine = verify.group_report(
        verify.GroupSpec("A", layers, 4096, 131072, 2048, planned_working_set_bytes=16 << 20,
                         predicted_speedup=4.3 / 2.9),
        cal, 5e-3, _timed_runs(4.3, 3.1, 2.9, 3.0))
    assert fine.prediction_source == "plan" and fine.verdict == "pass"
    table = verify.format_table(cal, [good, fine])
    assert table.splitlines()[-1] == "overall: fail"
    assert "  A     control_vs_copy" in table and "FAIL" in table


def test_table_shows_the_speedup_with_each_compared_barrier_and_their_costs() -> None:
    cal = _synthetic_calibration()
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048)
    runs = _timed_runs(4.3, 3.1, 2.9, 3.0)
    moved = runs["planned"].bytes_moved
    runs["planned_atomic"] = verify.RunReport("planned_atomic", 2048, None, moved, moved / 5.8e12, 5.8e12, 1e-4, 0)
    report = verify.group_report(group, cal, 5e-3, runs)
    costs = [cal_mod.BarrierCost("cg", 132, 256, 4096, 2.5e-6), cal_mod.BarrierCost("cg", 264, 256, 4096, 3e-6),
             cal_mod.BarrierCost("atomic", 132, 256, 4096, 1.25e-6)]
    lines = verify.format_table(cal, [report], costs).splitlines()
    assert lines[1:3] == ["barrier cg, us each: 132 blocks 2.50, 264 blocks 3.00",
                          "barrier atomic, us each: 132 blocks 1.25"]
    header, row = lines[3], lines[4]

    def column(name: str) -> str:  # right-aligned columns: a value ends where its name does
        end = header.index(name) + len(name)
        return row[end - 9:end].strip()

    # speedup = control time / planned time = 4.3 / 2.9; with the atomic barrier 5.8 / 2.9.
    assert header.split()[header.split().index("speedup") + 1] == "atomic"
    assert (column("speedup"), column("atomic")) == ("1.48", "2.00")
    # The main barrier's run alone is judged.
    assert report.measured_speedup == pytest.approx(4.3 / 2.9)


def test_bandwidth_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib draws the optional PNG")
    cal = _synthetic_calibration()
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048)
    runs = _timed_runs(4.3, 3.1, 2.9, 3.0)
    runs["planned"].working_set_bytes = 16 << 20
    report = verify.group_report(group, cal, 5e-3, runs)
    assert verify.plot_bandwidth(cal, [report], tmp_path / "bw.png") == "wrote bw.png"
    assert (tmp_path / "bw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scalar = dataclasses.replace(cal, rates_bytes_per_s=tuple(0.8 * r for r in cal.rates_bytes_per_s or ()),
                                 method={"access": "scalar"})
    assert verify.plot_bandwidth(cal, [report], tmp_path / "both.png", scalar) == "wrote both.png"
    assert (tmp_path / "both.png").stat().st_size > (tmp_path / "bw.png").stat().st_size


@needs_device
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_verify_groups_checks_every_variant(dtype: str) -> None:
    layers = (rmsnorm(), affine("gelu_tanh"), affine("relu"))
    group = verify.GroupSpec("t", layers, 32, 64, 8, dtype=dtype)
    (report,) = verify.verify_groups([group], cache_bytes=1024, repeats=2, sample_rows=40,
                                     threads_per_block=32, compare_barriers=("atomic", "cg"))
    assert set(report.runs) == {"planned", "2x_cache", "4x_cache", "layer_by_layer", "device_copy",
                                "planned_atomic"}
    assert report.runs["planned"].geometry.barrier == "cg"
    assert report.runs["planned_atomic"].geometry.barrier == "atomic"
    assert report.correct, {k: (r.relative_error, r.unwritten) for k, r in report.runs.items()}
    # Every chunked run was matched element by element against the control's output.
    assert {k: r.mismatches for k, r in report.runs.items() if r.chunk_tokens is not None} == {
        "planned": 0, "2x_cache": 0, "4x_cache": 0, "planned_atomic": 0}
    assert report.runs["layer_by_layer"].mismatches is None
    # The smallest power-of-two chunk over 4 KiB once the weights (640 bytes) are counted.
    assert report.runs["4x_cache"].chunk_tokens == 4096 // (32 * np.dtype(dtype).itemsize)
    assert report.runs["planned"].bytes_moved == 2 * 3 * 64 * 32 * np.dtype(dtype).itemsize
    if SIMULATED:
        assert report.verdict == "unmeasured"
        assert all(run.seconds is None for run in report.runs.values())
        assert all(c.passed is None for c in report.criteria)


@pytest.mark.skipif(not SIMULATED, reason="on a GPU the one-call run is bench/gpu_verify.py's job")
def test_one_call_run_writes_its_outputs_and_prints_the_table_last(tmp_path: Path, capsys) -> None:
    assert verify.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "overall: unmeasured"
    assert any(line.startswith("group ") for line in printed)
    result = json.loads((tmp_path / "verification.json").read_text())
    assert result["environment"]["simulated"] is True
    assert result["groups"][0]["correct"] is True
    assert result["calibration"]["timed"] is False
    assert not (tmp_path / "calibration.json").exists()  # untimed: no calibration file
    assert result["barrier"] == "cg"
    assert [(c["barrier"], c["blocks"], c["seconds_per_barrier"]) for c in result["barrier_costs"]] == [
        ("cg", 1, None), ("atomic", 1, None)]
    assert set(result["groups"][0]["runs"]) >= {"planned", "planned_atomic"}
    assert result["calibration"]["method"]["barrier"] == "cg"
    variants = result["variants"]
    assert variants["correct"] is True and len(variants["runs"]) == 2 * len(kernels.PACKS_IN_FLIGHT_CHOICES)
    assert result["packs_in_flight"] == kernels.PACKS_IN_FLIGHT


@pytest.mark.skipif(not SIMULATED, reason="on a GPU the one-call run is bench/gpu_verify.py's job")
def test_one_call_run_takes_the_atomic_barrier_and_compares_cg(tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    def broken_plot(*args: object) -> str:
        raise RuntimeError("a matplotlib failure")
    monkeypatch.setattr(verify, "plot_bandwidth", broken_plot)  # the tables still print
    assert verify.main(["--out", str(tmp_path), "--barrier", "atomic", "--packs-in-flight", "8"]) == 0
    out = capsys.readouterr().out
    assert "bandwidth.png not written: RuntimeError: a matplotlib failure" in out
    assert "calibration (quad stream): untimed (simulator)" in out
    assert "scalar stream, for comparison: untimed (simulator)" in out
    header = next(line for line in out.splitlines() if line.startswith("group "))
    assert header.split()[header.split().index("speedup") + 1] == "cg"
    result = json.loads((tmp_path / "verification.json").read_text())
    stages = result["stage_seconds"]  # where the wall time went, stage by stage
    assert list(stages)[:5] == ["setup", "calibration", "calibration_scalar", "barrier_costs", "variants"]
    assert list(stages)[-1] == "verdict" and all(seconds >= 0 for seconds in stages.values())
    assert re.search(r"^wall time \d+ s: setup \d+ s, calibration \d+ s, calibration_scalar \d+ s, ", out, re.M)
    assert result["calibration"]["method"]["access"] == "quad"
    assert result["calibration_scalar"]["method"]["access"] == "scalar"
    assert result["calibration_scalar"]["method"]["barrier"] == "atomic"
    runs = result["groups"][0]["runs"]
    assert runs["planned"]["geometry"]["barrier"] == "atomic" and runs["planned_cg"]["geometry"]["barrier"] == "cg"
    assert runs["planned"]["geometry"]["packs_in_flight"] == runs["layer_by_layer"]["geometry"]["packs_in_flight"] == 8


@pytest.mark.skipif(not SIMULATED, reason="on a GPU the one-call run is bench/gpu_verify.py's job")
def test_one_call_run_is_wrong_when_a_variant_run_is(tmp_path: Path, capsys, monkeypatch) -> None:
    real_sweep = verify.sweep_variants

    def sweep_with_a_wrong_run(*args: Any, **kwargs: Any) -> list[verify.VariantRun]:
        runs = real_sweep(*args, **kwargs)
        runs[-1].chunked.unwritten = 7
        return runs

    monkeypatch.setattr(verify, "sweep_variants", sweep_with_a_wrong_run)
    assert verify.main(["--out", str(tmp_path)]) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "overall: wrong"
    result = json.loads((tmp_path / "verification.json").read_text())
    assert result["verdict"] == "wrong" and result["variants"]["correct"] is False


@pytest.mark.skipif(not SIMULATED, reason="on a GPU the one-call run is bench/gpu_verify.py's job")
def test_one_call_run_keeps_what_it_measured_when_cut_short(tmp_path: Path, monkeypatch) -> None:
    def stopped(*args: Any, **kwargs: Any) -> list[verify.GroupReport]:
        raise KeyboardInterrupt  # as a time limit would stop it, before the groups

    monkeypatch.setattr(verify, "verify_groups", stopped)
    with pytest.raises(KeyboardInterrupt):
        verify.run_gpu_verification(tmp_path)
    result = json.loads((tmp_path / "verification.json").read_text())
    assert result["verdict"] == "incomplete" and result["groups"] == []
    assert result["variants"]["correct"] is True and result["barrier_costs"]
    assert result["calibration"]["timed"] is False
    assert list(result["stage_seconds"]) == ["setup", "calibration", "calibration_scalar", "barrier_costs",
                                             "variants"]


def test_one_call_run_checks_its_choices_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"packs_in_flight must be one of \(2, 4, 8\), got 3"):
        verify.run_gpu_verification(tmp_path / "out", packs_in_flight=3)
    with pytest.raises(ValueError, match=r"barriers must be among \('cg', 'atomic'\), got 'spin'"):
        verify.run_gpu_verification(tmp_path / "out", compare_barriers=("spin",))
    assert not (tmp_path / "out").exists()


def test_a_timed_out_barrier_makes_a_run_wrong_and_shows_in_the_costs() -> None:
    cal = _synthetic_calibration()
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048)
    runs = _timed_runs(4.3, 3.1, 2.9, 3.0)
    runs["planned_atomic"] = verify.RunReport("planned_atomic", 2048, None, 1, 1.0, 1.0, 1e-4, 0,
                                              barrier_timeouts=2)
    assert verify.group_report(group, cal, 5e-3, runs).verdict == "wrong"
    costs = [cal_mod.BarrierCost("atomic", 132, 256, 4096, None, timeouts=3)]
    assert verify.format_barrier_costs(costs) == "barrier atomic, us each: 132 blocks TIMED OUT 3x"
    with pytest.raises(ValueError, match="rounds must be >= 1, got 0"):
        cal_mod.measure_barriers([1], rounds=0)


def test_verify_groups_rejects_an_unknown_barrier() -> None:
    group = verify.GroupSpec("t", (affine("relu"),), 32, 64, 8)
    with pytest.raises(ValueError, match=r"barriers must be among \('cg', 'atomic'\), got 'spin'"):
        verify.verify_groups([group], cache_bytes=1024, compare_barriers=("spin",))
    with pytest.raises(ValueError, match=r"packs_in_flight must be one of \(2, 4, 8\), got 16"):
        verify.verify_groups([group], cache_bytes=1024, packs_in_flight=16)
    with pytest.raises(ValueError, match=r"packs must be among \(2, 4, 8\), got 1"):
        verify.sweep_variants(group, packs=(2, 1))
    with pytest.raises(ValueError, match=r"barriers must be among \('cg', 'atomic'\), got 'grid'"):
        verify.sweep_variants(group, barriers=("grid",))


@needs_device
def test_sweep_runs_every_variant_on_one_set_of_inputs() -> None:
    layers = (rmsnorm(), affine("silu"))
    group = verify.GroupSpec("v", layers, 256, 16, 8)  # 32 packs a row: 1 per lane of a warp
    runs = verify.sweep_variants(group, repeats=1, sample_rows=16, threads_per_block=32)
    assert [(r.barrier, r.packs_in_flight) for r in runs] == [
        (m, p) for p in kernels.PACKS_IN_FLIGHT_CHOICES for m in BARRIER_MODES]
    assert all(r.correct(verify.TOLERANCE["float16"]) for r in runs)
    assert all(r.chunked.mismatches == 0 and r.control.mismatches is None for r in runs)
    assert all(r.chunked.geometry.barrier == r.barrier and r.chunked.geometry.packs_in_flight == r.packs_in_flight
               for r in runs)
    # One control per count of packs, shared by both barriers.
    assert runs[0].control is runs[1].control and runs[0].control is not runs[2].control


def test_variant_table_compares_with_the_same_packs_and_with_the_fastest_control() -> None:
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048)
    moved = 16 << 30

    def run(name: str, rate: float) -> verify.RunReport:
        return verify.RunReport(name, None, None, moved, moved / (rate * 1e12), rate * 1e12, 1e-4, 0)

    slow_control, fast_control = run("c2", 3.0), run("c4", 3.5)
    runs = [verify.VariantRun("cg", 2, run("p", 3.3), slow_control),
            verify.VariantRun("atomic", 4, run("p", 4.9), fast_control)]
    lines = verify.format_variants(group, runs, 5e-3).splitlines()
    assert lines[2].split() == ["cg", "2", "3.30", "3.00", "1.10", "0.94", "1.0e-04", "yes"]
    assert lines[3].split() == ["atomic", "4", "4.90", "3.50", "1.40", "1.40", "1.0e-04", "yes"]
    runs[1].chunked.unwritten = 3
    assert verify.format_variants(group, runs, 5e-3).splitlines()[3].endswith("NO")


def _small_plan(n_layers: int = 6) -> Any:
    import layerwise_fast as lf

    records = [{"name": f"b{i}", "kind": "mlp", "params": 2_000_000, "weight_dtype": "bf16",
                "act_elems_per_token": 4096} for i in range(n_layers)]
    return lf.plan(lf.LayerTable.from_records(records), "h100", batch=1, sequence=512)


def test_distinct_groups_verify_alike_groups_once_and_count_the_rest() -> None:
    a = verify.PlannedGroup("group 0", (rmsnorm(),), 32, 1000, 1.5)
    b = verify.PlannedGroup("group 1", (rmsnorm(), affine("silu")), 32, 1000, 1.5)
    groups = [a, b, verify.PlannedGroup("group 2", b.layers, 32, 1000, 1.5),
              verify.PlannedGroup("group 3", b.layers, 32, 2000, 1.5)]
    picked, left = verify.distinct_groups(groups, 2)
    assert [g.name for g in picked] == ["group 0", "group 1 (+1 alike)"] and left == 1
    assert picked[1].layers == b.layers and picked[1].working_set_bytes == 1000
    assert verify.distinct_groups(groups, 9)[1] == 0
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        verify.distinct_groups(groups, 0)


@needs_device
def test_verify_plan_runs_each_distinct_group_against_the_plans_prediction() -> None:
    plan = _small_plan()
    reports = verify.verify_plan(plan, hidden=32, max_layers=2, max_groups=2, cache_bytes=1024,
                                 total_bytes=4096, repeats=1, threads_per_block=TPB)
    assert 1 <= len(reports) <= 2
    for report in reports:
        assert report.correct, {k: (r.relative_error, r.unwritten) for k, r in report.runs.items()}
        assert report.prediction_source == "plan"
        assert report.predicted_speedup == float(plan.performance.speedup[0])


@pytest.mark.skipif(not SIMULATED, reason="on a GPU the one-call run is bench/gpu_verify.py's job")
def test_one_call_run_verifies_the_groups_of_a_plan_file(tmp_path: Path, capsys) -> None:
    plan_path = tmp_path / "plan.json"
    _small_plan().to_json(plan_path)
    assert verify.main(["--out", str(tmp_path / "out"), "--plan", str(plan_path), "--plan-groups", "1"]) == 0
    printed = capsys.readouterr().out
    assert "verifying 1 distinct" in printed
    result = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert [g["group"]["name"].split(" (")[0] for g in result["groups"]] == ["S", "group 0"]
    assert result["groups"][1]["prediction_source"] == "plan"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plan-groups", "0"], "--plan-groups must be >= 1, got 0"),
        (["--plan", "missing.json"], "missing.json"),
    ],
)
def test_one_call_run_rejects_a_bad_plan_option(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert verify.main(["--out", str(tmp_path), *[str(tmp_path / a) if a.endswith(".json") else a for a in argv]]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "verification.json").exists()


def test_a_bad_plan_is_found_before_the_gpu_is_asked_for(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(verify, "is_simulated", lambda: False)
    monkeypatch.setattr(verify.cuda, "is_available", lambda: False)
    assert verify.main(["--out", str(tmp_path), "--plan", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "no CUDA device" not in err
    assert verify.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err


def test_an_out_path_that_is_no_folder_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    (tmp_path / "file.txt").write_text("x")
    assert verify.main(["--out", str(tmp_path / "file.txt")]) == 2
    assert "is a file; name a folder" in capsys.readouterr().err
    assert verify.main(["--out", str(tmp_path / "file.txt" / "sub")]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    assert (tmp_path / "file.txt").read_text() == "x"


def test_bench_script_help_describes_the_run() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_verify.py"), "--help"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
    )
    assert completed.returncode == 0
    assert "--out DIR" in completed.stdout and "--quick" in completed.stdout
    assert "--barrier {cg,atomic}" in completed.stdout and "--packs-in-flight {2,4,8}" in completed.stdout


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("import sys; sys.modules['numba'] = None", 'layerwise_fast.cuda needs numba: install the GPU extra with: pip install "layerwise_fast[cuda]"'),
        ("import numpy; numpy.__version__ = '2.5.2'", "layerwise_fast.cuda needs numpy < 2.5, found numpy 2.5.2"),
    ],
)
def test_import_fails_with_the_install_hint(setup: str, message: str) -> None:
    code = f"{setup}\ntry:\n    import layerwise_fast.cuda\nexcept ImportError as e:\n    print(e)\n"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120, cwd=ROOT)
    assert message in completed.stdout
    assert "numba-cuda needs numpy < 2.5 for now" in completed.stdout


# --------------------------------------------------------------------------- GPU only


@needs_gpu
def test_gpu_calibration_finds_a_knee_near_the_l2() -> None:
    l2 = kernels.device_info().l2_bytes
    assert l2 is not None
    cal = cal_mod.calibrate(cal_mod.calibration_sizes(l2, points_per_octave=2), repeats=3,
                            bytes_per_launch=1 << 30)
    assert cal.summary is not None
    assert cal.summary.plateau_bytes_per_s > 1.1 * cal.summary.hbm_bytes_per_s
    assert l2 / 8 <= cal.summary.knee_bytes <= 2 * l2


@needs_gpu
@pytest.mark.parametrize("barrier", BARRIER_MODES)
def test_gpu_runs_are_timed_and_correct(barrier: str) -> None:
    group = verify.GroupSpec("g", CHAIN, 1024, 1 << 16, 1 << 10, dtype="float16")
    (report,) = verify.verify_groups([group], repeats=3, barrier=barrier, compare_barriers=BARRIER_MODES)
    assert report.correct
    assert all(run.seconds is not None and run.seconds > 0 for run in report.runs.values())
    assert report.runs["planned"].geometry.blocks > 1


@needs_gpu
def test_gpu_barriers_are_timed_at_each_grid_size() -> None:
    costs = cal_mod.measure_barriers(rounds=1024, repeats=3)
    multiprocessors = kernels.device_info().multiprocessors
    assert [c.barrier for c in costs] == [m for m in BARRIER_MODES for _ in range(len(costs) // 2)]
    assert {c.blocks for c in costs} >= {multiprocessors}
    assert all(c.seconds_per_barrier is not None and c.seconds_per_barrier > 0 for c in costs)


@needs_gpu
@pytest.mark.skipif(HAVE_GPU and not cuda.is_bfloat16_supported(), reason="the device has no bfloat16")
def test_gpu_bfloat16_matches_the_reference() -> None:
    pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes")
    group = verify.GroupSpec("bf16", CHAIN, 256, 4096, 256, dtype="bfloat16")
    (report,) = verify.verify_groups([group], repeats=1)
    assert report.correct, {k: (r.relative_error, r.unwritten) for k, r in report.runs.items()}


def test_plan_groups_carry_each_groups_working_set_and_prediction() -> None:
    import layerwise_fast as lf
    from layerwise_fast.cuda.verify import groups_from_plan, plan_groups

    records = [{"name": f"b{i}", "kind": "mlp", "params": 2_000_000, "weight_dtype": "bf16",
                "act_elems_per_token": 4096} for i in range(12)]
    plan = lf.plan(lf.LayerTable.from_records(records), "h100", batch=1, sequence=512)
    groups = plan_groups(plan, hidden=1024, max_layers=2)
    assert len(groups) == plan.partition.k
    for g, group in enumerate(groups):
        assert group.working_set_bytes == int(plan.partition.group_costs[g])
        assert group.predicted_speedup == float(plan.performance.speedup[g])
        assert group.hidden == 1024 and 1 <= len(group.layers) <= 2
    specs = groups_from_plan(groups, cache_bytes=50 * 2**20)
    assert [s.predicted_speedup for s in specs] == [g.predicted_speedup for g in groups]


def test_an_error_mid_run_exits_3_not_as_a_failed_criterion(tmp_path: Path, capsys, monkeypatch) -> None:
    def broken_calibration(*args: Any, **kwargs: Any) -> cal_mod.Calibration:
        raise RuntimeError("calibration stream is wrong at 3 of 1024 elements")

    monkeypatch.setattr(verify, "calibrate", broken_calibration)
    assert verify.main(["--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert (f"gpu_verify: the run stopped on an error: RuntimeError: calibration stream is wrong at 3 of "
            f"1024 elements; {str(tmp_path / 'verification.json')!r} keeps what was measured before it") in err


def test_a_timed_curve_without_a_knee_is_kept_reported_and_judged_fail(tmp_path: Path) -> None:
    cal = dataclasses.replace(_synthetic_calibration(), summary=None,
                              analysis_error="the curve shows no cache step: ...")
    described = cal.describe()
    assert described["timed"] is True and described["error"] == "the curve shows no cache step: ..."
    assert described["bytes_per_s"] == [t * 1e12 for t in CURVE_TBPS]
    with pytest.raises(ValueError, match=r"the curve shows no cache step: \.\.\.: no calibration file to write"):
        cal.save(tmp_path / "c.json")
    group = verify.GroupSpec("A", (affine("relu"),), 4096, 131072, 2048, predicted_speedup=1.48)
    report = verify.group_report(group, cal, 5e-3, _timed_runs(4.3, 3.1, 2.9, 3.0))
    assert {c.name for c in report.criteria if c.passed is None} == {
        "working_set_vs_knee", "planned_vs_hbm", "4x_cache_vs_hbm"}
    assert verify._overall_verdict([report], True, cal) == "fail"
    lines = verify.format_table(cal, [report]).splitlines()
    assert lines[0] == "calibration (? stream): the curve shows no cache step: ..."
    assert lines[-1] == "overall: fail"
    assert verify.plot_bandwidth(cal, [report], tmp_path / "bw.png").endswith("bw.png not written")


def test_check_looks_at_the_options_and_the_plan_and_runs_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    assert verify.main(["--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("gpu_verify: the options are good, 1 group to verify; device: ")
    assert not out.exists()
    bad = tmp_path / "plan.json"
    bad.write_text("{}")
    assert verify.main(["--out", str(out), "--plan", str(bad), "--check"]) == 2
    assert "gpu_verify: error:" in capsys.readouterr().err

    def unrunnable(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("group 3: 0 tokens")

    monkeypatch.setattr(verify, "groups_from_plan", unrunnable)  # found before any GPU work
    assert verify.main(["--out", str(out), "--check"]) == 2
    assert capsys.readouterr().err == "gpu_verify: error: group 3: 0 tokens\n"


def test_calibrate_keeps_a_timed_curve_without_a_knee(monkeypatch) -> None:
    # Every launch "takes" 1 ms and moves the same bytes: a flat curve, no cache step.
    monkeypatch.setattr(cal_mod, "is_simulated", lambda: False)
    def timed(launch: Any, repeats: int) -> list[float]:
        for _ in range(repeats + 1):  # as time_launches does: one to fill the queue, then each timed
            launch()
        return [1e-3] * repeats

    monkeypatch.setattr(cal_mod, "time_launches", timed)
    cal = cal_mod.calibrate([1024, 2048, 4096], l2_bytes=1024, repeats=2, bytes_per_launch=8192,
                            threads_per_block=32, warmup_seconds=0.0)
    assert cal.timed and cal.summary is None
    assert cal.rates_bytes_per_s == (8.192e6, 8.192e6, 8.192e6)
    assert cal.analysis_error is not None and cal.analysis_error.startswith("the curve shows no cache step")
