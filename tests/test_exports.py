"""Exports of a partition: accelerate device maps, torch pipelining split specs, DeepSpeed
parts. The format checks run without torch; each export is also loaded by its consumer
(accelerate, torch.distributed.pipelining, DeepSpeed) where that is installed."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast.exports import deepspeed_parts, device_map, pipeline_split_spec

NAMES = ["embed", "layers.0", "layers.1", "layers.2", "layers.3", "norm", "head"]
BOUNDARIES = [0, 3, 5, 7]


# -- device_map --------------------------------------------------------------------------


def test_device_map_puts_each_group_on_its_device() -> None:
    assert device_map(NAMES, BOUNDARIES) == {
        "embed": 0, "layers.0": 0, "layers.1": 0, "layers.2": 1, "layers.3": 1,
        "norm": 2, "head": 2}


def test_device_map_accepts_a_partition_and_repeated_or_offload_devices() -> None:
    partition = lf.greedy([30, 10, 25, 5, 40], capacity=50)  # boundaries [0, 2, 4, 5]
    names = ["a", "b", "c", "d", "e"]
    assert device_map(names, partition, [1, 1, "cpu"]) == {
        "a": 1, "b": 1, "c": 1, "d": 1, "e": "cpu"}
    assert device_map(names, partition, 3, offload={"d": "disk"}) == {
        "a": 0, "b": 0, "c": 1, "d": "disk", "e": 2}


def test_device_map_keeps_tied_layers_on_the_owner_device() -> None:
    result = device_map(NAMES, BOUNDARIES, tied=[("embed", "head")])
    assert result["embed"] == result["head"] == 0
    assert result["norm"] == 2


def test_device_map_joins_tied_sets_that_share_a_layer() -> None:
    names = ["l0", "l1", "l2", "head"]  # head reads weights of l0 and of l2
    assert device_map(names, [0, 2, 4], tied=[("l0", "head"), ("l2", "head")]) == {
        "l0": 0, "l1": 0, "l2": 0, "head": 0}
    chained = device_map(["a", "b", "c", "d"], [0, 1, 2, 3, 4],
                         tied=[("b", "d"), ("c", "a"), ("a", "d")])
    assert set(chained.values()) == {1}  # one set, placed by the earliest set's owner


def test_offload_does_not_part_tied_layers() -> None:
    names, tied = ["embed", "mid", "head"], [("embed", "head")]
    for offload in ({"head": "cpu"}, {"embed": "disk"}, {"embed": "cpu", "head": "disk"}):
        with pytest.raises(ValueError, match=r"shares tied weights with it.*accelerate keeps "
                                             r"tied modules on one device; offload all of "
                                             r"\['embed', 'head'\] to one place"):
            device_map(names, [0, 1, 3], offload=offload, tied=tied)
    assert device_map(names, [0, 1, 3], offload={"embed": "cpu", "head": "cpu"}, tied=tied) == {
        "embed": "cpu", "mid": 1, "head": "cpu"}
    assert device_map(names, [0, 1, 3], offload={"mid": "disk"}, tied=tied) == {
        "embed": 0, "mid": "disk", "head": 0}


def test_a_name_inside_another_is_found_past_names_that_sort_between() -> None:
    with pytest.raises(ValueError, match="holds both 'enc' and 'enc.0', which is inside it"):
        device_map(["enc", "enc-x", "enc.0"], [0, 1, 3])


def test_device_map_expands_layers_with_several_keys() -> None:
    names = [("embed", "cls_token"), "block", "head"]
    assert device_map(names, [0, 1, 3]) == {"embed": 0, "cls_token": 0, "block": 1, "head": 1}


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (4, "a device map for 4 devices, but the plan has 3 groups: plan for 4 groups"),
        ([0, 1, 2, 3], "a device map for 4 devices, but the plan has 3 groups"),
        (2, "a device map for 2 devices, but the plan has 3 groups: give one device per "
            "group (3; a device may repeat)"),
        ([0, 1, "gpu"], "devices[2] = 'gpu' is not a device: use a GPU index"),
        ([0, -1, 2], "devices[1] = -1 is not a GPU index"),
    ],
)
def test_device_map_refuses_device_counts_and_names_that_do_not_fit(
        devices: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        device_map(NAMES, BOUNDARIES, devices)


@pytest.mark.parametrize(
    ("names", "boundaries", "error", "message"),
    [
        (NAMES, [0, 3, 6], ValueError, "the partition covers 6 layers but names has 7"),
        (NAMES, [1, 3, 7], ValueError, "boundaries must start at 0, got 1"),
        (NAMES, [0, 3, 3, 7], ValueError, "boundaries must increase strictly: group 1"),
        (NAMES, [7], ValueError, "boundaries must hold at least 2 indices"),
        (NAMES, [0, 2.5, 7], TypeError, "boundaries[1] must be an int, got float 2.5"),
        (NAMES, "0,7", TypeError, "partition must be a Partition or its boundaries"),
        ([], [0, 1], ValueError, "names is empty"),
        ("layers", [0, 1], TypeError, "names must be a sequence of module names"),
        (["a", "a"], [0, 2], ValueError, "names holds 'a' twice"),
        (["h", "h.3"], [0, 2], ValueError, "names holds both 'h' and 'h.3', which is inside"),
        (["a", ""], [0, 2], ValueError, "names[1] = '' is not a module path"),
        (["a", 3], [0, 2], TypeError, "names[1] must be a module name or a non-empty tuple"),
    ],
)
def test_exports_refuse_malformed_names_and_boundaries(
        names: object, boundaries: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match="^" + re.escape(message)):
        device_map(names, boundaries)


def test_offload_keeps_every_key_of_tied_layers_together() -> None:
    names = [("a", "x"), "b", "c", "d"]  # x: a second key of layer a, perhaps the tied tensor
    with pytest.raises(ValueError, match=r"offload sends 'x' to 'cpu' but 'a', which shares "
                                         r"tied weights with it, to 0"):
        device_map(names, [0, 1, 2, 3, 4], offload={"x": "cpu"}, tied=[("a", "d")])
    together = {"a": "cpu", "x": "cpu", "d": "cpu"}
    assert device_map(names, [0, 1, 2, 3, 4], offload=together, tied=[("a", "d")]) == {
        "a": "cpu", "x": "cpu", "b": 1, "c": 2, "d": "cpu"}


def test_devices_may_be_an_array_and_a_count_below_one_is_named() -> None:
    assert device_map(NAMES, BOUNDARIES, np.array([0, 0, 1])) == device_map(
        NAMES, BOUNDARIES, [0, 0, 1])
    with pytest.raises(ValueError, match=r"^devices must be a count of at least 1 or one "
                                         r"device per group, got -2$"):
        device_map(NAMES, BOUNDARIES, -2)


def test_device_map_refuses_unknown_offload_and_tied_names() -> None:
    with pytest.raises(ValueError, match="^offload names 'lm_head', which is not a key"):
        device_map(NAMES, BOUNDARIES, offload={"lm_head": "cpu"})
    with pytest.raises(ValueError, match=r"^offload\['head'\] = 0: offloaded modules go to"):
        device_map(NAMES, BOUNDARIES, offload={"head": 0})
    with pytest.raises(ValueError, match=r"^tied\[0\] names 'lm_head', which is not a layer"):
        device_map(NAMES, BOUNDARIES, tied=[("embed", "lm_head")])
    with pytest.raises(TypeError, match=r"^tied\[1\] must hold layer names \(str\), got "
                                        r"list \['embed'\]$"):
        device_map(NAMES, BOUNDARIES, tied=[("embed", "head"), (["embed"], "head")])


# -- deepspeed_parts ---------------------------------------------------------------------


def test_deepspeed_parts_are_the_boundaries() -> None:
    partition = lf.balanced([4, 1, 1, 4, 2, 2], k=3)
    parts = deepspeed_parts(partition, num_stages=3)
    assert parts == partition.boundaries.tolist()
    assert parts[0] == 0 and parts[-1] == 6 and len(parts) == 4
    assert all(type(cut) is int for cut in parts)
    assert deepspeed_parts(np.array([0, 2, 6])) == [0, 2, 6]


def test_deepspeed_parts_refuse_a_stage_count_other_than_the_groups() -> None:
    with pytest.raises(ValueError, match="^num_stages is 4 but the plan has 3 groups"):
        deepspeed_parts(BOUNDARIES, num_stages=4)


def test_deepspeed_parts_match_deepspeed_partitioning() -> None:
    """DeepSpeed's own balanced partition has the same form, and no smaller bottleneck."""
    ds_utils = pytest.importorskip("deepspeed.runtime.utils",
                                   reason="DeepSpeed is not installed (heavy; not in the "
                                          "test extra)")
    rng = np.random.default_rng(5)
    for _ in range(50):
        sizes = rng.integers(1, 100, size=int(rng.integers(4, 30))).tolist()
        k = int(rng.integers(2, 4))
        ours = deepspeed_parts(lf.balanced(sizes, k=k), num_stages=k)
        theirs = ds_utils.partition_balanced(weights=sizes, num_parts=k)
        assert len(theirs) == len(ours) == k + 1
        assert theirs[0] == ours[0] == 0 and theirs[-1] == ours[-1] == len(sizes)
        assert _bottleneck(sizes, ours) <= _bottleneck(sizes, theirs)


