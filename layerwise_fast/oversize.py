"""Layers too large for the cache on their own (seed sections 5.2, 5.3 and 6.1).

A layer is *oversize* when its working set (weights + activations + buffers) exceeds
every device's capacity even at the smallest chunk. Such a layer fits no group, so the
planner applies the ``on_oversize`` policy to it:

``"error"``
    raise :class:`OversizeLayerError` naming the first such layer, its bytes at the
    smallest chunk and the capacity.
``"tile"``
    intra-layer partitioning: the layer's activations and buffers stay in the cache
    and its weights stream through the room left beside them, in the fewest tiles that
    fit (``ceil(W / room)``; every tile but the last fills the room, so the layer
    occupies the whole capacity). The tiles are re-read from HBM for every chunk, which
    costs ``W x (chunks - 1)`` extra HBM bytes per micro-batch compared with reading the
    weights once. Fails when the activations and buffers alone leave no room.
``"quantize"``
    int8 weights, else int4 weights (:func:`~layerwise_fast.workingset.working_set`'s
    formulas, scales included), whichever is the first to fit; fails when int4 does not.

A lookup (an ``embedding`` row that records its table's rows) holds only the rows its
chunk's tokens read (:mod:`~layerwise_fast.workingset`, "Lookups"), so it is oversize
only when one chunk's rows, activations and buffers exceed the capacity. ``"tile"``
streams those rows through the room in tiles; it reads them once per chunk in any case,
so its tiles add no HBM traffic. ``"quantize"`` stores its rows at int8 or int4.

Only oversize layers are treated, and their treatment is decided at the smallest chunk:
quantization and tiling are costs (accuracy, traffic), so a layer that fits untreated at
some chunk is never treated to allow a larger one. The chunk search then keeps the
treatments fixed, which keeps every size monotone in the chunk.

With devices of different capacities, "oversize" means too large for the largest
device, and treated layers are fitted to the smallest one, so they fit on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NoReturn

import numpy as np
import numpy.typing as npt

from .errors import LayerTooLargeError
from .scaling import UnitSizes, activations, fit_beside_weights, fit_tokens, layer_activations
from .units import format_bytes
from .workingset import Lookups

__all__ = [
    "INT4",
    "INT8",
    "POLICIES",
    "TILED",
    "TREATMENT_NAMES",
    "UNTREATED",
    "OversizeLayerError",
    "SizeRules",
    "Treatments",
    "oversize_rules",
]

IntColumn = npt.NDArray[np.int64]

POLICIES: Final[tuple[str, ...]] = ("error", "tile", "quantize")
"""The values ``on_oversize`` accepts."""
UNTREATED: Final[int] = 0
TILED: Final[int] = 1
INT8: Final[int] = 2
INT4: Final[int] = 3
TREATMENT_NAMES: Final[tuple[str, ...]] = ("none", "tile", "int8", "int4")
"""Treatment codes by value: ``TREATMENT_NAMES[TILED] == "tile"``."""

_BLOCK_ELEMENTS: Final[int] = 1 << 20
_HINT: Final[str] = ("on_oversize='tile' (--on-oversize tile) streams its weights through "
                     "the cache in tiles; 'quantize' tries int8 then int4 weights")
_NO_ROOM_HINT: Final[str] = ("its activations and buffers alone fill the capacity, so neither "
                             "tiling nor quantizing its weights helps: lower {smaller}")
_SEARCHED_SMALLER: Final[str] = "the batch, the chunk or its granularity"
_GIVEN_SMALLER: Final[str] = "the batch or the chunk"
_BUFFERS_HINT: Final[str] = ("its buffers alone fill the capacity, so neither tiling nor "
                             "quantizing its weights, nor a smaller chunk, helps: give it "
                             "smaller buffers or plan with a larger capacity")


class OversizeLayerError(LayerTooLargeError):
    """A layer does not fit the capacity, and the oversize policy cannot make it fit.

    A :class:`~layerwise_fast.errors.LayerTooLargeError` (so an
    :class:`~layerwise_fast.errors.InfeasibleError`) whose message also names the
    layer, breaks its bytes down and says what to try.

    Attributes:
        layer, nbytes, capacity: as for :class:`LayerTooLargeError`.
        layer_name: the layer's name.
        detail: how ``nbytes`` is made up.
        hint: what might make it fit.
    """

    def __init__(self, layer: int, nbytes: int, capacity: int, layer_name: str = "",
                 detail: str = "", hint: str = "") -> None:
        super().__init__(layer, nbytes, capacity)
        self.layer_name = str(layer_name)
        self.detail = str(detail)
        self.hint = str(hint)
        named = f" ({self.layer_name!r})" if self.layer_name else ""
        parts = f" ({self.detail})" if self.detail else ""
        message = (f"layer {self.layer}{named} needs {self.nbytes} bytes "
                   f"[{format_bytes(self.nbytes)}]{parts}, more than the capacity of "
                   f"{self.capacity} bytes [{format_bytes(self.capacity)}], over by "
                   f"{self.nbytes - self.capacity}")
        self.args = (f"{message}; {self.hint}" if self.hint else message,)

    def __reduce__(self) -> tuple[type[OversizeLayerError], tuple[int, int, int, str, str, str]]:  # type: ignore[override]
        return (type(self), (self.layer, self.nbytes, self.capacity, self.layer_name,
                             self.detail, self.hint))


@dataclass(frozen=True, eq=False)
class Treatments:
    """The treated layers of a plan, in layer order (all arrays of one length).

    Attributes:
        layers: indices of the treated layers, ascending.
        kind: ``"tile"``, ``"int8"`` or ``"int4"`` for each.
        original_bytes: weight bytes at the table's (or overriding) precision (a tiled
            lookup's: the table rows one chunk reads).
        weight_bytes: weight bytes as planned (after quantization; all tiles together;
            a tiled lookup's: the table rows one chunk reads).
        tiles: number of weight tiles (1 for a quantized layer).
        tile_bytes: bytes of every tile but the last (``weight_bytes`` when untiled).
        last_tile_bytes: bytes of the last tile.
        extra_bytes: HBM bytes per micro-batch that tiling adds (the weights re-read
            for every chunk after the first); 0 for quantized layers and for lookups,
            which read each chunk's rows once however they are held.
    """

    layers: IntColumn
    kind: npt.NDArray[np.object_]
    original_bytes: IntColumn
    weight_bytes: IntColumn
    tiles: IntColumn
    tile_bytes: IntColumn
    last_tile_bytes: IntColumn
    extra_bytes: IntColumn

    def __len__(self) -> int:
        return len(self.layers)


@dataclass(frozen=True, eq=False)
class SizeRules:
    """What each layer's working set is at a given chunk, under one oversize policy.

    Built by :func:`oversize_rules`. Token bounds are the most tokens per chunk (batch x
    chunk) at which a layer fits: untreated against ``fit_capacity``; tiled with at
    least one byte of tile, or quantized, against ``treat_capacity``.

    Attributes:
        units: the chunk-independent sizes.
        policy: one of :data:`POLICIES`.
        fit_capacity: the largest device capacity, bytes.
        treat_capacity: the smallest device capacity, bytes.
        alone: token bound of each layer untreated.
        tiled: token bound of each layer tiled (``tile`` policy only).
        int8_weights, int4_weights: weight bytes at int8 and int4 (``quantize`` only).
        int8, int4: token bounds at int8 and int4 weights (``quantize`` only).
    """

    units: UnitSizes
    policy: str
    fit_capacity: int
    treat_capacity: int
    alone: IntColumn
    tiled: IntColumn | None = None
    int8_weights: IntColumn | None = None
    int4_weights: IntColumn | None = None
    int8: IntColumn | None = None
    int4: IntColumn | None = None

    def treatments(self, tokens_min: int, chunk_text: str = "", *,
                   chunk_given: bool = False) -> IntColumn:
        """Treatment code of every layer (:data:`UNTREATED`, :data:`TILED`, ...) when the
        smallest chunk holds ``tokens_min`` tokens (batch x chunk); ``chunk_text``
        describes that chunk in error messages, and ``chunk_given`` says it was given
        rather than searched (no granularity to lower).

        Raises:
            OversizeLayerError: a layer does not fit and the policy cannot make it fit.
        """
        codes, failing = self._codes(tokens_min)
        if failing is not None:
            self._raise(failing, tokens_min, chunk_text or f"{tokens_min} tokens",
                        _GIVEN_SMALLER if chunk_given else _SEARCHED_SMALLER)
        return codes

    def limit(self, codes: IntColumn) -> int:
        """The most tokens per chunk at which every layer fits under ``codes``."""
        return int(self._bounds(codes).min())

    def sizes(self, tokens: int, codes: IntColumn) -> dict[str, IntColumn]:
        """The partitioner's columns at ``tokens`` per chunk: weights (quantized where
        treated so; a tiled layer's weights are the tile that fills its room),
        activations and buffers."""
        acts = activations(self.units, tokens)
        buffers = self.units.buffers
        if not codes.any():
            return {"weights": self.units.weights_for(tokens), "activations": acts,
                    "buffers": buffers}
        weights = self.units.weights_for(tokens, self.planned_weights(codes))
        tiled = codes == TILED
        if tiled.any():
            weights = weights.copy()
            weights[tiled] = self.treat_capacity - acts[tiled] - buffers[tiled]
        return {"weights": weights, "activations": acts, "buffers": buffers}

    def planned_weights(self, codes: IntColumn) -> IntColumn:
        """Every layer's whole weight bytes as planned: quantized where treated so,
        untiled (the bytes a layer reads per pass over its weights; a lookup's whole
        table)."""
        weights = self.units.weights
        if not codes.any() or self.policy != "quantize":
            return weights
        assert self.int8_weights is not None and self.int4_weights is not None
        return np.where(codes == INT8, self.int8_weights,
                        np.where(codes == INT4, self.int4_weights, weights))

    def lookups(self, codes: IntColumn) -> Lookups:
        """The lookups, with their whole tables' bytes as planned under ``codes``."""
        layers = self.units.lookup_layers
        return Lookups(layers, self.units.lookup_rows, self.planned_weights(codes)[layers])

    def report(self, codes: IntColumn, tokens: int, chunks: int) -> Treatments:
        """The :class:`Treatments` of a plan at ``tokens`` per chunk, ``chunks`` chunks
        per micro-batch."""
        layers = np.flatnonzero(codes).astype(np.int64)
        planned = self.planned_weights(codes)[layers]
        original = self.units.weights[layers]
        tiled = codes[layers] == TILED
        streamed = tiled & np.isin(layers, self.units.lookup_layers)
        if streamed.any():  # a tiled lookup streams the rows of one chunk
            rows = self.units.weights_for(tokens)[layers[streamed]]
            planned[streamed], original[streamed] = rows, rows
        tiles = np.ones(len(layers), dtype=np.int64)
        tile_bytes, last = planned.copy(), planned.copy()
        extra = np.zeros(len(layers), dtype=np.int64)
        if tiled.any():
            rooms = self.sizes(tokens, codes)["weights"][layers[tiled]]
            tiles[tiled] = -(-planned[tiled] // rooms)
            tile_bytes[tiled] = rooms
            last[tiled] = planned[tiled] - (tiles[tiled] - 1) * rooms
            reread = tiled & ~streamed
            extra[reread] = planned[reread] * (chunks - 1)
        kind = np.array([TREATMENT_NAMES[c] for c in codes[layers].tolist()], dtype=object)
        return Treatments(layers, kind, original, planned, tiles, tile_bytes, last, extra)

    def block_limits(self, tokens_min: IntColumn) -> tuple[IntColumn, IntColumn]:
        """For several smallest-chunk token counts at once (one per batch size): the token
        bound of the whole model (-1 where the policy cannot make every layer fit) and
        the number of treated layers."""
        if self.policy == "error" or (self.policy == "quantize" and self.int8 is None):
            over = (self.alone[None, :] < tokens_min[:, None]).sum(axis=1)  # none is treated
            return np.where(over == 0, int(self.alone.min()), -1), np.zeros_like(over)
        over_mask = self.alone[None, :] < tokens_min[:, None]
        if self.policy == "tile":
            assert self.tiled is not None
            bounds = np.where(over_mask, self.tiled[None, :], self.alone[None, :])
        else:
            assert self.int8 is not None and self.int4 is not None
            treated = np.where(self.int8[None, :] >= tokens_min[:, None],
                               self.int8[None, :], self.int4[None, :])
            bounds = np.where(over_mask, treated, self.alone[None, :])
        ok = ~over_mask | (bounds >= tokens_min[:, None])
        return np.where(ok.all(axis=1), bounds.min(axis=1), -1), over_mask.sum(axis=1)

    def _bounds(self, codes: IntColumn) -> IntColumn:
        bounds = self.alone
        for code, column in ((TILED, self.tiled), (INT8, self.int8), (INT4, self.int4)):
            if column is not None:
                bounds = np.where(codes == code, column, bounds)
        return bounds

    def _codes(self, tokens_min: int) -> tuple[IntColumn, int | None]:
        """Codes at ``tokens_min``, and the first layer that cannot be made to fit."""
        over = self.alone < tokens_min
        codes = np.zeros(len(self.alone), dtype=np.int64)
        if not over.any():
            return codes, None
        if self.policy == "error":
            return codes, int(np.argmax(over))
        if self.policy == "tile":
            assert self.tiled is not None
            codes[over] = TILED
            stuck = over & (self.tiled < tokens_min)
        else:
            assert self.int8 is not None and self.int4 is not None
            fits8 = self.int8 >= tokens_min
            codes[over] = np.where(fits8[over], INT8, INT4)
            stuck = over & ~fits8 & (self.int4 < tokens_min)
        return codes, (int(np.argmax(stuck)) if stuck.any() else None)

    def _raise(self, layer: int, tokens_min: int, chunk_text: str, smaller: str) -> NoReturn:
        units = self.units
        name = str(units.names[layer])
        acts = layer_activations(units, layer, tokens_min)
        buffers = int(units.buffers[layer])
        weights = int(units.weights_for(tokens_min)[layer])
        at = f"for {chunk_text}"
        # Room for some weights, tiled or quantized? Else say what fills the capacity.
        no_room = (_BUFFERS_HINT if buffers >= self.treat_capacity
                   else _NO_ROOM_HINT.format(smaller=smaller))
        room = acts + buffers < self.treat_capacity
        held = "table rows read" if layer in units.lookup_layers else "weights"
        if self.policy == "error":
            raise OversizeLayerError(
                layer, weights + acts + buffers, self.fit_capacity, name,
                f"{held} {weights} + activations {acts} + buffers {buffers} {at}",
                _HINT if room else no_room)
        if self.policy == "tile":
            raise OversizeLayerError(
                layer, acts + buffers + 1, self.treat_capacity, name,
                f"activations {acts} + buffers {buffers} {at} + a weight tile of at least "
                f"1 byte", _BUFFERS_HINT if buffers >= self.treat_capacity
                else f"lower {smaller}")
        assert self.int4_weights is not None
        int4 = int(units.weights_for(tokens_min, self.int4_weights)[layer])
        raise OversizeLayerError(
            layer, int4 + acts + buffers, self.treat_capacity, name,
            f"even with int4 weights: {held} {int4} + activations {acts} + buffers "
            f"{buffers} {at}",
            "on_oversize='tile' (--on-oversize tile) streams its weights in tiles"
            if room else no_room)


def oversize_rules(units: UnitSizes, fit_capacity: int, treat_capacity: int, policy: str,
                   tokens_min: int | None = None) -> SizeRules:
    """The :class:`SizeRules` for ``policy``.

    ``tokens_min`` (the largest smallest-chunk token count that will be asked about)
    lets ``quantize`` skip computing int8 and int4 weights when no layer can be oversize.

    Raises:
        ValueError: an unknown policy or a capacity that is not a positive int.
    """
    if policy not in POLICIES:
        raise ValueError(f"on_oversize must be one of {', '.join(POLICIES)}, got {policy!r}")
    for name, value in (("fit_capacity", fit_capacity), ("treat_capacity", treat_capacity)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int of bytes, got {value!r}")
    buffers = units.buffers
    alone = fit_beside_weights(units, fit_capacity - buffers, units.weights)
    if policy == "tile":
        return SizeRules(units, policy, fit_capacity, treat_capacity, alone,
                         tiled=fit_tokens(units, treat_capacity - buffers - 1))
    if policy == "quantize" and (tokens_min is None or int(alone.min()) < tokens_min):
        int8, int4 = units.weights_at("int8"), units.weights_at("int4")
        room = treat_capacity - buffers
        return SizeRules(units, policy, fit_capacity, treat_capacity, alone,
                         int8_weights=int8, int4_weights=int4,
                         int8=fit_beside_weights(units, room, int8),
                         int4=fit_beside_weights(units, room, int4))
    return SizeRules(units, policy, fit_capacity, treat_capacity, alone)
