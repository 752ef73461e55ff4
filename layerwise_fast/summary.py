"""A plan as text: the tables :meth:`layerwise_fast.Plan.summary` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .units import display_width, exact_total, format_bytes, pad, printable

if TYPE_CHECKING:
    from .deployment import Plan

__all__ = ["format_plan", "format_seconds"]


def counted(count: int, noun: str) -> str:
    """``"1 layer"``, ``"2 layers"``, ``"3 micro-batches"``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('ch', 'sh', 's', 'x')) else 's'}"


def format_seconds(seconds: float) -> str:
    """Seconds for people, three significant digits: ``"3.2 ms"``, ``"41 us"``."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns" if seconds else "0 s"


def format_plan(plan: Plan, max_rows: int) -> str:
    """Header, oversize layers, groups, devices and cuts, timeline, totals and notes."""
    parts = [_header(plan), _treated(plan, max_rows), _groups(plan, max_rows),
             _devices(plan, max_rows), _totals(plan)]
    if plan.notes:
        parts.append("Notes:\n" + "\n".join(f"  - {note}" for note in plan.notes))
    return "\n\n".join(part for part in parts if part)


def _capacity_source(plan: Plan) -> str:
    """Whether the devices' capacities are their profiles' effective ones or were given,
    and whether any exceeds its device's L2 cache."""
    devices = [plan.hardware[kind] for kind in plan.device_kind.tolist()]
    capacities = plan.device_capacities.tolist()
    if all(c == d.capacity for c, d in zip(capacities, devices)):
        return "effective"
    above = any(c > d.l2_bytes for c, d in zip(capacities, devices))
    return "as given, above the L2 size" if above else "as given"


def _header(plan: Plan) -> str:
    s = plan.settings
    chunk_how = "as given"
    if s.chunk_searched:
        chunk_how = ("the whole sequence fits" if s.chunk == s.sequence
                     else f"the largest multiple of {s.granularity} that fits")
    caps = sorted(set(plan.device_capacities.tolist()))
    nominal = sorted({d.l2_bytes for d in plan.hardware})
    cap_text = " to ".join(format_bytes(c) for c in (caps[0], caps[-1])[: len(caps)])
    l2_text = " to ".join(format_bytes(c) for c in (nominal[0], nominal[-1])[: len(nominal)])
    names = list(dict.fromkeys(d.name for d in plan.devices))  # the kinds in pipeline order
    bottleneck = plan.partition.bottleneck_group
    fill = plan.partition.bottleneck / int(plan.device_capacities[plan.group_device[bottleneck]])
    devices = (f"of {s.devices_requested} " if s.devices_requested and
               s.devices_requested != plan.device_count else "")
    return "\n".join([
        f"Plan for {printable(s.model)}: {counted(plan.n, 'layer')} in {counted(plan.k, 'group')} on "
        f"{plan.device_count} {devices}device{'s' if plan.device_count != 1 or devices else ''} "
        f"({', '.join(printable(name) for name in names)})",
        f"  batch {s.batch} per micro-batch, {counted(s.micro_batches, 'micro-batch')} · "
        f"sequence {counted(s.sequence, 'token')} · chunk {counted(s.chunk, 'token')} "
        f"({chunk_how}), {counted(s.chunks, 'chunk')} per sequence",
        f"  capacity {cap_text} per device ({_capacity_source(plan)}; L2 {l2_text} nominal) · "
        f"{s.algorithm} · {s.cost} cost · on_oversize {s.on_oversize}",
        f"  largest group: {bottleneck} with {format_bytes(plan.partition.bottleneck)} "
        f"({100 * fill:.1f}% of its device's capacity)",
    ])


def _shown(count: int, max_rows: int) -> list[int]:
    """Row indices to print: all of them, or the first ``ceil(max_rows / 2)`` and the
    last ``floor(max_rows / 2)``, ``max_rows`` in all, with -1 marking the elided middle
    (``max_rows`` >= 2, as :meth:`Plan.summary` checks)."""
    if count <= max_rows:
        return list(range(count))
    tail = max_rows // 2
    return list(range(max_rows - tail)) + [-1] + list(range(count - tail, count))