def _bottleneck(sizes: list[int], parts: list[int]) -> int:
    return max(sum(sizes[start:stop]) for start, stop in zip(parts, parts[1:]))


# -- consumers: torch and accelerate -----------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch is an optional extra: "
                                               'pip install "layerwise_fast[torch]"')


def _blocks(torch, count: int = 6):
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(count)])


def test_split_spec_marks_the_first_layer_of_each_later_group(torch) -> None:
    from torch.distributed.pipelining import SplitPoint

    spec = pipeline_split_spec(NAMES, BOUNDARIES)
    assert spec == {"layers.2": SplitPoint.BEGINNING, "norm": SplitPoint.BEGINNING}
    assert pipeline_split_spec(NAMES, [0, 7]) == {}
    assert pipeline_split_spec([("embed", "pos"), "block"], [0, 1, 2]) == {
        "block": SplitPoint.BEGINNING}


# torch's own tracing (pipeline -> torch.export) deep-copies pytree specs, which makes
# torch 2.13 warn about its own deprecated LeafSpec; nothing in this package uses it.
@pytest.mark.filterwarnings(
    "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")
def test_split_spec_is_read_by_torch_pipelining(torch) -> None:
    from torch.distributed.pipelining import pipeline

    from layerwise_fast.torch_ingest import describe_torch

    model = _blocks(torch, 6)
    example = torch.randn(4, 8)
    layers = describe_torch(model, example, granularity="block")
    partition = lf.balanced(lf.working_set(layers.table, batch=4, chunk_tokens=1), k=3)
    pipe = pipeline(model, mb_args=(example,), split_spec=layers.pipeline_split_spec(partition))
    assert pipe.num_stages == partition.k == 3
    out = example
    for stage, (start, stop) in enumerate(partition):
        module = pipe.get_stage_module(stage)
        held = {name.split(".")[0] for name, _ in module.named_parameters()}
        assert held == set(layers.names[start:stop])
        out = module(out)
    torch.testing.assert_close(out, _blocks(torch, 6)(example), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def accelerate_utils(torch):
    return pytest.importorskip("accelerate.utils", reason="accelerate is an optional "
                               'extra: pip install "layerwise_fast[torch]"')


class _TiedLM:
    """A token embedding, three blocks and a head tied to the embedding."""

    @staticmethod
    def build(torch):
        nn = torch.nn

        class TiedLM(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = nn.Embedding(50, 8)
                self.blocks = nn.ModuleList(
                    nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(3))
                self.head = nn.Linear(8, 50, bias=False)
                self.head.weight = self.embed.weight

            def forward(self, ids):
                hidden = self.embed(ids)
                for block in self.blocks:
                    hidden = block(hidden)
                return self.head(hidden)

        torch.manual_seed(0)
        return TiedLM()


def test_device_map_passes_accelerate_checks_with_tied_weights(
        torch, accelerate_utils, caplog) -> None:
    model = _TiedLM.build(torch)
    ids = torch.zeros(2, 5, dtype=torch.long)
    from layerwise_fast.torch_ingest import describe_torch

    layers = describe_torch(model, ids, granularity="block")
    assert layers.tied == (("embed", "head"),)
    # Three groups: the head (its whole matrix) alone, the embedding (its rows) and two
    # blocks, the last block; the tied head then follows the embedding to device 0.
    partition = lf.balanced(lf.working_set(layers.table, batch=2, chunk_tokens=5), k=3)
    assert partition.boundaries.tolist() == [0, 3, 4, 5]
    result = layers.device_map(partition)
    assert result["head"] == result["embed"] == 0
    assert set(result.values()) == {0, 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown key would warn
        accelerate_utils.check_device_map(model, result)
    with caplog.at_level(logging.WARNING):
        tied = accelerate_utils.find_tied_parameters(model)
        accelerate_utils.check_tied_parameters_on_same_device(tied, result)
    assert tied and not caplog.records


def test_device_map_check_fails_for_a_map_that_misses_modules(torch, accelerate_utils) -> None:
    model = _blocks(torch, 4)
    partial = device_map(["0", "1", "2"], [0, 2, 3])
    with pytest.raises(ValueError, match="does not give any device for the following "
                                         "parameters: 3.0.weight, 3.0.bias"):
        accelerate_utils.check_device_map(model, partial)


def test_device_map_with_offload_runs_under_accelerate_dispatch(
        torch, accelerate_utils, tmp_path: Path) -> None:
    from accelerate import dispatch_model

    from layerwise_fast.torch_ingest import describe_torch

    example = torch.randn(4, 8)
    expected = _blocks(torch, 6)(example)
    model = _blocks(torch, 6)
    layers = describe_torch(model, example, granularity="block")
    partition = lf.balanced(lf.working_set(layers.table, batch=4, chunk_tokens=1), k=3)
    result = layers.device_map(partition, ["cpu", "disk", "cpu"])
    assert sorted(set(result.values())) == ["cpu", "disk"]
    dispatched = dispatch_model(model, result, main_device="cpu", offload_dir=str(tmp_path))
    torch.testing.assert_close(dispatched(example), expected, rtol=0, atol=1e-6)
