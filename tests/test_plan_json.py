"""Plan JSON: round trips (Hypothesis) and every way a document or file can be wrong."""

from __future__ import annotations

import copy
import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import layerwise_fast as lf
from layerwise_fast.deployment import PLAN_VERSION

TOY = lf.Hardware.custom("toy", l2=1000, hbm_bytes_per_s=100.0, link_bytes_per_s=10.0,
                         flops_per_s=1000.0, effective_fraction=1, cache_bytes_per_s=200.0)
SMALL = lf.Hardware.custom("small", l2=700, hbm_bytes_per_s=50.0, link_bytes_per_s=5.0,
                           flops_per_s=500.0, effective_fraction="9/10")

rows = st.tuples(st.integers(0, 1200), st.integers(0, 12), st.integers(0, 150),
                 st.integers(0, 50))
devices = st.one_of(st.none(), st.integers(1, 5),
                    st.lists(st.sampled_from([TOY, SMALL]), min_size=1, max_size=4))


def table(layers: list[tuple[int, int, int, int]]) -> lf.LayerTable:
    return lf.LayerTable.from_records(
        {"name": f"layer {i}", "kind": "decoder", "params": p, "weight_dtype": "bf16",
         "act_elems_per_token": a, "buffer_bytes": b, "flops_per_token": f}
        for i, (p, a, b, f) in enumerate(layers))


@given(layers=st.lists(rows, min_size=1, max_size=10), device=devices,
       share=st.booleans(), batch=st.integers(1, 3), sequence=st.integers(1, 120),
       granularity=st.integers(1, 16), micro=st.integers(1, 4),
       policy=st.sampled_from(["error", "tile", "quantize"]),
       cost=st.sampled_from(["sum", "peak"]),
       algorithm=st.sampled_from(["balanced", "greedy", "dp", "stage_time"]),
       cut=st.one_of(st.none(), st.integers(0, 8)), chunk=st.one_of(st.none(), st.integers(1, 120)),
       ratio=st.sampled_from(["1", "1/2", "3/2", f"{2**64 + 1}/{2**65 + 3}",
                              Fraction(10**69 - 1, 10**40)]))  # terms beyond int64
