"""End to end: a plan from layerwise_fast runs on torch.distributed.pipelining.

A 12-block model is described on the meta device, partitioned under a capacity that
holds four blocks (three groups), split with the plan's split spec into three stages and
run with a GPipe schedule by three CPU processes (gloo on 127.0.0.1). The last stage's
output must equal the unsplit model's. The processes have a hard deadline and are killed
whatever happens.

This file is also the worker: ``python test_pipeline_e2e.py RANK WORLD PORT PLAN OUT``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason='torch is an optional extra: '
                                           'pip install "layerwise_fast[torch]"')
nn = torch.nn

import layerwise_fast as lf  # noqa: E402
from layerwise_fast.exports import pipeline_split_spec  # noqa: E402
from layerwise_fast.torch_ingest import TorchLayers, describe_torch  # noqa: E402

BLOCKS = 12
WIDTH = 32
BATCH = 8
MICROBATCHES = 4
BLOCK_BYTES = (WIDTH * WIDTH + WIDTH) * 4 + WIDTH * BATCH * 4  # fp32 weights + activations
CAPACITY = 4 * BLOCK_BYTES  # four blocks per group: three groups
DEADLINE_S = 120.0


class Net(nn.Module):
    """Twelve blocks of Linear(32, 32) and ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(BLOCKS))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def build_model() -> Net:
    """The same weights in every process."""
    torch.manual_seed(0)
    return Net()


def example_batch():
    return torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(1))


def make_plan() -> tuple[TorchLayers, lf.Partition]:
    with torch.device("meta"):
        model = Net()
    layers = describe_torch(model, torch.empty(BATCH, WIDTH), granularity="block")
    sizes = lf.working_set(layers.table, batch=BATCH, chunk_tokens=1, act_bytes=4)
    return layers, lf.balanced(sizes, capacity=CAPACITY)


def run_stage(rank: int, world: int, port: int, plan_file: Path, out_file: Path) -> None:
    """One pipeline stage: build the pipe from the plan's split spec and run GPipe."""
    import torch.distributed as dist
    from torch.distributed.pipelining import ScheduleGPipe, pipeline

    torch.set_num_threads(1)
    plan = json.loads(plan_file.read_text())
    spec = pipeline_split_spec(plan["names"], plan["boundaries"])
    model, batch = build_model(), example_batch()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        pipe = pipeline(model, mb_args=(batch.chunk(MICROBATCHES)[0],), split_spec=spec)
        if pipe.num_stages != world:
            raise SystemExit(f"the split spec made {pipe.num_stages} stages, not {world}")
        stage = pipe.build_stage(rank, device=torch.device("cpu"))
        schedule = ScheduleGPipe(stage, n_microbatches=MICROBATCHES)
        if rank == 0:
            schedule.step(batch)
        else:
            output = schedule.step()
            if rank == world - 1:
                torch.save(output, out_file)
    finally:
        dist.destroy_process_group()


def test_the_plan_is_what_the_pipeline_test_expects() -> None:
    layers, partition = make_plan()
    assert layers.names == [f"layers.{index}" for index in range(BLOCKS)]
    assert partition.boundaries.tolist() == [0, 4, 8, 12]
    assert list(pipeline_split_spec(layers.names, partition)) == ["layers.4", "layers.8"]


def test_plan_runs_as_a_gpipe_pipeline_across_processes(tmp_path: Path) -> None:
    layers, partition = make_plan()
    world = partition.k
    plan_file, out_file = tmp_path / "plan.json", tmp_path / "output.pt"
    plan_file.write_text(json.dumps({"names": layers.names,
                                     "boundaries": partition.boundaries.tolist()}))
    logs = [tmp_path / f"rank{rank}.log" for rank in range(world)]
    codes = _run_workers(world, _free_port(), plan_file, out_file, logs)
    if codes != [0] * world:
        pytest.fail(f"pipeline ranks exited with {codes}:\n" + _read_logs(logs))
    expected = build_model()(example_batch())
    output = torch.load(out_file)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_workers(world: int, port: int, plan_file: Path, out_file: Path,
                 logs: list[Path]) -> list[int | None]:
    """Start one process per stage; stop them all at the first failure or the deadline."""
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for rank, log in enumerate(logs):
            with open(log, "wb") as sink:
                processes.append(subprocess.Popen(
                    [sys.executable, __file__, str(rank), str(world), str(port),
                     str(plan_file), str(out_file)],
                    stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env))
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            codes = [process.poll() for process in processes]
            if all(code == 0 for code in codes) or any(code not in (None, 0) for code in codes):
                return codes
            time.sleep(0.1)
        pytest.fail(f"the pipeline did not finish within {DEADLINE_S:.0f} s:\n"
                    + _read_logs(logs))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def _read_logs(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
                     for log in logs if log.exists())


if __name__ == "__main__":
    run_stage(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]),
              Path(sys.argv[5]))
