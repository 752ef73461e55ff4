"""Hardware targets: cache capacity, bandwidths and compute rate of one device.

A :class:`Hardware` holds the nominal L2 size in bytes and the fraction of it that
streaming data can use (``effective_fraction``); :attr:`Hardware.capacity` is the
capacity C the partitioner plans against. Built-in profiles live in :data:`PROFILES`;
a measured device comes from a calibration file (:meth:`Hardware.from_calibration`).

Calibration file (UTF-8 JSON, version 1)::

    {
      "schema": "layerwise_fast.calibration",
      "version": 1,
      "device_name": "NVIDIA H100 80GB HBM3",   # non-empty str
      "l2_bytes": 52428800,                      # int > 0, L2 size the device reports
      "knee_bytes": 32000000,                    # int, 0 < knee <= l2_bytes: the largest
                                                 #   working set still at the cache rate;
                                                 #   becomes the effective capacity
      "plateau_bytes_per_s": 4.79e12,            # number > 0: rate below the knee
      "hbm_bytes_per_s": 3.02e12,                # number > 0: rate at HBM-sized sets
      "sizes": [1048576, ...],                   # ints > 0, strictly increasing, the
                                                 #   sweep's working-set sizes; the knee
                                                 #   lies within [sizes[0], sizes[-1]]
      "bytes_per_s": [2.1e12, ...],              # numbers > 0, one per size
      "link_bytes_per_s": 4.5e11,                # optional number > 0, one direction
      "flops_per_s": 9.89e14,                    # optional number > 0
      "meta": {...}                              # optional object, free-form provenance
    }

Rates count bytes read plus bytes written. ``sizes`` and ``bytes_per_s`` are checked
and kept in the file for plots; a :class:`Hardware` carries only the summary figures.
No other keys are allowed, so a misspelt key is an error rather than silently ignored.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final, Mapping

from .units import INT64_MAX, ByteCount, FractionLike, _is_int, _is_number, _json_type
from .units import (_read_json_document, display_name, encodable, parse_bytes, parse_fraction,
                    short_repr)

__all__ = [
    "CALIBRATION_SCHEMA",
    "CALIBRATION_VERSION",
    "HARDWARE_SCHEMA",
    "HARDWARE_VERSION",
    "DEFAULT_EFFECTIVE_FRACTION",
    "CalibrationError",
    "Hardware",
    "PROFILES",
]

CALIBRATION_SCHEMA: Final[str] = "layerwise_fast.calibration"
CALIBRATION_VERSION: Final[int] = 1
HARDWARE_SCHEMA: Final[str] = "layerwise_fast.hardware"
HARDWARE_VERSION: Final[int] = 1

# Effective fractions, from one measurement per card (an in-place bf16 read+write pass
# repeated over one buffer; README, "Hardware figures"). The rate starts to fall at 32 MB
# on the H100 (L2 reported as 50 MiB) and at 36 MB on the H200 (60 MiB). Reading those
# sizes as decimal megabytes (the smaller reading), 32e6 / 52428800 = 0.610 and
# 36e6 / 62914560 = 0.572; rounding down to a multiple of 0.05 keeps the planned capacity
# inside the measured plateau: H100 0.60 (31,457,280 bytes = 30 MiB), H200 0.55
# (34,603,008 bytes = 33 MiB). The A100 has no measurement here; it is given the H100's
# fraction (both split L2 into two partitions) and its profile says the figure is assumed.
H100_EFFECTIVE_FRACTION: Final[Fraction] = Fraction(3, 5)
H200_EFFECTIVE_FRACTION: Final[Fraction] = Fraction(11, 20)
DEFAULT_EFFECTIVE_FRACTION: Final[Fraction] = H100_EFFECTIVE_FRACTION
"""Fraction used when none is given (the H100 measurement, 3/5)."""

_CALIBRATION_REQUIRED: Final[tuple[str, ...]] = (
    "schema", "version", "device_name", "l2_bytes", "knee_bytes",
    "plateau_bytes_per_s", "hbm_bytes_per_s", "sizes", "bytes_per_s",
)
_CALIBRATION_OPTIONAL: Final[tuple[str, ...]] = ("link_bytes_per_s", "flops_per_s", "meta")
_DICT_FIELDS: Final[tuple[str, ...]] = (
    "schema", "version", "name", "l2_bytes", "hbm_bytes_per_s", "link_bytes_per_s",
    "flops_per_s", "effective_fraction", "cache_bytes_per_s", "source",
)


class CalibrationError(ValueError):
    """A calibration file is missing, unreadable or malformed.

    The message names the file and, where one is at fault, the field.
    """


@dataclass(frozen=True, init=False)
class Hardware:
    """One device as the planner sees it. Immutable; compare with ``==``.

    Attributes:
        name: a label such as ``"h100"`` or the device name a calibration reported.
        l2_bytes: nominal L2 size in bytes (as the device reports it).
        hbm_bytes_per_s: main-memory bandwidth, bytes per second.
        link_bytes_per_s: device-to-device link bandwidth in one direction (what a
            point-to-point send gets), bytes per second.
        flops_per_s: dense bf16 compute rate, floating-point operations per second.
        effective_fraction: the share of ``l2_bytes`` that streaming data can use,
            ``0 < f <= 1``, held exactly as a :class:`~fractions.Fraction`.
        cache_bytes_per_s: streaming rate (read + write) for working sets that fit the
            effective capacity, at least ``hbm_bytes_per_s``; ``None`` where it is
            unknown.
        source: where the figures come from.

    Use :func:`dataclasses.replace` to derive a variant, e.g. another fraction.
    """

    name: str
    l2_bytes: int
    hbm_bytes_per_s: float
    link_bytes_per_s: float
    flops_per_s: float
    effective_fraction: Fraction
    cache_bytes_per_s: float | None
    source: str

    def __init__(
        self,
        name: str,
        l2_bytes: int,
        hbm_bytes_per_s: float,
        link_bytes_per_s: float,
        flops_per_s: float,
        effective_fraction: FractionLike = DEFAULT_EFFECTIVE_FRACTION,
        *,
        cache_bytes_per_s: float | None = None,
        source: str = "",
    ) -> None:
        """Validate and store the figures (see the class docstring for units).

        A float ``effective_fraction`` is read as the decimal it prints as (0.6 is 3/5).

        Raises:
            TypeError: a field has the wrong type (``bool`` is never a number here).
            ValueError: an empty name, a name or source UTF-8 cannot carry (a lone
                surrogate), a rate below 1 (per second) or not finite,
                ``l2_bytes`` outside ``[1, int64]``, a fraction outside ``(0, 1]``, an
                effective capacity of 0 bytes, or a cache rate below the HBM rate (no L2
                is slower than main memory: the units are likely wrong).
        """
        _set = object.__setattr__
        _set(self, "name", _require_text(name, "name", allow_empty=False))
        _set(self, "l2_bytes", _require_byte_count(l2_bytes, "l2_bytes"))
        _set(self, "hbm_bytes_per_s", _require_rate(hbm_bytes_per_s, "hbm_bytes_per_s"))
        _set(self, "link_bytes_per_s", _require_rate(link_bytes_per_s, "link_bytes_per_s"))
        _set(self, "flops_per_s", _require_rate(flops_per_s, "flops_per_s"))
        _set(self, "effective_fraction",
             parse_fraction(effective_fraction, name="effective_fraction", maximum=1))
        if self.capacity < 1:
            raise ValueError(f"the effective capacity, floor(l2_bytes x effective_fraction) = "
                             f"floor({self.l2_bytes} x {self.effective_fraction}), is 0 bytes; "
                             f"a device must hold at least 1 byte")
        cache_rate = None if cache_bytes_per_s is None else _require_rate(
            cache_bytes_per_s, "cache_bytes_per_s")
        if cache_rate is not None and cache_rate < self.hbm_bytes_per_s:
            raise ValueError(
                f"cache_bytes_per_s ({cache_rate:.4g}) is below hbm_bytes_per_s "
                f"({self.hbm_bytes_per_s:.4g}): an L2 is never slower than main memory; "
                f"both are bytes per second (read + write)")
        _set(self, "cache_bytes_per_s", cache_rate)
        _set(self, "source", _require_text(source, "source", allow_empty=True))

    @property
    def capacity(self) -> int:
        """Effective capacity in bytes: ``floor(l2_bytes * effective_fraction)``."""
        fraction = self.effective_fraction
        return self.l2_bytes * fraction.numerator // fraction.denominator

    @property
    def nominal_capacity(self) -> int:
        """Nominal L2 size in bytes (``l2_bytes``)."""
        return self.l2_bytes

    @classmethod
    def profile(cls, name: str) -> Hardware:
        """Return a built-in profile by name (case-insensitive): see :data:`PROFILES`.

        Raises:
            TypeError: ``name`` is not a str.
            ValueError: no profile has that name; the message lists the known ones.
        """
        if not isinstance(name, str):
            raise TypeError(f"profile name must be a str, got {type(name).__name__}")
        key = name.strip().lower()
        if key not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise ValueError(f"unknown hardware profile {name!r}; built-in profiles: {known}")
        return PROFILES[key]

    @classmethod
    def custom(
        cls,
        name: str,
        *,
        l2: ByteCount,
        hbm_bytes_per_s: float,
        link_bytes_per_s: float,
        flops_per_s: float,
        effective_fraction: FractionLike = DEFAULT_EFFECTIVE_FRACTION,
        cache_bytes_per_s: float | None = None,
    ) -> Hardware:
        """Describe a device by hand; ``l2`` takes any :func:`~layerwise_fast.units.parse_bytes`
        form (``"50MiB"``, ``"40 MB"``, ``52428800``).

        Raises:
            TypeError, ValueError: as for :func:`parse_bytes` and the constructor.
        """
        return cls(
            name,
            parse_bytes(l2, name="l2"),
            hbm_bytes_per_s,
            link_bytes_per_s,
            flops_per_s,
            effective_fraction,
            cache_bytes_per_s=cache_bytes_per_s,
            source="custom",
        )

    @classmethod
    def from_calibration(
        cls, path: str | os.PathLike[str], *, base: str | Hardware | None = None
    ) -> Hardware:
        """Load a measured device from a calibration file (schema in the module docstring).

        The effective capacity is the measured knee exactly (the fraction is
        ``knee_bytes / l2_bytes``); ``hbm_bytes_per_s`` and ``cache_bytes_per_s`` are the
        measured rates. The link and compute rates, which the sweep does not measure,
        come from the file when present, else from ``base`` (a profile name or a
        :class:`Hardware`), else from the built-in profile whose name appears in
        ``device_name`` (``"NVIDIA H100 80GB HBM3"`` -> ``h100``).

        Raises:
            CalibrationError: the file is missing, a directory, not UTF-8, not JSON, has
                the wrong schema or version, lacks a field, has an unknown field, a
                field of the wrong type or range, or no source for the link and compute
                rates. The message names the file and the field.
            ValueError: ``base`` names no built-in profile.
        """
        label = f"calibration file {os.fspath(path)!r}"
        document = _read_json_document(path, what="calibration file", error=CalibrationError)
        fields = _check_calibration(document, label)
        rates = _link_and_compute(fields, base, label)
        return cls(
            fields["device_name"],
            fields["l2_bytes"],
            fields["hbm_bytes_per_s"],
            rates[0],
            rates[1],
            Fraction(fields["knee_bytes"], fields["l2_bytes"]),
            cache_bytes_per_s=fields["plateau_bytes_per_s"],
            source=f"calibration file {display_name(os.fspath(path))}",
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``effective_fraction`` is written exactly, as ``"3/5"``."""
        return {
            "schema": HARDWARE_SCHEMA,
            "version": HARDWARE_VERSION,
            "name": self.name,
            "l2_bytes": self.l2_bytes,
            "hbm_bytes_per_s": self.hbm_bytes_per_s,
            "link_bytes_per_s": self.link_bytes_per_s,
            "flops_per_s": self.flops_per_s,
            "effective_fraction": str(self.effective_fraction),
            "cache_bytes_per_s": self.cache_bytes_per_s,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hardware:
        """Inverse of :meth:`to_dict`: ``Hardware.from_dict(h.to_dict()) == h``.

        Raises:
            TypeError: ``data`` is not a mapping, or a field has the wrong type.
            ValueError: wrong schema or version, a missing or unknown key, or a value
                out of range.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"hardware description must be a mapping, got {type(data).__name__}")
        _check_keys(data, _DICT_FIELDS, (), "hardware description", ValueError)
        if data["schema"] != HARDWARE_SCHEMA:
            raise ValueError(f"hardware description: 'schema' must be {HARDWARE_SCHEMA!r}, "
                             f"got {data['schema']!r}")
        if not _is_int(data["version"]) or data["version"] != HARDWARE_VERSION:
            raise ValueError(f"hardware description: unsupported version {data['version']!r} "
                             f"(this release reads version {HARDWARE_VERSION})")
        return cls(
            data["name"],
            data["l2_bytes"],
            data["hbm_bytes_per_s"],
            data["link_bytes_per_s"],
            data["flops_per_s"],
            data["effective_fraction"],
            cache_bytes_per_s=data["cache_bytes_per_s"],
            source=data["source"],
        )


def _require_text(value: object, field: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{field} must not be empty")
    if not encodable(value):
        raise ValueError(f"{field} {value!r} cannot be written as UTF-8 (it holds a lone "
                         f"surrogate)")
    return value


def _require_byte_count(value: object, field: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{field} must be an int number of bytes, got {type(value).__name__} "
                        f"{value!r}")
    count = int(value)
    if not 0 < count <= INT64_MAX:
        raise ValueError(f"{field} must be in [1, {INT64_MAX}] bytes, got {count}")
    return count


def _require_rate(value: object, field: str) -> float:
    """A rate per second: finite and at least 1, so that every time the performance
    model derives from it (at most int64 bytes or flops over it, summed) stays finite."""
    if not _is_number(value):
        raise TypeError(f"{field} must be a number, got {type(value).__name__} {value!r}")
    rate = _as_float(value)
    if not math.isfinite(rate) or rate < 1:
        raise ValueError(f"{field} must be a finite number of at least 1 (per second), "
                         f"got {short_repr(value)}")
    return rate


def _as_float(value: Any) -> float:
    """``float(value)``, or infinity for an integer too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _check_keys(
    data: Mapping[str, Any],
    required: tuple[str, ...],
    optional: tuple[str, ...],
    label: str,
    error: type[ValueError],
) -> None:
    """Refuse missing and unknown keys, naming them."""
    missing = [key for key in required if key not in data]
    if missing:
        raise error(f"{label}: missing field {missing[0]!r}")
    unknown = sorted(str(key) for key in data if key not in required and key not in optional)
    if unknown:
        raise error(f"{label}: unknown field {unknown[0]!r} "
                    f"(known: {', '.join(required + optional)})")


def _check_calibration(document: object, label: str) -> dict[str, Any]:
    """Validate a parsed calibration document; return its fields."""
    if not isinstance(document, dict):
        raise CalibrationError(f"{label}: the top level must be a JSON object, "
                               f"got {_json_type(document)}")
    _check_keys(document, _CALIBRATION_REQUIRED, _CALIBRATION_OPTIONAL, label, CalibrationError)
    if document["schema"] != CALIBRATION_SCHEMA:
        raise CalibrationError(f"{label}: field 'schema' must be {CALIBRATION_SCHEMA!r}, "
                               f"got {document['schema']!r}")
    if not _is_int(document["version"]) or document["version"] != CALIBRATION_VERSION:
        raise CalibrationError(f"{label}: unsupported version {document['version']!r} "
                               f"(this release reads version {CALIBRATION_VERSION})")
    _calibration_text(document, "device_name", label)
    l2_bytes = _calibration_count(document, "l2_bytes", label)
    knee = _calibration_count(document, "knee_bytes", label)
    if knee > l2_bytes:
        raise CalibrationError(f"{label}: field 'knee_bytes' ({knee}) exceeds "
                               f"'l2_bytes' ({l2_bytes})")
    for field in ("plateau_bytes_per_s", "hbm_bytes_per_s"):
        _calibration_rate(document[field], field, label)
    if document["plateau_bytes_per_s"] < document["hbm_bytes_per_s"]:
        raise CalibrationError(f"{label}: field 'plateau_bytes_per_s' "
                               f"({document['plateau_bytes_per_s']}) is below "
                               f"'hbm_bytes_per_s' ({document['hbm_bytes_per_s']}): the "
                               f"plateau is the fastest rate of the sweep")
    for field in ("link_bytes_per_s", "flops_per_s"):
        if field in document:
            _calibration_rate(document[field], field, label)
    if "meta" in document and not isinstance(document["meta"], dict):
        raise CalibrationError(f"{label}: field 'meta' must be an object, "
                               f"got {_json_type(document['meta'])}")
    _check_sweep(document, knee, label)
    return document


def _calibration_text(document: Mapping[str, Any], field: str, label: str) -> str:
    value = document[field]
    if not isinstance(value, str) or not value.strip():
        raise CalibrationError(f"{label}: field {field!r} must be a non-empty string, "
                               f"got {_json_type(value)} {value!r}")
    if not encodable(value):
        raise CalibrationError(f"{label}: field {field!r} {value!r} cannot be written as "
                               f"UTF-8 (it holds a lone surrogate)")
    return value


def _calibration_count(document: Mapping[str, Any], field: str, label: str) -> int:
    value = document[field]
    if not _is_int(value):
        raise CalibrationError(f"{label}: field {field!r} must be an integer number of bytes, "
                               f"got {_json_type(value)} {value!r}")
    if not 0 < value <= INT64_MAX:
        raise CalibrationError(f"{label}: field {field!r} must be in [1, {INT64_MAX}], "
                               f"got {value}")
    return int(value)


def _calibration_rate(value: object, field: str, label: str) -> float:
    if not _is_number(value):
        raise CalibrationError(f"{label}: field {field!r} must be a number, "
                               f"got {_json_type(value)} {value!r}")
    rate = _as_float(value)
    if not math.isfinite(rate):
        raise CalibrationError(f"{label}: field {field!r} must be a finite number, got "
                               f"{short_repr(value)}")
    if rate < 1:  # as for Hardware's rates
        raise CalibrationError(f"{label}: field {field!r} must be at least 1 (per second), "
                               f"got {value!r}")
    return rate


def _check_sweep(document: Mapping[str, Any], knee: int, label: str) -> None:
    """Check ``sizes`` and ``bytes_per_s``: equal non-empty lists, sizes increasing."""
    sizes, rates = document["sizes"], document["bytes_per_s"]
    for field, value in (("sizes", sizes), ("bytes_per_s", rates)):
        if not isinstance(value, list) or not value:
            raise CalibrationError(f"{label}: field {field!r} must be a non-empty list, "
                                   f"got {_json_type(value)}")
    if len(sizes) != len(rates):
        raise CalibrationError(f"{label}: 'sizes' has {len(sizes)} entries but "
                               f"'bytes_per_s' has {len(rates)}")
    for index, size in enumerate(sizes):
        if not _is_int(size) or not 0 < size <= INT64_MAX:
            raise CalibrationError(f"{label}: sizes[{index}] must be a positive integer "
                                   f"number of bytes, got {size!r}")
        if index and size <= sizes[index - 1]:
            raise CalibrationError(f"{label}: 'sizes' must be strictly increasing; "
                                   f"sizes[{index}] = {size} follows {sizes[index - 1]}")
    for index, rate in enumerate(rates):
        _calibration_rate(rate, f"bytes_per_s[{index}]", label)
    if not sizes[0] <= knee <= sizes[-1]:
        raise CalibrationError(f"{label}: 'knee_bytes' ({knee}) lies outside the sweep "
                               f"[{sizes[0]}, {sizes[-1]}]")


def _link_and_compute(
    fields: Mapping[str, Any], base: str | Hardware | None, label: str
) -> tuple[float, float]:
    """Link and compute rates: from the file, else ``base``, else a matching profile."""
    if "link_bytes_per_s" in fields and "flops_per_s" in fields:
        return float(fields["link_bytes_per_s"]), float(fields["flops_per_s"])
    fallback = _fallback_profile(fields["device_name"], base, label)
    return (
        float(fields.get("link_bytes_per_s", fallback.link_bytes_per_s)),
        float(fields.get("flops_per_s", fallback.flops_per_s)),
    )


# Form factors other than SXM, as device names spell them ("NVIDIA H100 PCIe",
# "NVIDIA A100-PCIE-40GB", "NVIDIA H100 NVL"): no profile's link or compute rate fits them.
_NOT_SXM: Final[dict[str, str]] = {"pcie": "PCIe", "nvl": "NVL"}


def _fallback_profile(device_name: str, base: str | Hardware | None, label: str) -> Hardware:
    if isinstance(base, Hardware):
        return base
    if base is not None:
        return Hardware.profile(base)
    words = device_name.lower().replace("-", " ").split()
    matches = [key for key in PROFILES if key in words]
    other_form = sorted(_NOT_SXM[word] for word in set(words) if word in _NOT_SXM)
    if matches and other_form:
        raise CalibrationError(
            f"{label}: fields 'link_bytes_per_s' and 'flops_per_s' are needed: the file "
            f"lacks them and device_name {device_name!r} is a {other_form[0]} card, "
            f"whose link and compute rates differ from the built-in (SXM) "
            f"{matches[0]!r} profile; add them to the file, or pass base= to "
            f"Hardware.from_calibration to accept that profile's")
    if len(matches) != 1:
        raise CalibrationError(
            f"{label}: fields 'link_bytes_per_s' and 'flops_per_s' are needed: the file "
            f"lacks them and device_name {device_name!r} matches no single built-in profile; "
            f"add them to the file, or pass base= to Hardware.from_calibration (one of "
            f"{', '.join(sorted(PROFILES))})"
        )
    return PROFILES[matches[0]]


PROFILES: Final[Mapping[str, Hardware]] = MappingProxyType(
    {
        "h100": Hardware(
            "h100",
            50 * 2**20,
            3.02e12,
            450e9,
            989e12,
            H100_EFFECTIVE_FRACTION,
            cache_bytes_per_s=4.79e12,
            source=(
                "H100 SXM5: L2 50 MiB as the device reports it (NVIDIA quotes 50 MB); "
                "HBM 3.02 TB/s and cache 4.79 TB/s measured by one read+write stream "
                "(published HBM3 peak 3.35 TB/s); NVLink 450 GB/s each way (900 GB/s "
                "both ways, published); 989 TFLOP/s dense bf16 (published); effective "
                "fraction 0.60 measured"
            ),
        ),
        "h200": Hardware(
            "h200",
            60 * 2**20,
            4.26e12,
            450e9,
            989e12,
            H200_EFFECTIVE_FRACTION,
            cache_bytes_per_s=5.56e12,
            source=(
                "H200 SXM: L2 60 MiB as the device reports it; HBM 4.26 TB/s and cache "
                "5.56 TB/s measured by one read+write stream (published HBM3e peak "
                "4.8 TB/s); NVLink 450 GB/s each way (900 GB/s both ways, published); "
                "989 TFLOP/s dense bf16 (published); effective fraction 0.55 measured"
            ),
        ),
        "a100": Hardware(
            "a100",
            40 * 2**20,
            2.0e12,
            300e9,
            312e12,
            H100_EFFECTIVE_FRACTION,
            source=(
                "A100 SXM: L2 40 MiB as the device reports it (NVIDIA quotes 40 MB); "
                "published HBM2e 2.0 TB/s, NVLink 300 GB/s each way (600 GB/s both "
                "ways), 312 TFLOP/s dense bf16; effective fraction 0.60 assumed from "
                "the H100 measurement, not measured"
            ),
        ),
    }
)
"""Built-in profiles by lower-case name: ``"h100"``, ``"h200"``, ``"a100"``.

L2 sizes are the values the devices report (binary mebibytes). For the H100 and H200
the HBM and cache rates come from one measurement (an in-place bf16 read+write pass
repeated over one buffer in a CUDA graph, swept over buffer sizes), so that their ratio,
which sets every predicted speedup, is the measured one: 1.59x and 1.31x. The effective
fractions come from the same sweep (README, "Hardware figures"). Link rates are one
direction of the published NVLink totals; compute rates are published dense bf16 peaks.
The A100's figures are all published or assumed.
"""