def test_json_round_trip(layers: list[tuple[int, int, int, int]], device: Any, share: bool,
                         batch: int, sequence: int, granularity: int, micro: int, policy: str,
                         cost: str, algorithm: str, cut: int | None, chunk: int | None,
                         ratio: str | Fraction) -> None:
    if isinstance(device, list) and algorithm == "stage_time":
        algorithm = "dp"  # the cut-aware mode times groups on one kind of device
    try:
        plan = lf.plan(table(layers), TOY, batch=batch, sequence=sequence,
                       granularity=granularity, micro_batches=micro, devices=device,
                       share_devices=share and isinstance(device, int),
                       on_oversize=policy, cost=cost, algorithm=algorithm,  # type: ignore[arg-type]
                       cut_elems_per_token=cut, working_set_ratio=ratio,
                       chunk=None if chunk is None else min(chunk, sequence))
    except lf.InfeasibleError:
        return
    text = plan.dumps()
    assert text == json.dumps(plan.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
    again = lf.Plan.from_dict(json.loads(text))
    assert again == plan
    assert again.dumps() == text
    assert again.summary() == plan.summary()
    assert (again.performance.speedup == plan.performance.speedup).all()
    assert again.timeline == plan.timeline


def test_file_round_trip(tmp_path: Path) -> None:
    plan = lf.plan(Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples"
                   / "configs" / "gpt2.json", on_oversize="tile", devices=4,
                   share_devices=True, micro_batches=3, sequence=1024)
    path = tmp_path / "plan.json"
    plan.to_json(path)
    assert lf.Plan.from_json(path) == plan
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == "layerwise_fast.plan"


def _base() -> dict[str, Any]:
    tiled = lf.LayerTable.from_records(
        {"name": f"l{i}", "kind": "decoder", "params": p, "weight_dtype": "bf16",
         "act_elems_per_token": 10, "buffer_bytes": 0, "flops_per_token": 5}
        for i, p in enumerate([100, 900, 100, 100]))
    plan = lf.plan(tiled, TOY, sequence=40, granularity=4, devices=2, share_devices=True,
                   on_oversize="tile", cut_elems_per_token=2)
    assert len(plan.treated) == 1 and plan.device_count == 2
    return json.loads(plan.dumps())


BASE = _base()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(document: dict[str, Any]) -> None:
        target = document
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    *head, last = path.split(".")

    def change(document: dict[str, Any]) -> None:
        target = document
        for key in head:
            target = target[key]
        del target[last]
    return change


def _shift(path: str, index: int, delta: int) -> Callable[[dict[str, Any]], None]:
    section, field = path.split(".")

    def change(document: dict[str, Any]) -> None:
        document[section][field][index] += delta
    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        for one in changes:
            one(document)
    return change


def _second_profile(document: dict[str, Any]) -> None:
    profiles = document["devices"]["hardware"]
    profiles.append(copy.deepcopy(profiles[0]))


MALFORMED = [
    (_drop("groups"), "missing field 'groups'"),
    (_set("extra", 1), "unknown field 'extra'"),
    (_set("settings.colour", "red"), "unknown field 'settings.colour'"),
    (_drop("settings.batch"), "missing field 'settings.batch'"),
    (_set("settings.batch", "1"), "field 'settings.batch' must be an integer, got string '1'"),
    (_set("settings.batch", True), "field 'settings.batch' must be an integer, got boolean True"),
    (_set("settings.batch", 0), "field 'settings.batch' must be between 1 and"),
    (_set("settings.cost", "max"), "field 'settings.cost' must be one of sum, peak"),
    (_set("settings.working_set_ratio", "-1/2"), "must be a positive fraction"),
    (_set("settings.working_set_ratio", "0/3"), "must be a positive fraction"),
    (_set("settings.working_set_ratio", "1" + "0" * 71),
     "field 'settings.working_set_ratio' has a term of more than 71 digits"),
    (_set("settings.working_set_ratio", "1" + "0" * 31),
     "field 'settings.working_set_ratio' must lie between 1e-40 and 1e30, got '1000"),
    (_set("settings.working_set_ratio", f"{10**41 + 1}/{3 * 10**41}"),
     "field 'settings.working_set_ratio' has a denominator above 10**40: '1000"),
    (_set("settings.chunks", 3), "field 'settings.chunks' must be ceil(sequence / chunk)"),
    (_set("settings.chunk", 41), "field 'settings.chunk' (41) exceeds settings.sequence (40)"),
    (_set("schema", "layerwise_fast.layers"), "field 'schema' must be 'layerwise_fast.plan'"),
    (_set("version", PLAN_VERSION + 1), f"unsupported version {PLAN_VERSION + 1}"),
    (_set("version", "1"), "unsupported version '1'"),
    (_set("layers.weights", {"0": 1}), "field 'layers.weights' must be an array, got object"),
    (_set("layers.weights.0", 1.5), "field 'layers.weights' must hold integers, got number 1.5"),
    (_set("layers.weights.0", None), "must hold integers, got null None"),
    (_set("layers.buffers.0", -1), "field 'layers.buffers' must hold integers >= 0, got -1"),
    (_set("layers.weights.0", 2**70), "field 'layers.weights' holds an integer outside the int64"),
    (_set("layers.names.1", 7), "field 'layers.names' must hold strings, got integer 7"),
    (_shift("layers.activations", 0, 1), "field 'layers.activations' [0] is 801 but batch x chunk x act_bytes_per_token x working_set_ratio gives 800"),
    (_set("layers.flops_per_token", [5, 5]), "field 'layers.flops_per_token' must have 4 entries"),
    (_shift("groups.costs", 0, -1), "field 'groups.costs' [0] is"),
    (_set("groups.boundaries", [0, 3, 2, 4]), "must rise strictly from 0 to the layer count 4"),
    (_set("groups.device", [0, 1, 0, 1]), "must map the groups to devices 0..1 in order"),
    (_set("devices.capacity", [10, 1000]), "exceeds the capacity 10 of device 0"),
    (_set("devices.kind", [0, 3]), "field 'devices.kind' must index devices.hardware"),
    (_set("settings.devices_requested", 1), "lists 2 devices, more than settings.devices_"),
    (_set("devices.hardware.0.l2_bytes", -5), "field 'devices.hardware[0]': l2_bytes must be"),
    (_shift("groups.planned_bytes", 0, 1), "field 'groups.planned_bytes' [0] is"),
    (_shift("cuts.bytes_per_chunk", 0, 2), "field 'cuts.bytes_per_chunk' [0] is"),
    (_set("totals.total_s", 1.0), "field 'totals.total_s' is 1.0 but the performance model"),
    (_set("totals.fill_s", float("nan")), "field 'totals.fill_s' must be a finite number"),
    (_set("totals.bottleneck", "device 9"), "field 'totals.bottleneck' is 'device 9'"),
    (_shift("treated.tiles", 0, 1), "field 'treated.tiles' [0] is"),
    (_set("treated.kind", ["int8"]), "field 'treated.kind' must hold one of tile, got 'int8'"),
    (_set("treated.layers", [9]), "field 'treated.layers' must rise strictly within 0..3"),
    (_set("notes", "all good"), "field 'notes' must be an array, got string"),
    (_set("layers.names.2", ""), "field 'layers.names' must not be empty, got '' at [2]"),
    (_shift("treated.original_bytes", 0, 1), "field 'treated.original_bytes' [0] is"),
    (_set("layers.out_bytes_per_token.0", 2**62), "overflow the performance model: group 0: boundary bytes per token 9223372036854775808 x 40 exceed"),
    (_both(_set("settings.chunk", 38), _set("settings.chunks", 2)),
     "field 'settings.chunk' (38) was searched, so it is a multiple of settings.granularity (4)"),
    (_set("settings.share_devices", False),
     "field 'groups.device' must give each of the 4 groups a device of its own"),
    (_set("settings.devices_requested", 3),
     "field 'devices.kind' lists 2 devices, but 4 groups sharing 3 devices use 3"),
    (_set("settings.devices_requested", None),
     "field 'settings.share_devices' applies to a devices_requested count"),
    (_set("settings.mixed", True), "field 'settings.mixed' (a list of devices) goes with"),
    (_both(_set("settings.mixed", True), _set("settings.share_devices", False)),
     "field 'devices.kind' must be 0, 1, 2, ...: a list of devices"),
    (_second_profile, "field 'devices.hardware' must hold one profile, used by every device"),
    (_set("layers.names.1", "l\ud800"), "field 'layers.names' [1] 'l\\ud800' cannot be written as UTF-8"),
    (_set("notes", ["\udc80"]), "field 'notes' [0] '\\udc80' cannot be written as UTF-8"),
    (_set("settings.model", "\ud800"), "field 'settings.model' '\\ud800' cannot be written"),
    (_set("devices.hardware.0.name", "\ud800"), "field 'devices.hardware[0]': name '\\ud800' cannot"),
    (_set("devices.hardware.0.flops_per_s", 10**400), "field 'devices.hardware[0]': flops_per_s must be a finite number of at least 1"),
]


@pytest.mark.parametrize("change, message", MALFORMED)
def test_malformed_documents_fail_clearly(change: Callable[[dict[str, Any]], None],
                                          message: str) -> None:
    document = copy.deepcopy(BASE)
    change(document)
    with pytest.raises(lf.PlanFormatError) as err:
        lf.Plan.from_dict(document)
    assert str(err.value).startswith("plan: ")
    assert message in str(err.value)


def test_the_base_document_itself_loads() -> None:
    assert lf.Plan.from_dict(copy.deepcopy(BASE)).dumps() == json.dumps(
        BASE, ensure_ascii=False, separators=(",", ":")) + "\n"


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(lf.PlanFormatError, match="plan: the top level must be a JSON object, "
                                                 "got array"):
        lf.Plan.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("content, message", [
    (json.dumps(BASE)[:-40].encode(), "ends early (truncated?)"),
    (b'{"schema": "layerwise_fast.plan", "version": 1, \xff}', "is not UTF-8 text (byte 0xff"),
    (b"", "is empty"),
    (b"[1, 2]", "the top level must be a JSON object"),
    (b'{"schema": NaN}', "is not valid JSON: non-standard constant NaN"),
])
def test_malformed_files_fail_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(lf.PlanFormatError) as err:
        lf.Plan.from_json(path)
    assert str(err.value).startswith(f"plan file {str(path)!r}")
    assert message in str(err.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(lf.PlanFormatError, match="does not exist"):
        lf.Plan.from_json(tmp_path / "absent.json")
    with pytest.raises(lf.PlanFormatError, match="is a directory, not a file"):
        lf.Plan.from_json(tmp_path)


def test_a_quantized_layer_cannot_have_grown() -> None:
    rows = [{"name": f"l{i}", "kind": "decoder", "params": p, "weight_dtype": "bf16",
             "act_elems_per_token": 1, "buffer_bytes": 0} for i, p in enumerate([600, 1200, 300])]
    plan = lf.plan(lf.LayerTable.from_records(rows), TOY, sequence=8, granularity=1,
                   on_oversize="quantize")
    document = plan.to_dict()
    assert lf.Plan.from_dict(copy.deepcopy(document)) == plan
    document["treated"]["original_bytes"][1] = 10  # below its 620 quantized bytes
    with pytest.raises(lf.PlanFormatError, match=r"'treated.original_bytes' \[1\] is 10, less than "
                                                 r"the 620 bytes it was quantized to"):
        lf.Plan.from_dict(document)



def _writable_arrays(plan: lf.Plan) -> list[str]:
    """The plan's numpy arrays, and those of its parts, that can be written to."""
    parts: dict[str, Any] = {name: getattr(plan, name) for name in type(plan).__slots__}
    parts["partition.boundaries"] = plan.partition.boundaries
    parts["partition.group_costs"] = plan.partition.group_costs
    for name, part in list(parts.items()):
        if dataclasses.is_dataclass(part):
            parts.update((f"{name}.{field.name}", getattr(part, field.name))
                         for field in dataclasses.fields(part))
    return [name for name, value in parts.items()
            if isinstance(value, np.ndarray) and value.flags.writeable]


def test_plan_arrays_are_read_only(tmp_path: Path) -> None:
    built = lf.plan(table([(100, 1, 10, 3)] * 6), TOY, sequence=40, devices=3,
                    share_devices=True)
    built.to_json(tmp_path / "plan.json")
    for plan in (built, lf.Plan.from_dict(copy.deepcopy(BASE)),
                 lf.Plan.from_json(tmp_path / "plan.json")):
        assert _writable_arrays(plan) == []


def test_from_dict_copies_the_callers_arrays() -> None:
    document = copy.deepcopy(BASE)
    base = np.array([7, *BASE["groups"]["boundaries"]], dtype=np.int64)
    document["groups"]["boundaries"] = base[1:]  # a view into a larger array
    out_per_token = np.array(BASE["layers"]["out_bytes_per_token"], dtype=np.uint32)
    document["layers"]["out_bytes_per_token"] = out_per_token
    plan = lf.Plan.from_dict(document)
    assert plan == lf.Plan.from_dict(copy.deepcopy(BASE))
    assert base.flags.writeable and out_per_token.flags.writeable  # not locked
    base[2] += 1
    out_per_token[:] = 10**6
    assert plan.partition.boundaries.tolist() == BASE["groups"]["boundaries"]
    assert plan.traffic.out_per_token.tolist() == BASE["layers"]["out_bytes_per_token"]


def test_from_dict_reads_an_array_of_names() -> None:
    document = copy.deepcopy(BASE)
    document["layers"]["names"] = np.array(BASE["layers"]["names"])  # dtype <U2
    assert lf.Plan.from_dict(document) == lf.Plan.from_dict(copy.deepcopy(BASE))


@pytest.mark.parametrize("array, message", [
    (np.array([1.5, 2.5, 3.5, 4.5]), "must hold integers, got an array of float64"),
    (np.array([[1, 2], [3, 4]]), r"must be a 1-D array, got shape \(2, 2\)"),
    (np.array([True, False, True, False]), "must hold integers, got an array of bool"),
    (np.array([2**64 - 1, 0, 0, 0], dtype=np.uint64), "holds an integer outside the int64 range"),
    (np.ma.masked_array([5, 5, 5, 5], mask=[1, 0, 0, 0]),
     "must be a plain array, got a masked array"),
])
def test_from_dict_refuses_arrays_that_are_not_integer_columns(array: np.ndarray,
                                                               message: str) -> None:
    document = copy.deepcopy(BASE)
    document["layers"]["flops_per_token"] = array
    with pytest.raises(lf.PlanFormatError,
                       match=f"^plan: field 'layers.flops_per_token' {message}"):
        lf.Plan.from_dict(document)
