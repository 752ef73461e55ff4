"""Layer specifications of the GPU verification and their float64 numpy reference.

A group of layers acts on activations of shape ``(tokens, hidden)``, row by row.
Each layer is one of two memory-bound operations with its own per-channel weights:

``affine_act``
    ``y = act(x * scale + bias)`` with ``scale`` and ``bias`` of length ``hidden``
    and ``act`` one of ``relu``, ``gelu_tanh`` (the tanh approximation of GELU) or
    ``silu``.
``rmsnorm``
    ``y = x / sqrt(mean(x**2 over the row) + eps) * weight`` with ``weight`` of
    length ``hidden``; it needs the whole row before it can write any of it.

Weights are held as one float32 array ``params`` of shape ``(layers, 2, hidden)``:
``params[l, 0]`` is the scale (affine) or weight (rmsnorm) of layer ``l`` and
``params[l, 1]`` its bias (zero for rmsnorm). The kernels read the same array, so
the reference and the kernels compute the same function; the reference does it in
float64 without rounding between layers and is the oracle of the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LAYER_KINDS: tuple[str, ...] = ("affine_act", "rmsnorm")
"""The layer kinds a group may hold."""

ACTIVATIONS: tuple[str, ...] = ("relu", "gelu_tanh", "silu")
"""The activation functions of an ``affine_act`` layer."""

DEFAULT_RMSNORM_EPS = 1e-6
"""The ``eps`` of an ``rmsnorm`` layer when none is given (dimensionless)."""

PARAM_BYTES_PER_CHANNEL = 4
"""Bytes of one weight value: weights are stored as float32 whatever the activation dtype."""

_GELU_C = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class LayerSpec:
    """One memory-bound layer of a group.

    Attributes:
        kind: ``"affine_act"`` or ``"rmsnorm"``.
        activation: for ``affine_act``, one of :data:`ACTIVATIONS`; ``None`` for ``rmsnorm``.
        eps: for ``rmsnorm``, the term added to the mean square (dimensionless, > 0);
            ignored by ``affine_act``.
    """

    kind: str
    activation: str | None = None
    eps: float = DEFAULT_RMSNORM_EPS

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(
                f"LayerSpec.kind must be one of {LAYER_KINDS}, got {self.kind!r}"
            )
        if self.kind == "affine_act" and self.activation not in ACTIVATIONS:
            raise ValueError(
                "LayerSpec.activation of an 'affine_act' layer must be one of "
                f"{ACTIVATIONS}, got {self.activation!r}"
            )
        if self.kind == "rmsnorm":
            if self.activation is not None:
                raise ValueError(
                    "LayerSpec.activation must be None for an 'rmsnorm' layer, "
                    f"got {self.activation!r}"
                )
            if not (math.isfinite(self.eps) and self.eps > 0.0):
                raise ValueError(
                    f"LayerSpec.eps of an 'rmsnorm' layer must be finite and > 0, got {self.eps!r}"
                )

    @property
    def weight_vectors(self) -> int:
        """Per-channel weight vectors the layer reads: 2 (scale, bias) or 1 (weight)."""
        return 2 if self.kind == "affine_act" else 1


def affine(activation: str) -> LayerSpec:
    """An ``affine_act`` layer with the given activation (shorthand)."""
    return LayerSpec("affine_act", activation)


def rmsnorm(eps: float = DEFAULT_RMSNORM_EPS) -> LayerSpec:
    """An ``rmsnorm`` layer (shorthand)."""
    return LayerSpec("rmsnorm", None, eps)


def weight_bytes(layers: Sequence[LayerSpec], hidden: int) -> int:
    """Bytes of the weights that ``layers`` read, at ``hidden`` channels (int, bytes)."""
    vectors = sum(layer.weight_vectors for layer in layers)
    return vectors * hidden * PARAM_BYTES_PER_CHANNEL


def make_params(layers: Sequence[LayerSpec], hidden: int, rng: np.random.Generator) -> np.ndarray:
    """Draw random weights for ``layers``: a float32 array of shape ``(len(layers), 2, hidden)``.

    Scales and rmsnorm weights are drawn near 1 and biases near 0, so a chain of
    layers neither vanishes nor overflows in float16.
    """
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    params = np.zeros((len(layers), 2, hidden), dtype=np.float32)
    for index, layer in enumerate(layers):
        params[index, 0] = rng.uniform(0.75, 1.25, hidden)
        if layer.kind == "affine_act":
            params[index, 1] = rng.uniform(-0.25, 0.25, hidden)
    return params


def apply_activation(values: np.ndarray, activation: str) -> np.ndarray:
    """Apply ``activation`` elementwise in the dtype of ``values`` (float64 in the reference)."""
    out: np.ndarray
    if activation == "relu":
        out = np.maximum(values, 0.0)
    elif activation == "gelu_tanh":
        inner = _GELU_C * (values + 0.044715 * values**3)
        out = 0.5 * values * (1.0 + np.tanh(inner))
    elif activation == "silu":
        # x * sigmoid(x) from exp(-|x|) <= 1, which cannot overflow.
        exp_neg_abs = np.exp(-np.abs(values))
        sigmoid = np.where(values >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))
        out = values * sigmoid
    else:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return out


def reference_forward(x: np.ndarray, layers: Sequence[LayerSpec], params: np.ndarray) -> np.ndarray:
    """Apply ``layers`` to ``x`` in float64, with no rounding between layers.

    Args:
        x: activations of shape ``(tokens, hidden)``, any float dtype (rows are independent,
            so any subset of rows may be passed).
        layers: the layers, applied in order.
        params: weights as made by :func:`make_params`, shape ``(len(layers), 2, hidden)``.

    Returns:
        A new float64 array of the shape of ``x``.
    """
    if x.ndim != 2:
        raise ValueError(f"x must have 2 dimensions (tokens, hidden), got shape {x.shape}")
    hidden = x.shape[1]
    if params.shape != (len(layers), 2, hidden):
        raise ValueError(
            f"params must have shape {(len(layers), 2, hidden)} for {len(layers)} layers "
            f"and hidden={hidden}, got {params.shape}"
        )
    out = np.asarray(x, dtype=np.float64).copy()
    weights = params.astype(np.float64)
    for index, layer in enumerate(layers):
        if layer.kind == "rmsnorm":
            mean_square = np.mean(out * out, axis=1, keepdims=True)
            out = out / np.sqrt(mean_square + layer.eps) * weights[index, 0]
        else:
            assert layer.activation is not None  # guaranteed by LayerSpec
            out = apply_activation(out * weights[index, 0] + weights[index, 1], layer.activation)
    return out


def worst_row_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest ``||actual[r] - expected[r]|| / ||expected[r]||`` over the rows ``r``
    (float64, last axis), so one wrong row counts in full however many rows are right.
    NaN stays NaN; a row of zeros in ``expected`` gives 0.0 if matched, else ``inf``.
    """
    diff = np.atleast_1d(np.linalg.norm(np.asarray(actual, dtype=np.float64) - expected, axis=-1))
    scale = np.atleast_1d(np.linalg.norm(expected, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = diff / scale  # x / 0 is inf; NaN stays NaN
    ratios[(diff == 0.0) & (scale == 0.0)] = 0.0  # a row of zeros, matched
    return float(np.max(ratios)) if ratios.size else 0.0
