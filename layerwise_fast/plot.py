"""A plan as a picture: each group's working set against the capacity, and the pipeline.

Needs matplotlib, an optional extra (``pip install "layerwise_fast[plot]"``). It is
imported only when a plot is drawn, through matplotlib's object API (no pyplot, so no
global backend or figure state is touched).
"""

from __future__ import annotations

import os
from typing import Any, Final

import numpy as np

from .deployment import Plan
from .summary import counted

__all__ = ["PlotUnavailableError", "plot_plan", "require_matplotlib"]

MAX_BARS: Final[int] = 2000
"""Beyond this many groups the working sets are drawn as steps rather than bars."""
MAX_GANTT_DEVICES: Final[int] = 64
"""Beyond this many devices the timeline panel shows its totals only."""
MAX_GANTT_BARS: Final[int] = 4096
"""Most (device, micro-batch) intervals drawn in the timeline panel."""


class PlotUnavailableError(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(
            "plotting needs matplotlib, an optional extra: pip install "
            "\"layerwise_fast[plot]\"") from exc
    return Figure, FigureCanvasAgg


def require_matplotlib() -> None:
    """Raise :class:`PlotUnavailableError` now, before any work, where matplotlib is
    missing."""
    _matplotlib()


def plot_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Draw ``plan`` into a PNG file at ``path``.

    Top: each group's working set (weights, and activations + buffers) against its
    device's effective capacity and the nominal L2 size. Bottom: when each device is
    busy with each micro-batch, from the plan's timeline.

    Raises:
        PlotUnavailableError: matplotlib is not installed.
        OSError: the file cannot be written.
    """
    figure_type, canvas_type = _matplotlib()
    figure = figure_type(figsize=(11, 7.5), layout="constrained")
    canvas_type(figure)
    top, bottom = figure.subplots(2, 1)
    _working_sets(top, plan)
    _timeline(bottom, plan)
    figure.suptitle(f"{_literal(plan.settings.model)}: {counted(plan.n, 'layer')}, "
                    f"{counted(plan.k, 'group')}, {counted(plan.device_count, 'device')}, "
                    f"chunk {counted(plan.settings.chunk, 'token')}")
    figure.savefig(os.fspath(path), format="png", dpi=100)


def _working_sets(axes: Any, plan: Plan) -> None:
    starts = plan.partition.boundaries[:-1]
    weights = np.add.reduceat(plan.weights, starts) / 1e6
    total = plan.partition.group_costs / 1e6
    groups = np.arange(plan.k)
    if plan.k <= MAX_BARS:
        axes.bar(groups, weights, color="#4c72b0", label="weights")
        axes.bar(groups, total - weights, bottom=weights, color="#dd8452",
                 label="activations + buffers")
    else:
        axes.fill_between(groups, total, step="mid", color="#dd8452",
                          label="activations + buffers")
        axes.fill_between(groups, weights, step="mid", color="#4c72b0", label="weights")
    capacity = plan.device_capacities[plan.group_device] / 1e6
    nominal = np.array([d.l2_bytes for d in plan.hardware])[
        plan.device_kind[plan.group_device]] / 1e6
    axes.step(groups, capacity, where="mid", color="black", label="effective capacity")
    axes.step(groups, nominal, where="mid", color="gray", linestyle="--",
              label="nominal L2")
    axes.set_xlabel("group")
    axes.set_ylabel("working set (MB)")
    axes.set_ylim(0, max(float(nominal.max()), float(total.max())) * 1.3)
    axes.legend(loc="upper center", ncols=4, fontsize="small")


def _timeline(axes: Any, plan: Plan) -> None:
    tl = plan.timeline
    devices = plan.device_count
    axes.set_xlabel("time (ms)")
    axes.set_title(f"pipeline: {counted(tl.micro_batches, 'micro-batch')} x {counted(tl.chunks, 'chunk')}, "
                   f"fill {tl.fill_s * 1e3:.3g} ms, steady {tl.steady_s * 1e3:.3g} ms, "
                   f"drain {tl.drain_s * 1e3:.3g} ms", fontsize="medium")
    if devices > MAX_GANTT_DEVICES:
        axes.text(0.5, 0.5, f"{devices} devices: total {tl.total_s * 1e3:.3g} ms",
                  ha="center", va="center", transform=axes.transAxes)
        return
    shown = max(1, min(tl.micro_batches, MAX_GANTT_BARS // devices))
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"]
    for device in range(devices):
        spans = []
        for batch in range(shown):
            first = batch * tl.chunks
            start, end = tl.busy(2 * device, first, first + tl.chunks - 1)
            spans.append((start * 1e3, (end - start) * 1e3))
        axes.broken_barh(spans, (device - 0.4, 0.8),
                         facecolors=[colors[b % len(colors)] for b in range(shown)])
    axes.set_yticks(range(devices))
    axes.set_yticklabels([f"{d} {_literal(plan.hardware[plan.device_kind[d]].name)}"
                          for d in range(devices)])
    axes.set_ylabel("device")
    axes.invert_yaxis()
    axes.set_xlim(0, max(tl.total_s * 1e3, 1e-9))


def _literal(text: str) -> str:
    """``text`` as matplotlib should draw it: ``$`` starts mathtext there, so it is
    escaped (a name such as ``run $1`` is drawn as written)."""
    return text.replace("$", r"\$")
