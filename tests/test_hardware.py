"""Hardware profiles, custom devices, dict round trips and calibration files."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerwise_fast.hardware import (
    CALIBRATION_SCHEMA,
    DEFAULT_EFFECTIVE_FRACTION,
    PROFILES,
    CalibrationError,
    Hardware,
)
from layerwise_fast.units import INT64_MAX

MiB = 2**20


# -- built-in profiles ----------------------------------------------------------------


def test_profile_figures() -> None:
    h100, h200, a100 = (Hardware.profile(name) for name in ("h100", "h200", "a100"))
    assert (h100.l2_bytes, h100.hbm_bytes_per_s, h100.link_bytes_per_s, h100.flops_per_s) == (
        50 * MiB, 3.02e12, 450e9, 989e12)
    assert (h200.l2_bytes, h200.hbm_bytes_per_s, h200.link_bytes_per_s, h200.flops_per_s) == (
        60 * MiB, 4.26e12, 450e9, 989e12)
    assert (a100.l2_bytes, a100.hbm_bytes_per_s, a100.link_bytes_per_s, a100.flops_per_s) == (
        40 * MiB, 2.0e12, 300e9, 312e12)
    # the cache and HBM rates of a profile come from one measurement: their ratio is it
    assert round(h100.cache_bytes_per_s / h100.hbm_bytes_per_s, 2) == 1.59  # type: ignore[operator]
    assert round(h200.cache_bytes_per_s / h200.hbm_bytes_per_s, 2) == 1.31  # type: ignore[operator]
    assert h100.nominal_capacity == 52_428_800
    assert (h100.capacity, h200.capacity, a100.capacity) == (31_457_280, 34_603_008, 25_165_824)
    assert a100.cache_bytes_per_s is None
    assert "assumed" in a100.source and "measured" in h100.source


@pytest.mark.parametrize(("name", "falls_from_bytes"), [("h100", 32_000_000), ("h200", 36_000_000)])
def test_effective_fraction_follows_the_measured_plateau(name: str, falls_from_bytes: int) -> None:
    """The fraction is (where the rate starts to fall) / (reported L2), rounded down to 0.05."""
    device = Hardware.profile(name)
    derived = Fraction(math.floor(Fraction(falls_from_bytes, device.l2_bytes) * 20), 20)
    assert device.effective_fraction == derived
    assert device.capacity <= falls_from_bytes


def test_profile_lookup_is_case_insensitive_and_strict() -> None:
    assert Hardware.profile(" H100 ") is PROFILES["h100"]
    with pytest.raises(ValueError, match=r"^unknown hardware profile 'b200'; built-in profiles: "
                                         r"a100, h100, h200$"):
        Hardware.profile("b200")
    with pytest.raises(TypeError, match=r"^profile name must be a str, got int$"):
        Hardware.profile(100)  # type: ignore[arg-type]


def test_profiles_and_hardware_are_immutable() -> None:
    with pytest.raises(TypeError):
        PROFILES["x"] = PROFILES["h100"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["h100"].l2_bytes = 1  # type: ignore[misc]


def test_replace_derives_a_variant() -> None:
    half = dataclasses.replace(Hardware.profile("h100"), effective_fraction=Fraction(1, 2))
    assert half.capacity == 25 * MiB
    assert half.name == "h100"


# -- construction ---------------------------------------------------------------------


def _custom(**overrides: Any) -> Hardware:
    arguments: dict[str, Any] = {"l2": "50MiB", "hbm_bytes_per_s": 3e12,
                                 "link_bytes_per_s": 9e11, "flops_per_s": 1e15}
    arguments.update(overrides)
    return Hardware.custom("test", **arguments)


def test_a_name_that_utf8_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^name 'h\\ud800' cannot be written as UTF-8"):
        Hardware.custom("h\ud800", l2="50MiB", hbm_bytes_per_s=3e12, link_bytes_per_s=9e11,
                        flops_per_s=1e15)


def test_custom_reads_byte_strings_and_exact_fractions() -> None:
    device = _custom(l2="40 MB", effective_fraction=0.6)
    assert device.l2_bytes == 40_000_000
    assert device.effective_fraction == Fraction(3, 5)
    assert device.capacity == 24_000_000
    assert _custom().effective_fraction == DEFAULT_EFFECTIVE_FRACTION
    assert _custom(effective_fraction="1/3", l2=3).capacity == 1
    assert _custom(l2=52_428_800).source == "custom"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"l2": "50.5 B"}, ValueError, r"^l2: 50\.5 B is not a whole number of bytes"),
        ({"l2": 0}, ValueError, r"^l2 must be positive, got 0$"),
        ({"effective_fraction": 0}, ValueError, r"^effective_fraction must be greater than 0"),
        ({"effective_fraction": 1.5}, ValueError, r"^effective_fraction must be at most 1, "
                                                  r"got 1\.5$"),
        ({"hbm_bytes_per_s": -1.0}, ValueError, r"^hbm_bytes_per_s must be a finite number "
                                                r"of at least 1 \(per second\), got -1\.0$"),
        # Below 1 per second, a time derived from int64 bytes may leave the floats.
        ({"flops_per_s": 1e-300}, ValueError, r"^flops_per_s must be a finite number of at "
                                              r"least 1 \(per second\), got 1e-300$"),
        ({"link_bytes_per_s": 10**400}, ValueError, r"^link_bytes_per_s must be a finite "
                                                    r"number .*got an integer of 1329 bits$"),
        ({"l2": 1, "effective_fraction": "1/2"}, ValueError,
         r"^the effective capacity, floor\(l2_bytes x effective_fraction\) = floor\(1 x "
         r"1/2\), is 0 bytes; a device must hold at least 1 byte$"),
        ({"link_bytes_per_s": float("nan")}, ValueError, r"^link_bytes_per_s must be a finite"),
        ({"flops_per_s": True}, TypeError, r"^flops_per_s must be a number, got bool True$"),
        ({"flops_per_s": "1e15"}, TypeError, r"^flops_per_s must be a number, got str"),
        ({"cache_bytes_per_s": 0}, ValueError, r"^cache_bytes_per_s must be a finite number"),
    ],
)
def test_custom_rejects(overrides: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _custom(**overrides)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("", 1, 1.0, 1.0, 1.0), ValueError, r"^name must not be empty$"),
        ((5, 1, 1.0, 1.0, 1.0), TypeError, r"^name must be a str, got int$"),
        (("x", "50MB", 1.0, 1.0, 1.0), TypeError, r"^l2_bytes must be an int number of bytes, "
                                                  r"got str '50MB'$"),
        (("x", True, 1.0, 1.0, 1.0), TypeError, r"^l2_bytes must be an int number of bytes"),
        (("x", 0, 1.0, 1.0, 1.0), ValueError, r"^l2_bytes must be in \[1, 9223372036854775807\] "
                                              r"bytes, got 0$"),
        (("x", 2**63, 1.0, 1.0, 1.0), ValueError, r"^l2_bytes must be in \[1, "),
    ],
)
def test_constructor_rejects(arguments: tuple[Any, ...], error: type[Exception],
                             message: str) -> None:
    with pytest.raises(error, match=message):
        Hardware(*arguments)


# -- dict round trips -----------------------------------------------------------------

_rates = st.floats(min_value=1, max_value=1e20, allow_nan=False, allow_infinity=False)
_texts = st.text(st.characters(blacklist_categories=("Cs",)))  # UTF-8-encodable


@st.composite
def _hardware(draw: st.DrawFn) -> Hardware:
    denominator = draw(st.integers(min_value=1, max_value=10**9))
    numerator = draw(st.integers(min_value=1, max_value=denominator))
    hbm = draw(_rates)
    return Hardware(
        draw(_texts.filter(str.strip)),
        draw(st.integers(min_value=-(-denominator // numerator), max_value=INT64_MAX)),
        hbm, draw(_rates), draw(_rates),
        Fraction(numerator, denominator),
        cache_bytes_per_s=draw(st.none() | _rates.filter(lambda rate: rate >= hbm)),
        source=draw(_texts),
    )


@given(_hardware())
def test_dict_round_trip_through_json(device: Hardware) -> None:
    restored = Hardware.from_dict(json.loads(json.dumps(device.to_dict())))
    assert restored == device
    assert restored.capacity == device.capacity


def test_profiles_round_trip() -> None:
    for device in PROFILES.values():
        assert Hardware.from_dict(device.to_dict()) == device
    assert PROFILES["h100"].to_dict()["effective_fraction"] == "3/5"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": None}, r"^hardware description: missing field 'name'$"),
        ({"colour": "green"}, r"^hardware description: unknown field 'colour' \(known: schema, "),
        ({"schema": "other"}, r"^hardware description: 'schema' must be "
                              r"'layerwise_fast\.hardware', got 'other'$"),
        ({"version": 2}, r"^hardware description: unsupported version 2 \(this release reads "
                         r"version 1\)$"),
        ({"version": True}, r"^hardware description: unsupported version True"),
        ({"link_bytes_per_s": 10**400}, r"^link_bytes_per_s must be a finite number of at "
                                        r"least 1 \(per second\), got an integer of 1329 bits$"),
    ],
)
def test_from_dict_rejects(change: dict[str, Any], message: str) -> None:
    data = PROFILES["h100"].to_dict()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ValueError, match=message):
        Hardware.from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(TypeError, match=r"^hardware description must be a mapping, got list$"):
        Hardware.from_dict([])  # type: ignore[arg-type]


# -- calibration files ----------------------------------------------------------------


def _calibration(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": CALIBRATION_SCHEMA,
        "version": 1,
        "device_name": "NVIDIA H100 80GB HBM3",
        "l2_bytes": 52_428_800,
        "knee_bytes": 32_000_000,
        "plateau_bytes_per_s": 4.79e12,
        "hbm_bytes_per_s": 3.02e12,
        "sizes": [8_000_000, 16_000_000, 32_000_000, 64_000_000],
        "bytes_per_s": [4.1e12, 4.6e12, 4.7e12, 3.1e12],
    }
    document.update(changes)
    return document


def _write(tmp_path: Path, document: object, name: str = "cal.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_from_calibration_uses_the_measured_knee(tmp_path: Path) -> None:
    path = _write(tmp_path, _calibration(meta={"driver": "555.42"}))
    device = Hardware.from_calibration(path)
    assert device.capacity == 32_000_000
    assert device.effective_fraction == Fraction(32_000_000, 52_428_800)
    assert device.name == "NVIDIA H100 80GB HBM3"
    assert (device.hbm_bytes_per_s, device.cache_bytes_per_s) == (3.02e12, 4.79e12)
    assert (device.link_bytes_per_s, device.flops_per_s) == (450e9, 989e12)
    assert device.source == f"calibration file {path}"


def test_from_calibration_link_and_compute_sources(tmp_path: Path) -> None:
    own = _write(tmp_path, _calibration(link_bytes_per_s=1e11, flops_per_s=2e14), "own.json")
    assert (Hardware.from_calibration(own).link_bytes_per_s,
            Hardware.from_calibration(own).flops_per_s) == (1e11, 2e14)
    odd = _write(tmp_path, _calibration(device_name="Mystery GPU"), "odd.json")
    assert Hardware.from_calibration(odd, base="a100").link_bytes_per_s == 300e9
    assert Hardware.from_calibration(odd, base=PROFILES["h200"]).flops_per_s == 989e12
    with pytest.raises(CalibrationError, match=r"fields 'link_bytes_per_s' and 'flops_per_s' "
                                               r"are needed: .*'Mystery GPU' matches no single "
                                               r"built-in profile; add them to the file, or pass "
                                               r"base= to Hardware.from_calibration"):
        Hardware.from_calibration(odd)
    with pytest.raises(ValueError, match=r"^unknown hardware profile 'v100'"):
        Hardware.from_calibration(odd, base="v100")
    dashed = _write(tmp_path, _calibration(device_name="NVIDIA A100-SXM4-80GB"), "a.json")
    assert Hardware.from_calibration(dashed).link_bytes_per_s == 300e9


@pytest.mark.parametrize("device_name", ["NVIDIA H100 PCIe", "NVIDIA A100-PCIE-40GB",
                                         "NVIDIA H100 NVL", "NVIDIA H200 NVL"])
def test_from_calibration_does_not_lend_sxm_rates_to_other_cards(tmp_path: Path,
                                                                 device_name: str) -> None:
    path = _write(tmp_path, _calibration(device_name=device_name))
    with pytest.raises(CalibrationError, match=rf"device_name {device_name!r} is a (PCIe|NVL) "
                                               r"card, whose link and compute rates differ"):
        Hardware.from_calibration(path)
    assert Hardware.from_calibration(path, base="h100").link_bytes_per_s == 450e9
    own = _write(tmp_path, _calibration(device_name=device_name, link_bytes_per_s=64e9,
                                        flops_per_s=756e12), "own.json")
    assert Hardware.from_calibration(own).link_bytes_per_s == 64e9


def test_a_cache_slower_than_hbm_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^cache_bytes_per_s \(3\.35e\+09\) is below "
                                         r"hbm_bytes_per_s \(3\.35e\+12\): an L2 is never slower"):
        Hardware.custom("x", l2=1000, hbm_bytes_per_s=3.35e12, link_bytes_per_s=1.0,
                        flops_per_s=1.0, cache_bytes_per_s=3.35e9)
    same = Hardware.custom("x", l2=1000, hbm_bytes_per_s=5.0, link_bytes_per_s=1.0,
                           flops_per_s=1.0, cache_bytes_per_s=5.0)
    assert same.cache_bytes_per_s == same.hbm_bytes_per_s


def test_calibration_file_problems(tmp_path: Path) -> None:
    cases: list[tuple[Path, str]] = [
        (tmp_path / "absent.json", r"calibration file '.*absent\.json' does not exist$"),
        (tmp_path, r"calibration file '.*' is a directory, not a file$"),
    ]
    raw = {
        "binary.json": (b"\xff\xfe{}", r"is not UTF-8 text \(byte 0xff at offset 0\)$"),
        "empty.json": (b"  \n", r"is empty$"),
        "cut.json": (json.dumps(_calibration()).encode()[:60], r"ends early \(truncated\?\)"),
        "bad.json": (b'{"schema": }', r"is not valid JSON: Expecting value \(line 1, "
                                      r"column 12\)$"),
        "nan.json": (b'{"l2_bytes": NaN}', r"is not valid JSON: non-standard constant NaN"),
    }
    for name, (content, message) in raw.items():
        (tmp_path / name).write_bytes(content)
        cases.append((tmp_path / name, message))
    for path, message in cases:
        with pytest.raises(CalibrationError, match=message):
            Hardware.from_calibration(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], r": the top level must be a JSON object, got array$"),
        (_calibration(schema="layerwise_fast.layers"),
         r": field 'schema' must be 'layerwise_fast\.calibration', got 'layerwise_fast\.layers'$"),
        (_calibration(version=2), r": unsupported version 2 \(this release reads version 1\)$"),
        (_calibration(version="1"), r": unsupported version '1'"),
        (_calibration(knee=1), r": unknown field 'knee' \(known: schema, version, device_name"),
        (_calibration(device_name=""), r": field 'device_name' must be a non-empty string, "
                                       r"got string ''$"),
        (_calibration(l2_bytes="52428800"), r": field 'l2_bytes' must be an integer number of "
                                            r"bytes, got string '52428800'$"),
        (_calibration(l2_bytes=5.24e7), r": field 'l2_bytes' must be an integer number of bytes, "
                                        r"got number 52400000\.0$"),
        (_calibration(l2_bytes=True), r": field 'l2_bytes' must be an integer number of bytes, "
                                      r"got boolean True$"),
        (_calibration(knee_bytes=0), r": field 'knee_bytes' must be in \[1, "),
        (_calibration(knee_bytes=60_000_000), r": field 'knee_bytes' \(60000000\) exceeds "
                                              r"'l2_bytes' \(52428800\)$"),
        (_calibration(plateau_bytes_per_s=-1), r": field 'plateau_bytes_per_s' must be at "
                                               r"least 1 \(per second\), got -1$"),
        (_calibration(link_bytes_per_s=10**400), r": field 'link_bytes_per_s' must be a finite "
                                                 r"number, got an integer of 1329 bits$"),
        (_calibration(device_name="H100 \udc80"), r": field 'device_name' 'H100 \\udc80' "
                                                  r"cannot be written as UTF-8"),
        (_calibration(hbm_bytes_per_s="fast"), r": field 'hbm_bytes_per_s' must be a number, "
                                               r"got string 'fast'$"),
        (_calibration(plateau_bytes_per_s=2e12), r": field 'plateau_bytes_per_s' \(2000000000000\.0\) "
                                                 r"is below 'hbm_bytes_per_s' \(3020000000000\.0\)"),
        (_calibration(flops_per_s=None), r": field 'flops_per_s' must be a number, got null"),
        (_calibration(meta=[]), r": field 'meta' must be an object, got array$"),
        (_calibration(sizes={}), r": field 'sizes' must be a non-empty list, got object$"),
        (_calibration(bytes_per_s=[]), r": field 'bytes_per_s' must be a non-empty list"),
        (_calibration(sizes=[1, 2, 3]), r": 'sizes' has 3 entries but 'bytes_per_s' has 4$"),
        (_calibration(sizes=[8, 16, 16, 32_000_000]), r": 'sizes' must be strictly increasing; "
                                                      r"sizes\[2\] = 16 follows 16$"),
        (_calibration(sizes=[8, False, 16, 32]), r": sizes\[1\] must be a positive integer "
                                                 r"number of bytes, got False$"),
        (_calibration(bytes_per_s=[1.0, 0, 1.0, 1.0]), r": field 'bytes_per_s\[1\]' must be "
                                                       r"at least 1 \(per second\), got 0$"),
        (_calibration(sizes=[1, 2, 3, 4]), r": 'knee_bytes' \(32000000\) lies outside the "
                                           r"sweep \[1, 4\]$"),
    ],
)
def test_calibration_content_problems(tmp_path: Path, document: object, message: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(CalibrationError, match=r"^calibration file '.*cal\.json'" + message):
        Hardware.from_calibration(path)


@pytest.mark.parametrize("field", ["schema", "version", "device_name", "l2_bytes", "knee_bytes",
                                   "plateau_bytes_per_s", "hbm_bytes_per_s", "sizes",
                                   "bytes_per_s"])
def test_calibration_missing_field(tmp_path: Path, field: str) -> None:
    document = _calibration()
    del document[field]
    path = _write(tmp_path, document)
    with pytest.raises(CalibrationError, match=rf"^calibration file '.*': missing field "
                                               rf"'{field}'$"):
        Hardware.from_calibration(path)


def test_calibration_error_is_a_value_error() -> None:
    assert issubclass(CalibrationError, ValueError)