def _table(head: Sequence[str], rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    """Aligned columns; a row of one cell (the elision marker) is printed as it is."""
    widths = [max([display_width(head[i])] + [display_width(r[i]) for r in rows if len(r) == len(head)])
              for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(head):
            return "  " + cells[0]
        return "  " + "  ".join(pad(c, w, right=r) for c, w, r in zip(cells, widths, right)).rstrip()
    return [line(head)] + [line(r) for r in rows]


def _elided(count: int, max_rows: int, what: str) -> list[str]:
    """``what`` in the singular: "group" gives "... 1 more group ..." or "... 2 more groups ..."."""
    return [f"... {counted(count - max_rows, 'more ' + what)} ..."]


def _treated(plan: Plan, max_rows: int) -> str:
    t = plan.treated
    if not len(t):
        return "Oversize layers: none (every layer fits the capacity untreated)"
    tiled = int((t.kind == "tile").sum())
    head = ["layer", "name", "treatment", "weights", "planned", "tiles", "tile",
            "last tile", "extra HBM / micro-batch"]
    rows = []
    for j in _shown(len(t), max_rows):
        if j < 0:
            rows.append(_elided(len(t), max_rows, "layer"))
            continue
        i = int(t.layers[j])
        rows.append([str(i), printable(str(plan.names[i])), str(t.kind[j]),
                     format_bytes(int(t.original_bytes[j])), format_bytes(int(t.weight_bytes[j])),
                     str(int(t.tiles[j])), format_bytes(int(t.tile_bytes[j])),
                     format_bytes(int(t.last_tile_bytes[j])),
                     format_bytes(int(t.extra_bytes[j]))])
    title = f"Oversize layers ({len(t)}: {tiled} tiled, {len(t) - tiled} quantized)"
    if tiled:
        title += "; tiles stream from HBM once per chunk"
    right = [True, False, False, True, True, True, True, True, True]
    return "\n".join([title] + _table(head, rows, right))


def _groups(plan: Plan, max_rows: int) -> str:
    p, perf = plan.partition, plan.performance
    head = ["group", "device", "layers", "first .. last", "working set", "fill",
            "HBM baseline", "HBM planned", "hit rate", "speedup", "compute"]
    rows = []
    for g in _shown(plan.k, max_rows):
        if g < 0:
            rows.append(_elided(plan.k, max_rows, "group"))
            continue
        start, stop = int(p.boundaries[g]), int(p.boundaries[g + 1])
        device = int(plan.group_device[g])
        cost = int(p.group_costs[g])
        rows.append([
            str(g), str(device), f"{start}-{stop - 1}",
            f"{printable(plan.names[start])} .. {printable(plan.names[stop - 1])}", format_bytes(cost),
            f"{100 * cost / int(plan.device_capacities[device]):.1f}%",
            format_bytes(int(perf.baseline_bytes[g])), format_bytes(int(perf.planned_bytes[g])),
            f"{100 * perf.hit_rate[g]:.1f}%", f"{perf.speedup[g]:.3g}x",
            format_seconds(float(perf.compute_s[g]))])
    right = [True, True, False, False] + [True] * 7
    return "\n".join(["Groups (traffic and times per micro-batch)"]
                     + _table(head, rows, right))


def _devices(plan: Plan, max_rows: int) -> str:
    st, bounds, cuts = plan.stages, plan.device_boundaries, plan.cuts
    kinds = plan.device_kind
    head = ["device", "hardware", "layers", "busy", "sends / chunk", "sends / micro-batch",
            "transfer", "hidden", "stage"]
    rows = []
    for d in _shown(plan.device_count, max_rows):
        if d < 0:
            rows.append(_elided(plan.device_count, max_rows, "device"))
            continue
        cut = d < len(cuts)
        rows.append([
            str(d), printable(plan.hardware[kinds[d]].name), f"{bounds[d]}-{bounds[d + 1] - 1}",
            format_seconds(float(st.compute_s[d])),
            format_bytes(int(cuts.bytes_per_chunk[d])) if cut else "-",
            format_bytes(int(cuts.bytes_per_micro_batch[d])) if cut else "-",
            format_seconds(float(st.transfer_s[d])) if cut else "-",
            f"{100 * st.hidden_s[d] / st.transfer_s[d]:.0f}%"
            if cut and st.transfer_s[d] > 0 else "-",
            format_seconds(float(st.stage_s[d]))])
    right = [True, False, False] + [True] * 6
    title = "Devices and cuts (per micro-batch; a cut sends the last layer's output)"
    return "\n".join([title] + _table(head, rows, right))


def _totals(plan: Plan) -> str:
    tl, perf = plan.timeline, plan.performance
    baseline_s, planned_s = float(perf.baseline_s.sum()), float(perf.planned_s.sum())
    speedup = baseline_s / planned_s if planned_s > 0 else 1.0
    baseline_busy = np.bincount(plan.group_device, weights=perf.baseline_stage_s)
    baseline_stage = float(np.maximum(baseline_busy, plan.stages.transfer_s).max())
    planned_stage = float(plan.stages.stage_s.max())
    return "\n".join([
        f"Timeline for {counted(tl.micro_batches, 'micro-batch')} of "
        f"{counted(tl.chunks, 'chunk')}: fill "
        f"{format_seconds(tl.fill_s)} · steady {format_seconds(tl.steady_s)} · drain "
        f"{format_seconds(tl.drain_s)} · total {format_seconds(tl.total_s)} "
        f"(bottleneck: {tl.bottleneck})",
        f"Memory model, all groups, per micro-batch: HBM "
        f"{format_bytes(exact_total(perf.baseline_bytes))} layer by layer -> "
        f"{format_bytes(exact_total(perf.planned_bytes))} planned; memory time "
        f"{format_seconds(baseline_s)} -> {format_seconds(planned_s)}: {speedup:.3g}x",
        f"Slowest stage (max of memory time, compute time and outgoing transfer): "
        f"{format_seconds(baseline_stage)} layer by layer -> {format_seconds(planned_stage)}"
        f" planned",
    ])
