"""Exact quantities from user input: byte counts, fractions, and JSON documents.

Byte counts are Python ``int`` values within the int64 range, as the planner's numeric
contract requires. Units are case-insensitive:

- ``B``: one byte;
- decimal ``KB`` (10**3), ``MB`` (10**6), ``GB`` (10**9), ``TB`` (10**12), ``PB``, ``EB``;
- binary ``KiB`` (2**10), ``MiB`` (2**20), ``GiB`` (2**30), ``TiB`` (2**40), ``PiB``,
  ``EiB``.

Numbers are read exactly (``"4.8e7"`` is 48,000,000 with no float rounding), and the
result must be a whole number of bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import secrets
import stat
import sys
import unicodedata
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, BinaryIO, Callable, Final, Iterable, Iterator, Mapping, NoReturn, TypeGuard, TypeVar, Union

import numpy as np
import numpy.typing as npt

from . import _core

__all__ = [
    "INT64_MAX",
    "UNIT_BYTES",
    "ByteCount",
    "FractionLike",
    "parse_bytes",
    "parse_fraction",
    "format_bytes",
    "max_file_bytes",
    "InputBytes",
    "read_input_file",
    "read_standard_input",
    "STDIN_PROMPT",
    "write_bytes_atomically",
    "write_text_atomically",
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_FILE_BYTES_ENV",
    "UTF8_BOM",
]

_Checked = TypeVar("_Checked")

INT64_MAX: Final[int] = 2**63 - 1
"""Largest byte count the planner accepts (2**63 - 1)."""

UNIT_BYTES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "b": 1,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "tb": 10**12,
        "pb": 10**15,
        "eb": 10**18,
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "tib": 2**40,
        "pib": 2**50,
        "eib": 2**60,
    }
)
"""Bytes per unit, keyed by the lower-case unit name."""

ByteCount = Union[int, float, str, np.integer, np.floating]
"""What :func:`parse_bytes` accepts."""

FractionLike = Union[int, float, str, Fraction, np.integer, np.floating]
"""What :func:`parse_fraction` accepts."""

UTF8_BOM: Final[bytes] = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark, skipped at the start of input files."""

_UNIT_LIST: Final[str] = "B, KB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB"
_MAX_TEXT_CHARS: Final[int] = 100
# A decimal number whose leading digit sits above 10**30 exceeds int64 in any unit; one
# whose leading digit sits below 10**-40 is under one byte even in EiB. Rejecting both
# before exact arithmetic keeps "1e999999999" from building a huge integer.
_MAX_DECIMAL_EXPONENT: Final[int] = 30
_MIN_DECIMAL_EXPONENT: Final[int] = -40
# Ratios keep to the decimal range text can express, and to the precision of the smallest
# (a denominator of at most 10**40), so sizes built from them stay within floats and
# their "p/q" text stays short.
_RATIO_RANGE: Final[tuple[Fraction, Fraction]] = (
    Fraction(1, 10**-_MIN_DECIMAL_EXPONENT), Fraction(10**_MAX_DECIMAL_EXPONENT))
MAX_RATIO_DENOMINATOR: Final[int] = 10**-_MIN_DECIMAL_EXPONENT
_NUMBER: Final[str] = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY_RE: Final = re.compile(rf"\s*({_NUMBER})\s*([A-Za-z]*)\s*", re.ASCII)
_NUMBER_FRAGMENT_RE: Final = re.compile(r"[-+.eE0-9]+", re.ASCII)
_ESCAPE_FRAGMENT_RE: Final = re.compile(
    r"u[0-9a-fA-F]{0,4}(?:\\(?:u[0-9a-fA-F]{0,3})?)?", re.ASCII)
_RATIO_RE: Final = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*", re.ASCII)
_NOT_FINITE: Final = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity",
                                "+infinity", "-infinity"})
