"""Byte-count parsing and formatting, and exact fractions (layerwise_fast.units)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerwise_fast.units import (
    INT64_MAX,
    UNIT_BYTES,
    display_width,
    format_bytes,
    pad,
    parse_bytes,
    parse_fraction,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50MB", 50 * 10**6),
        ("50MiB", 50 * 2**20),
        ("4.8e7", 48_000_000),
        ("1.5 GB", 1_500_000_000),
        ("512KiB", 512 * 1024),
        ("123", 123),
        ("  7 b ", 7),
        ("2mib", 2 * 2**20),
        ("1e3KB", 10**6),
        (".5KB", 500),
        ("+5B", 5),
        ("2TiB", 2 * 2**40),
        ("1 tb", 10**12),
        ("9223372036854775807", INT64_MAX),
        ("7EiB", 7 * 2**60),
        (5, 5),
        (np.int64(7), 7),
        (np.uint8(3), 3),
        (4.8e7, 48_000_000),
        (np.float32(1024.0), 1024),
        (INT64_MAX, INT64_MAX),
    ],
)
def test_parse_bytes_accepts(value: object, expected: int) -> None:
    result = parse_bytes(value)  # type: ignore[arg-type]
    assert result == expected
    assert type(result) is int


def test_parse_bytes_zero_only_when_not_positive() -> None:
    assert parse_bytes(0, positive=False) == 0
    assert parse_bytes("0 MB", positive=False) == 0
    with pytest.raises(ValueError, match=r"^capacity must be positive, got 0$"):
        parse_bytes(0)
    with pytest.raises(ValueError, match=r"^capacity must be positive, got 0 MB$"):
        parse_bytes("0 MB")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("50.0000001 MB", r"^capacity: 50\.0000001 MB is not a whole number of bytes "
                          r"\(50000000\.1 bytes\)$"),
        ("0.5B", r"^capacity: 0\.5B is not a whole number of bytes \(0\.5 bytes\)$"),
        (1.5, r"^capacity: 1\.5 is not a whole number of bytes"),
        ("1e-999999 MB", r"^capacity: 1e-999999 MB is not a whole number of bytes$"),
        (-1, r"^capacity must not be negative, got -1$"),
        ("-5MB", r"^capacity must not be negative, got -5MB$"),
        (-2.0, r"^capacity must not be negative, got -2\.0$"),
        (float("nan"), r"^capacity: nan is not a finite number$"),
        (float("inf"), r"^capacity: inf is not a finite number$"),
        ("nan", r"^capacity: nan is not a finite number$"),
        ("-Infinity", r"^capacity: -Infinity is not a finite number$"),
        (2**63, r"^capacity: 9223372036854775808 is beyond the int64 range "
                r"\(at most 9223372036854775807 bytes\)$"),
        ("8EiB", r"^capacity: 8EiB is beyond the int64 range"),
        ("1e999999999", r"^capacity: 1e999999999 is beyond the int64 range"),
        (1e300, r"^capacity: 1e\+300 is beyond the int64 range"),
        ("5 XB", r"^capacity: unknown unit 'XB' in '5 XB'; known units: B, KB, MB"),
        ("5 bytes", r"^capacity: unknown unit 'bytes'"),
        ("5 M B", r"^capacity: cannot read '5 M B' as a byte count; expected a number"),
        ("", r"^capacity: cannot read '' as a byte count"),
        ("MB", r"^capacity: cannot read 'MB' as a byte count"),
        ("1_000", r"^capacity: cannot read '1_000' as a byte count"),
        ("1" * 101, r"^capacity: '1111.*'\.\.\. is too long to be a quantity "
                    r"\(101 characters, at most 100\)$"),
    ],
)
def test_parse_bytes_rejects_values(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, r"^capacity must be a byte count, got the bool True$"),
        (np.bool_(False), r"^capacity must be a byte count, got the bool False$"),
        ([1], r"^capacity must be a byte count \(an int, a float, or a str such as '50MB'\), "
              r"got list \[1\]$"),
        (None, r"got NoneType None$"),
    ],
)
def test_parse_bytes_rejects_types(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        parse_bytes(value)  # type: ignore[arg-type]


def test_parse_bytes_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^l2: cannot read 'fifty' as a byte count"):
        parse_bytes("fifty", name="l2")
    with pytest.raises(ValueError, match=r"^buffer must not be negative, got -3"):
        parse_bytes(-3, name="buffer", positive=False)


@given(st.integers(min_value=1, max_value=INT64_MAX))
def test_parse_bytes_integers_round_trip(n: int) -> None:
    assert parse_bytes(n) == n
    assert parse_bytes(str(n)) == n
    assert parse_bytes(f"{n} B") == n


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(sorted(UNIT_BYTES)))
def test_parse_bytes_units_multiply_exactly(count: int, unit: str) -> None:
    expected = count * UNIT_BYTES[unit]
    for text in (f"{count}{unit}", f"{count} {unit.upper()}", f"{count}.000 {unit}"):
        if expected <= INT64_MAX:
            assert parse_bytes(text) == expected
        else:
            with pytest.raises(ValueError, match="beyond the int64 range"):
                parse_bytes(text)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (50_000_000, "50.0 MB"),
        (15 * 10**9, "15.0 GB"),
        (50 * 2**20, "52.4 MB"),
        (999_960_000, "1.0 GB"),
        (INT64_MAX, "9.2 EB"),
        (-1_500_000, "-1.5 MB"),
        (np.int64(2000), "2.0 KB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize("n", [1.0, True, "5", None])
def test_format_bytes_rejects_non_integers(n: object) -> None:
    with pytest.raises(TypeError, match=r"^format_bytes expects an integer byte count, got "):
        format_bytes(n)  # type: ignore[arg-type]


@given(st.integers(min_value=1000, max_value=INT64_MAX))
def test_format_bytes_reads_back_within_rounding(n: int) -> None:
    # One decimal on a figure of at least 1.0 is within 5% (plus float noise).
    assert abs(parse_bytes(format_bytes(n)) - n) <= n * 0.0501


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.6, Fraction(3, 5)),
        (np.float32(0.6), Fraction(3, 5)),
        (0.1, Fraction(1, 10)),
        ("3/5", Fraction(3, 5)),
        (" 11 / 20 ", Fraction(11, 20)),
        ("6e-1", Fraction(3, 5)),
        (Fraction(1, 3), Fraction(1, 3)),
        (1, Fraction(1)),
        (np.int32(2), Fraction(2)),
        ("1e-40", Fraction(1, 10**40)),  # the range's ends
        (10**30, Fraction(10**30)),
        (Fraction(3, 2**70), Fraction(3, 2**70)),  # a denominator beyond int64
    ],
)
def test_parse_fraction_is_exact(value: object, expected: Fraction) -> None:
    assert parse_fraction(value, name="ratio") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, r"^ratio must be greater than 0, got 0$"),
        (-0.5, ValueError, r"^ratio must be greater than 0, got -0\.5$"),
        ("3/2", ValueError, r"^ratio must be at most 1, got '3/2'$"),
        ("1/0", ValueError, r"^ratio='1/0' divides by zero$"),
        ("-1/2", ValueError, r"^ratio: cannot read '-1/2' as a number such as '0\.6' or '3/5'$"),
        ("half", ValueError, r"^ratio: cannot read 'half'"),
        ("nan", ValueError, r"^ratio: nan is not a finite number$"),
        (float("inf"), ValueError, r"^ratio: inf is not a finite number$"),
        ("1e999", ValueError, r"^ratio='1e999' is out of range"),
        (True, TypeError, r"^ratio must be a number, got the bool True$"),
        ([0.5], TypeError, r"^ratio must be a number or a str such as '3/5', got list"),
        ("1e-41", ValueError, r"^ratio='1e-41' is out of range \(\|exponent\| too large\)$"),
        (Fraction(1, 10**41), ValueError, r"^ratio must lie between 1e-40 and 1e30, got "
                                          r"Fraction\(1, 1{0}\)$".format("0" * 41)),
        (Fraction(10**41 + 1, 10**41 * 3), ValueError,
         r"^ratio has a denominator above 10\*\*40: Fraction\("),
        pytest.param(-10**5000, ValueError, r"^ratio must be greater than 0, got an integer of "
                     r"16610 bits$", id="an-int-too-long-to-print"),
        pytest.param(Fraction(1, 10**5000), ValueError, r"^ratio must lie between 1e-40 and "
                     r"1e30, got a fraction of 16610-bit terms$", id="a-fraction-too-long-to-print"),
    ],
)
def test_parse_fraction_rejects(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_fraction(value, name="ratio", maximum=1)  # type: ignore[arg-type]


def test_parse_fraction_range_stands_without_a_maximum() -> None:
    with pytest.raises(ValueError, match=r"^ratio must lie between 1e-40 and 1e30, got "
                                         r"10{29}1$"):
        parse_fraction(10**30 + 1, name="ratio")
    assert parse_fraction("9e29", name="ratio") == 9 * 10**29


def test_exponent_beyond_decimal_range_is_a_clear_error() -> None:
    # Found by fuzzing: Decimal() itself refuses exponents this large.
    with pytest.raises(ValueError, match=r"capacity: '055E55555555555555575555555555555' is out of range"):
        parse_bytes("055E55555555555555575555555555555")


@pytest.mark.parametrize(
    ("text", "width"),
    [("layers.0", 8), ("層の名前", 8), ("ｆｕｌｌ", 8), ("e\u0301", 1), ("a\u200bb", 2), ("", 0)],
)
def test_display_width_counts_terminal_columns(text: str, width: int) -> None:
    assert display_width(text) == width


def test_pad_fills_to_terminal_columns() -> None:
    assert pad("層", 4) == "層  " and pad("ab", 4, right=True) == "  ab"
    assert pad("層の名前", 4) == "層の名前"  # never cut
