"""Bundled planning examples: a model file plus the settings to plan it with.

``seed-30b``
    The seed's own example (sections 2.1 and 5.1): a dense 4-layer model of 30B
    parameters, 7.5B per layer, hidden size 16384, batch 128, sequence 10000, one H100
    per group. Its layer table (``examples/models/seed-30b.json``) counts, per layer,
    15 GB of bf16 weights (7.5e9 x 2 bytes), 4 MB of buffers (the seed's "2-5 MB") and
    one hidden vector per token of activations, the seed's own activation formula
    ``batch x tokens x hidden x 2``: the full sequence is 128 x 10000 x 16384 x 2 =
    41,943,040,000 bytes (39.06 GiB, which the seed prints as "39.06 GB"), and a
    64-token chunk is 128 x 64 x 16384 x 2 = 268,435,456 bytes = 256 MiB. The seed's
    section 5.1 says 16 MB for that product; it is wrong by a factor of 16.

    Nothing about this model fits a 50 MB cache: one layer's weights are 300 times the
    L2, and at batch 128 even one token per sequence holds 4 MiB of activations, so a
    64-token chunk does not fit either. The example therefore searches chunks in steps
    of one token. With the default ``on_oversize="error"`` the plan fails and names
    layer 0, its bytes and the capacity; with ``tile`` each layer streams its weights
    through the cache in thousands of tiles, re-read for every chunk, and the plan shows
    the traffic that costs; with ``quantize`` even int4 (3.9 GB) fails. The output
    width per token is the hidden size, 16384.

``llama-2-7b-8xh100``
    Llama 2 7B (``examples/configs/llama-2-7b.json``, one row per decoder layer) on
    8 H100s, batch 1, sequence 4096, 8 micro-batches, chunk searched in multiples of 64
    tokens. Its decoder layers hold 405 MB of bf16 weights each, 13 times the effective
    capacity, so no layer of it can be cache-resident: the plan fits by tiling
    (``on_oversize="tile"``), and 35 groups share the 8 devices, balanced by stage time.
    The performance model then says what the tiles cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Mapping

from .planner import Model, load_model

__all__ = ["SCENARIOS", "Scenario", "scenario", "scenario_model"]


@dataclass(frozen=True)
class Scenario:
    """A bundled example.

    Attributes:
        name: what ``--example`` takes.
        description: one line for listings.
        model_file: the model's path inside the package's ``examples`` folder.
        settings: keyword arguments of :func:`layerwise_fast.plan` (hardware included).
    """

    name: str
    description: str
    model_file: str
    settings: Mapping[str, Any]

    def model_path(self) -> Path:
        """Where the model file is installed."""
        return Path(str(resources.files("layerwise_fast") / "examples" / self.model_file))


SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType({
    "seed-30b": Scenario(
        "seed-30b",
        "the seed's dense 4-layer 30B model, batch 128, sequence 10000, one H100 per group",
        "models/seed-30b.json",
        MappingProxyType({"hardware": "h100", "batch": 128, "sequence": 10000,
                          "granularity": 1, "cut_elems_per_token": 16384}),
    ),
    "llama-2-7b-8xh100": Scenario(
        "llama-2-7b-8xh100",
        "Llama 2 7B on 8 H100s, batch 1, sequence 4096, 8 micro-batches, tiled weights",
        "configs/llama-2-7b.json",
        MappingProxyType({"hardware": "h100", "devices": 8, "share_devices": True,
                          "batch": 1, "sequence": 4096, "micro_batches": 8,
                          "on_oversize": "tile"}),
    ),
})
"""The bundled examples by name."""


def scenario(name: str) -> Scenario:
    """The bundled example ``name``.

    Raises:
        ValueError: no example has that name (the message lists them).
    """
    if name not in SCENARIOS:
        raise ValueError(f"no bundled example named {name!r}; available: "
                         f"{', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def scenario_model(example: Scenario, *, layer_granularity: str = "layer") -> Model:
    """The example's model, labelled with the example's name; ``layer_granularity`` as
    for :func:`~layerwise_fast.planner.load_model` (``sublayer`` needs a config)."""
    loaded = load_model(example.model_path(), layer_granularity=layer_granularity)
    return replace(loaded, label=example.name)