_FORMAT_UNITS: Final[tuple[str, ...]] = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def parse_bytes(value: ByteCount, *, name: str = "capacity", positive: bool = True) -> int:
    """Read a byte count exactly and return it as an ``int`` in ``[0, 2**63 - 1]``.

    Accepts an ``int`` or numpy integer; a finite integral ``float`` or numpy float
    (``4.8e7``); or a string of a number and an optional unit (``"50MB"``, ``"50 MiB"``,
    ``"1.5 GB"``, ``"512KiB"``, ``"4.8e7"``, ``"123"``; see the module docstring for the
    units). ``bool`` is refused.

    Args:
        value: the quantity to read.
        name: the argument's name, used in error messages.
        positive: refuse zero as well as negative values (the default).

    Raises:
        TypeError: ``value`` is not one of the accepted types.
        ValueError: the text cannot be read, the unit is unknown, the value is NaN or
            infinite, negative (or zero with ``positive``), beyond int64, or not a whole
            number of bytes. The message names ``name`` and the value.
    """
    exact, shown = _exact_quantity(value, name)
    return _whole_bytes(exact, shown, name=name, positive=positive)


def parse_fraction(
    value: FractionLike, *, name: str, maximum: int | Fraction | None = None
) -> Fraction:
    """Read a positive ratio exactly, as a :class:`fractions.Fraction`.

    Accepts an ``int``; a ``Fraction``; a finite ``float`` or numpy float, taken as the
    shortest decimal that prints as it (``0.6`` means exactly 3/5, not the nearest binary
    double); or a string such as ``"0.6"``, ``"3/5"`` or ``"6e-1"``. ``bool`` is refused.

    Args:
        value: the ratio to read.
        name: the argument's name, used in error messages.
        maximum: an inclusive upper bound, or ``None`` for none.

    Raises:
        TypeError: ``value`` is not one of the accepted types.
        ValueError: unreadable text, NaN or infinity, a value ``<= 0``, one above
            ``maximum``, one outside ``1e-40 .. 1e30``, or a denominator above ``10**40``.
    """
    ratio = _exact_ratio(value, name)
    check_ratio(ratio, name, short_repr(value), maximum)
    return ratio


def check_ratio(ratio: Fraction, name: str, shown: str,
                maximum: int | Fraction | None = None) -> None:
    """The checks of :func:`parse_fraction` on an exact ratio; ``shown`` is how errors
    show it."""
    if ratio <= 0:
        raise ValueError(f"{name} must be greater than 0, got {shown}")
    if maximum is not None and ratio > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {shown}")
    low, high = _RATIO_RANGE
    if not low <= ratio <= high:
        raise ValueError(f"{name} must lie between 1e-40 and 1e30, got {shown}")
    if ratio.denominator > MAX_RATIO_DENOMINATOR:
        raise ValueError(f"{name} has a denominator above 10**40: {shown}")


def format_bytes(n: int | np.integer) -> str:
    """Format a byte count for people, in decimal units with one decimal place.

    Counts below 1000 print as whole bytes (``"512 B"``); larger ones use the largest
    decimal unit (KB = 10**3, MB = 10**6, GB, TB, PB, EB) that keeps the figure at or
    above 1, rounded to one decimal (``50_000_000`` -> ``"50.0 MB"``, 50 MiB ->
    ``"52.4 MB"``). Negative counts (a deficit) keep their sign. The text is for reading,
    not for exact round trips: :func:`parse_bytes` reads it back only to within the
    rounding.

    Raises:
        TypeError: ``n`` is not an integer (``bool`` included).
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"format_bytes expects an integer byte count, got {type(n).__name__}")
    count = int(n)
    sign = "-" if count < 0 else ""
    magnitude = abs(count)
    if magnitude < 1000:
        return f"{sign}{magnitude} B"
    power = min(len(str(magnitude)) - 1, 3 * (len(_FORMAT_UNITS) - 1)) // 3
    text = f"{magnitude / 1000**power:.1f}"
    if text == "1000.0" and power < len(_FORMAT_UNITS) - 1:
        power += 1
        text = f"{magnitude / 1000**power:.1f}"
    return f"{sign}{text} {_FORMAT_UNITS[power]}"


def _exact_quantity(value: object, name: str) -> tuple[Fraction, str]:
    """Return the exact value of a byte-count argument and the text to show for it."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a byte count, got the bool {value}")
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value)), str(int(value))
    if isinstance(value, (float, np.floating)):
        _require_finite(float(value), name, str(value))
        return Fraction(float(value)), str(value)
    if isinstance(value, str):
        return _parse_quantity_text(value, name), value.strip()
    raise TypeError(
        f"{name} must be a byte count (an int, a float, or a str such as '50MB'), "
        f"got {type(value).__name__} {value!r}"
    )


def _parse_quantity_text(text: str, name: str) -> Fraction:
    """Read ``"<number> <unit>"`` exactly, in bytes."""
    _check_text(text, name)
    match = _QUANTITY_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{name}: cannot read {text!r} as a byte count; expected a number with an "
            f"optional unit ({_UNIT_LIST}), e.g. '50MB' or '512KiB'"
        )
    number, unit = match.groups()
    multiplier = UNIT_BYTES.get(unit.lower() if unit else "b")
    if multiplier is None:
        raise ValueError(f"{name}: unknown unit {unit!r} in {text!r}; known units: {_UNIT_LIST}")
    return _exact_decimal(number, name, text) * multiplier


def _exact_decimal(number: str, name: str, text: str) -> Fraction:
    """Convert decimal text to a Fraction, refusing exponents too far out to matter."""
    decimal = _decimal_or_error(number, name, text)
    if decimal.is_zero():
        return Fraction(0)
    if decimal < 0:
        raise ValueError(f"{name} must not be negative, got {text.strip()}")
    if decimal.adjusted() > _MAX_DECIMAL_EXPONENT:
        raise ValueError(
            f"{name}: {text.strip()} is beyond the int64 range (at most {INT64_MAX} bytes)"
        )
    if decimal.adjusted() < _MIN_DECIMAL_EXPONENT:
        raise ValueError(f"{name}: {text.strip()} is not a whole number of bytes")
    return Fraction(decimal)


def _whole_bytes(exact: Fraction, shown: str, *, name: str, positive: bool) -> int:
    """Check range and integrality of an exact byte count."""
    if exact < 0:
        raise ValueError(f"{name} must not be negative, got {shown}")
    if exact == 0 and positive:
        raise ValueError(f"{name} must be positive, got {shown}")
    if exact > INT64_MAX:
        raise ValueError(f"{name}: {shown} is beyond the int64 range (at most {INT64_MAX} bytes)")
    if exact.denominator != 1:
        raise ValueError(
            f"{name}: {shown} is not a whole number of bytes ({_decimal_text(exact)} bytes)"
        )
    return exact.numerator


def short_repr(value: object) -> str:
    """``repr(value)``, or only the size of an integer or fraction too long to print
    usefully (terms beyond about 100 digits)."""
    if isinstance(value, Fraction):
        bits = max(value.numerator.bit_length(), value.denominator.bit_length())
        size = f"a fraction of {bits}-bit terms"
    elif isinstance(value, int) and not isinstance(value, bool):
        bits = value.bit_length()
        size = f"an integer of {bits} bits"
    else:
        return repr(value)
    return size if bits > _MAX_TEXT_CHARS * 10 // 3 else repr(value)


def _exact_ratio(value: object, name: str) -> Fraction:
    """Exact value of a ratio argument (see :func:`parse_fraction`)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got the bool {value}")
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (float, np.floating)):
        _require_finite(float(value), name, str(value))
        return Fraction(str(value))
    if isinstance(value, str):
        return _parse_ratio_text(value, name)
    raise TypeError(
        f"{name} must be a number or a str such as '3/5', got {type(value).__name__} {value!r}"
    )


def _parse_ratio_text(text: str, name: str) -> Fraction:
    """Read ``"3/5"`` or a decimal number exactly."""
    _check_text(text, name)
    ratio = _RATIO_RE.fullmatch(text)
    if ratio is not None:
        numerator, denominator = (int(part) for part in ratio.groups())
        if denominator == 0:
            raise ValueError(f"{name}={text!r} divides by zero")
        return Fraction(numerator, denominator)
    if re.fullmatch(rf"\s*{_NUMBER}\s*", text, re.ASCII) is None:
        raise ValueError(f"{name}: cannot read {text!r} as a number such as '0.6' or '3/5'")
    decimal = _decimal_or_error(text.strip(), name, text)
    if not decimal.is_zero() and not (
        _MIN_DECIMAL_EXPONENT <= decimal.adjusted() <= _MAX_DECIMAL_EXPONENT
    ):
        raise ValueError(f"{name}={text!r} is out of range (|exponent| too large)")
    return Fraction(decimal)


def _decimal_or_error(number: str, name: str, text: str) -> Decimal:
    """Decimal(number), or a ValueError when its exponent is beyond what Decimal holds
    ("1e99999999999999999999")."""
    try:
        return Decimal(number)
    except InvalidOperation:
        raise ValueError(f"{name}: {text.strip()!r} is out of range (|exponent| too large)") from None


def _check_text(text: str, name: str) -> None:
    """Refuse text too long to be a quantity, and the names of NaN and infinity."""
    if len(text) > _MAX_TEXT_CHARS:
        raise ValueError(
            f"{name}: {text[:24]!r}... is too long to be a quantity "
            f"({len(text)} characters, at most {_MAX_TEXT_CHARS})"
        )
    if text.strip().lower() in _NOT_FINITE:
        raise ValueError(f"{name}: {text.strip()} is not a finite number")


def _require_finite(number: float, name: str, shown: str) -> None:
    if not math.isfinite(number):
        raise ValueError(f"{name}: {shown} is not a finite number")


def _decimal_text(exact: Fraction) -> str:
    """Show a non-integral byte count compactly (exact for terminating decimals)."""
    return repr(float(exact))


MAX_FILE_BYTES_ENV: Final[str] = "LAYERWISE_FAST_MAX_FILE_BYTES"
"""Environment variable that raises (or lowers) the size limit on input files."""

DEFAULT_MAX_FILE_BYTES: Final[int] = 2**30
"""Input files (layer tables, plans, configs, calibrations) larger than this, 1 GiB, are
refused before they are read, unless LAYERWISE_FAST_MAX_FILE_BYTES says otherwise."""


def max_file_bytes() -> int:
    """The size limit on input files: LAYERWISE_FAST_MAX_FILE_BYTES (e.g. "4GiB") or 1 GiB."""
    configured = os.environ.get(MAX_FILE_BYTES_ENV)
    return DEFAULT_MAX_FILE_BYTES if configured is None else parse_bytes(configured, name=MAX_FILE_BYTES_ENV)


def _read_json_document(
    path: str | os.PathLike[str], *, what: str, error: type[ValueError]
) -> object:
    """Load a UTF-8 JSON file from an untrusted source, turning every way it can fail
    into one ``error``.

    ``what`` names the file's role (``"layers file"``) and starts each message, followed
    by the path: a missing file, a directory, a FIFO, socket or device (refused without
    opening it, which could block), a file over the size limit (refused before it is
    read; see :func:`max_file_bytes`), an unreadable file, bytes that are not UTF-8
    (with the offset), JSON that is malformed, ends early, nests too deeply or holds a
    number too long to read. No pickle, no eval: plain JSON only. The original
    exception is chained as the cause.
    """
    label = f"{what} {os.fspath(path)!r}"
    return _decode_json(read_input_file(path, what=what, error=error), label, error)


def _load_json_checked(
    path: str | os.PathLike[str], *, what: str, error: type[ValueError],
    check: Callable[[object], _Checked],
    row_columns: tuple[str, Callable[[object, int], _Checked | None]] | None = None,
) -> _Checked:
    """``check`` applied to the JSON value of a large file, read by the native reader.

    The native reader gives the json module's value, except that a non-empty array of
    integers that all fit int64 is an int64 numpy array, several times faster. Whatever
    it declines is read as :func:`_read_json_document` reads it. When ``check`` rejects
    the value (raising ``error``, or any ValueError or TypeError, as comparing an array
    where a string belongs does), the file is read again by the json module and checked
    again: that reading decides, and its messages quote JSON values as lists, never as
    arrays.

    With ``row_columns = (key, check_columns)``, a file whose top-level ``key`` holds
    rows (objects with the same keys and scalar values) is first read with those rows
    as columns (field -> int64 array or list), never as one dict per row, and given to
    ``check_columns(document, rows)``; where that returns ``None`` or raises (anything
    it does not accept as it stands), or the rows have another shape, the file is read
    and checked as above, which words the error. A file without rows under ``key`` is
    parsed once: the row-columns reading of it is the value described above.
    """
    label = f"{what} {os.fspath(path)!r}"
    raw = read_input_file(path, what=what, error=error).removeprefix(UTF8_BOM)
    fast: object = None
    if row_columns is not None:
        key, check_columns = row_columns
        try:
            fast, rows = _core.json_loads_row_columns(raw, key)
            checked = check_columns(fast, rows) if rows else None
        except (ValueError, TypeError):  # declined, or refused: the full reading words it
            fast, rows, checked = None, 0, None
        if checked is not None:
            return checked
        if rows:  # rows that the columns' checks refused: read them as json.loads does
            fast = None
    if fast is None:  # without rows, the row-columns value is already json.loads's
        try:
            fast = _core.json_loads(raw)
        except ValueError:  # declined: the json module reads it, or says what is wrong
            return check(_decode_json(raw, label, error))
    try:
        return check(fast)
    except (ValueError, TypeError):  # `error`, or an array where the check expects a list
        return check(_decode_json(raw, label, error))


@dataclass(frozen=True)
class InputBytes:
    """Input already read, such as standard input, given where a file path is expected:
    the readers here take its ``data`` as the file's bytes, and messages name it ``name``
    (its ``os.fspath``). For input only: code that does not know this type (a writer,
    ``numpy.load``) would take ``name`` for a path."""

    name: str
    data: bytes = field(repr=False, compare=False)

    def __fspath__(self) -> str:
        return self.name


def read_input_file(path: str | os.PathLike[str], *, what: str, error: type[ValueError]) -> bytes:
    """The bytes of an input file, checked before it is opened: it must exist, be a
    regular file (a FIFO could block forever) and be within :func:`max_file_bytes`.
    Each failure raises ``error`` with a message that starts with ``what`` and the path."""
    return _read_checked(path, what=what, error=error, at_most=None)


def read_input_head(path: str | os.PathLike[str], size: int, *, what: str,
                    error: type[ValueError]) -> bytes:
    """The first ``size`` bytes of an input file, with :func:`read_input_file`'s checks."""
    return _read_checked(path, what=what, error=error, at_most=size)


def _read_checked(path: str | os.PathLike[str], *, what: str, error: type[ValueError],
                  at_most: int | None) -> bytes:
    if isinstance(path, InputBytes):  # read, and held to the limit, where it was read
        return path.data if at_most is None else path.data[:at_most]
    label = f"{what} {os.fspath(path)!r}"
    limit = max_file_bytes()
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{label} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{label} is not a regular file (a FIFO, socket or device); give the path of a file")
        if info.st_size > limit:
            raise _too_big(error, label, info.st_size, limit)
        with open(path, "rb") as handle:
            if at_most is not None:
                return handle.read(at_most)
            raw = _read_within(handle, info.st_size, limit)
    except FileNotFoundError as exc:
        raise error(f"{label} does not exist") from exc
    except OSError as exc:
        raise error(f"{label} cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > limit:  # it grew after the check
        raise _too_big(error, label, len(raw), limit)
    return raw


def _read_within(handle: BinaryIO, expected: int, limit: int) -> bytes:
    """The file's bytes, up to limit + 1: one read of the size it had (``expected``; 0 for
    a stream), then (if it grew since, or holds more) pieces of 1 MiB, so that no buffer
    of the whole limit is ever allocated."""
    raw = handle.read(min(expected, limit) + 1)
    if len(raw) <= expected:
        return raw
    parts, size = [raw], len(raw)
    while size <= limit:
        more = handle.read(min(1 << 20, limit + 1 - size))
        if not more:
            break
        parts.append(more)
        size += len(more)
    return b"".join(parts)


STDIN_PROMPT: Final[str] = ("layerwise-fast: reading {what} from standard input; end it with "
                             "Ctrl-D (Ctrl-Z, Enter on Windows)")
"""What the command line says before it reads a terminal, with ``what`` it reads."""


def read_standard_input(*, error: type[ValueError], prompt: str | None = None) -> bytes:
    """Standard input, whole, within :func:`max_file_bytes`; ``error`` when it holds more.
    ``prompt`` goes to standard error first where standard input is a terminal, whose
    user may not know that it is being read."""
    if prompt is not None and sys.stdin.isatty():
        print(prompt, file=sys.stderr, flush=True)
    limit = max_file_bytes()
    raw = _read_within(sys.stdin.buffer, 0, limit)  # a stream: its size is not known
    if len(raw) > limit:
        raise _too_big(error, "standard input", None, limit)
    return raw


def _too_big(error: type[ValueError], label: str, size: int | None, limit: int) -> ValueError:
    """``size`` None: more than ``limit`` (a stream, whose size is not known)."""
    holds = "holds" if size is None else f"is {size} bytes,"
    return error(f"{label} {holds} more than the limit of {limit} bytes; to read it anyway, "
                 f"raise the limit with the environment variable {MAX_FILE_BYTES_ENV} (e.g. {MAX_FILE_BYTES_ENV}=8GiB)")


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text to ``path`` through a temporary file in the same folder and a
    rename, so that a failure never leaves a truncated file over an existing one.

    Raises:
        OSError: the file cannot be written (the temporary file is removed).
    """
    write_bytes_atomically(path, _utf8(text))


def _utf8(text: str) -> Iterator[bytes]:
    yield text.encode("utf-8") if isinstance(text, str) else text  # the write rejects others


def write_bytes_atomically(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` one after the other to ``path``, as :func:`write_text_atomically`
    writes text: through a temporary file, fsync and a rename.

    A symbolic link stays: the file it points to is replaced. A new file gets the mode
    that the umask allows, a replaced one keeps its own. A path that is not a regular
    file (a FIFO, a terminal, ``/dev/null``) is written to directly, as a shell
    redirection would.

    Raises:
        OSError: the file cannot be written (the temporary file is removed); the
            message names ``path``.
    """
    label = os.fspath(path)
    if not label:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory (the path is empty)", label)
    if label.endswith(os.sep) or (os.altsep and label.endswith(os.altsep)):
        raise IsADirectoryError(errno.EISDIR, "Is a directory (the path ends in a separator)", label)
    try:
        existing = os.stat(label)  # through links, /dev/stdout's to a pipe included
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, label) from exc
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", label)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_in_place(label, chunks)
        return
    target = os.path.realpath(label)  # a file, or none yet: replace it where the link points
    try:
        descriptor, temporary = _create_beside(target)
        if existing is not None:
            os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
    except OSError as exc:  # name the file asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, label) from exc
    try:
        with open(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename != label:
            raise OSError(exc.errno, exc.strerror, label) from exc
        raise


def _create_beside(target: str) -> tuple[int, str]:
    """A new, empty file in ``target``'s folder, created with mode 0o666 (so the umask
    applies, as for any new file), and its path."""
    folder, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = os.path.join(folder, f".tmp-{secrets.token_hex(6)}-{name}")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.path.join(folder, ".tmp-*"))


def _write_in_place(label: str, chunks: Iterable[bytes]) -> None:
    try:
        with open(label, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, label) from exc


def _decode_json(raw: bytes, label: str, error: type[ValueError]) -> object:
    raw = raw.removeprefix(UTF8_BOM)  # as some editors save UTF-8 (RFC 8259 allows ignoring it)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise error(f"{label} ends early (truncated?) inside a UTF-8 character "
                        f"at offset {exc.start}") from exc
        raise error(
            f"{label} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant,
                          object_pairs_hook=_object_with_unique_keys)
    except _RepeatedKeyError as exc:
        raise error(f"{label}: the key {exc.key!r} appears twice in one object; which "
                    f"value is meant is unclear") from None
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise error(f"{label} is empty") from exc
        if _ends_early(text, exc):
            raise error(f"{label} ends early (truncated?): {exc.msg} "
                        f"(line {exc.lineno}, column {exc.colno})") from exc
        raise error(
            f"{label} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except _ConstantError as exc:
        raise error(f"{label} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise error(f"{label} nests arrays or objects too deeply to read") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        digits = sys.get_int_max_str_digits()
        raise error(f"{label} holds a value that cannot be read: an integer of more than "
                    f"{digits} digits") from exc


class _RepeatedKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_with_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json.loads keeps the last)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return result


def _ends_early(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether a decoding error comes from the text stopping mid-document.

    True when the error sits at the end, inside a string that never closes, on a final
    fragment of a literal or number (``nu``, ``-``, ``1e``), or on an unfinished
    ``\\uXXXX`` escape.
    """
    if exc.msg.startswith("Unterminated string"):
        return True
    if exc.msg.startswith("Extra data"):  # a whole document, then more
        return False
    tail = text[exc.pos:].strip()
    if not tail or _ESCAPE_FRAGMENT_RE.fullmatch(tail):
        return True
    literal_start = any(word.startswith(tail) for word in ("true", "false", "null"))
    return literal_start or _NUMBER_FRAGMENT_RE.fullmatch(tail) is not None


class _ConstantError(Exception):
    """Raised for the non-standard JSON constants NaN and Infinity."""


def _refuse_constant(token: str) -> NoReturn:
    raise _ConstantError(f"non-standard constant {token} is not allowed")


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9 (``str.isdigit`` also takes
    superscripts and other scripts' digits)."""
    return text.isascii() and text.isdigit()


MAX_OPTION_DIGITS: Final[int] = 30
"""The most digits an integer command-line option may have: far beyond every option's
limit, and short enough that ``int()`` never meets Python's digit limit."""


def integer_argument(text: str) -> int:
    """An integer command-line option: an optional sign and the digits 0-9, at most
    :data:`MAX_OPTION_DIGITS` of them; the option's own check then judges the range
    (argparse names the option)."""
    body = text.strip()
    body = body[1:] if body[:1] in ("+", "-") else body
    if not ascii_digits(body):
        raise argparse.ArgumentTypeError(
            f"must be a whole number written with the digits 0-9, got {text!r}")
    if len(body) > MAX_OPTION_DIGITS:
        raise argparse.ArgumentTypeError(f"{body[:12]}... has {len(body)} digits, far beyond "
                                         f"any limit of this option")
    return int(text)


def exact_total(column: npt.NDArray[np.int64]) -> int:
    """The sum of a column of non-negative int64 counts as an exact Python int (a sum of
    per-group bytes may exceed int64 though every entry fits)."""
    if not column.size:
        return 0
    if int(column.max()) <= INT64_MAX // column.size:
        return int(column.sum())
    return sum(column.tolist())


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate, such as
    ``os.fsdecode`` makes of a file name's undecodable bytes)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_name(text: str) -> str:
    """``text`` with each lone surrogate (a file name's undecodable byte) shown as ``?``,
    so that a label made from it can be written as UTF-8."""
    return text if encodable(text) else text.encode("utf-8", "replace").decode("utf-8")


def printable(name: str) -> str:
    """``name`` for a one-line table cell: control characters (a newline, say) escaped."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: 2 for a wide or full-width character (CJK),
    0 for a combining mark or a zero-width format character, 1 otherwise."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (see
    :func:`display_width`), on the left when ``right``."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def first_bool(values: object) -> int | None:
    """The index of the first bool in a list or tuple (numpy reads them as 0 and 1 beside
    numbers, so they must be caught before), or None."""
    if not isinstance(values, (list, tuple)):
        return None
    index = _core.first_of_type(values, (bool, np.bool_))
    return None if index < 0 else index


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    """True for ints and numpy integers, never for ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    """True for ints, floats and their numpy kinds, never for ``bool``."""
    return _is_int(value) or isinstance(value, (float, np.floating))


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "object",
             np.ndarray: "array"}
    return names.get(type(value), type(value).__name__)
