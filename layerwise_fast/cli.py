"""Command-line interface: ``layerwise-fast partition FILE``, ``plan MODEL`` and ``sweep``.

``plan`` and ``sweep`` live in :mod:`layerwise_fast.cli_plan`.

Exit status: 0 on success, 1 when the input is valid but no partition fits (a layer
larger than the capacity, or k groups that cannot fit it), 2 for bad arguments or an
unreadable input file, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from layerwise_fast import __version__
from layerwise_fast.cli_plan import add_plan_commands, in_option_words
from layerwise_fast.errors import InfeasibleError, LayerTooLargeError
from layerwise_fast.partition import balanced, dp, greedy
from layerwise_fast.result import Partition
from layerwise_fast.summary import counted
from layerwise_fast.units import (STDIN_PROMPT, format_bytes, integer_argument, pad, printable,
                                  read_input_file, read_input_head, read_standard_input)

__all__ = ["main", "read_sizes", "SizesFile", "InputError"]

DEFAULT_CAPACITY = "50MB"  # the seed's C, after an H100's L2 (50 MiB, 52.4 MB, as reported)
EXAMPLE_SUFFIXES = (".txt", ".npy")


class InputError(ValueError):
    """An input file that cannot be read as sizes; the message names the file and line."""


@dataclass(frozen=True)
class SizesFile:
    """Sizes read from a file: one column (per-layer sizes) or three, plus layer names."""

    sizes: np.ndarray  # shape (n,) or (n, 3): weights, activations, buffers
    names: list[str] | None


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_LINE_END = re.compile(r"\r\n|\r|\n")
_NEGATIVE_VALUE = re.compile(r"^-\.?[0-9]")  # -5MB, -.5GB: values, not options


def _parse_line(text: str, path: Path, line: int) -> tuple[list[int], str | None]:
    body, _, comment = text.partition("#")
    fields = body.replace(",", " ").split()
    values = []
    for field in fields:
        if not _WHOLE_NUMBER.fullmatch(field):  # ASCII digits only: int() also reads "1_000" and "٣"
            raise InputError(f"{path}:{line}: {field!r} is not a whole number of bytes written "
                             f"in the digits 0-9 (no exponent, unit or separator)")
        value = int(field)
        if value < 0:
            raise InputError(f"{path}:{line}: {field} is negative; sizes are bytes and must be >= 0")
        values.append(value)
    if len(values) not in (1, 3):
        raise InputError(
            f"{path}:{line}: expected 1 size or 3 (weights activations buffers), got {len(values)} fields"
        )
    return values, comment.strip() or None


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _read_text(path: Path, raw: bytes | None = None) -> SizesFile:
    if raw is None:
        raw = read_input_file(path, what="sizes file", error=InputError)
    if raw.startswith((_NPY_MAGIC, _ZIP_MAGIC)):  # .npy files are read by their suffix, not here
        raise InputError(f"{path}: a .npy array (or .npz archive), which is read only from a "
                         f"file whose name ends in .npy (here it was read as text)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}); expected one size per line or a .npy file") from None
    if text.lstrip("\ufeff \t\r\n").startswith(("{", "[")):
        raise InputError(f"{path}: JSON, not sizes; `layerwise-fast plan` reads model configs and "
                         f"layer tables, `partition` one size (or three) per line")
    rows: list[list[int]] = []
    lines: list[int] = []
    names: list[str] = []
    # Lines end at "\r\n", "\r" or "\n" only (str.splitlines also splits at form feeds
    # and U+2028, which would shift the line numbers); a byte-order mark is not a size.
    for line, content in enumerate(_LINE_END.split(text.removeprefix("\ufeff")), start=1):
        if not content.split("#", 1)[0].strip():
            continue
        values, name = _parse_line(content, path, line)
        if rows and len(values) != len(rows[0]):
            raise InputError(f"{path}:{line}: {len(values)} fields where earlier lines have {len(rows[0])}")
        rows.append(values)
        lines.append(line)
        names.append(name or str(len(names)))
    if not rows:
        raise InputError(f"{path}: no sizes found (one size per line, '#' starts a comment)")
    try:
        sizes = np.array(rows, dtype=np.int64)
    except OverflowError:
        line, value = next((line, value) for line, row in zip(lines, rows) for value in row
                           if not -(2**63) <= value < 2**63)
        raise InputError(f"{path}:{line}: {value} is outside the int64 range of sizes") from None
    has_names = any(n != str(i) for i, n in enumerate(names))
    return SizesFile(sizes[:, 0] if sizes.shape[1] == 1 else sizes, names if has_names else None)


def _read_npy(path: Path, head: bytes) -> SizesFile:
    if not head.startswith((_NPY_MAGIC, _ZIP_MAGIC)):  # np.load would try it as a pickle
        raise InputError(f"{path}: not a .npy file (it does not start with the .npy magic "
                         f"bytes); save the sizes with numpy.save, or give a text file")
    if head.startswith(_NPY_MAGIC):
        _check_npy_header(path)
    try:
        sizes = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path}: not a readable .npy array ({err})") from None
    if not isinstance(sizes, np.ndarray):  # np.load opens a zip archive whatever its name
        sizes.close()
        raise InputError(f"{path}: an .npz archive of arrays, not one .npy array; save the sizes "
                         f"with numpy.save")
    if sizes.ndim not in (1, 2) or (sizes.ndim == 2 and sizes.shape[1] != 3):
        raise InputError(f"{path}: expected shape (n,) or (n, 3), got {sizes.shape}")
    return SizesFile(sizes, None)


def _check_npy_header(path: Path) -> None:
    """Refuse a .npy file whose header declares more data than the file holds, before
    ``np.load`` allocates what the header declares, and one of Python objects."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is not None:
                shape, _, dtype = read_header(handle)
                data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path}: not a readable .npy array ({err})") from None
    if read_header is None:  # 3.0 differs only in allowing non-Latin-1 field names
        raise InputError(f"{path}: a .npy file of version {version[0]}.{version[1]}; this "
                         f"reader takes versions 1.0 and 2.0, which numpy.save writes for "
                         f"integer arrays")
    if dtype.hasobject:  # np.load would refuse it, in words about pickles
        raise InputError(f"{path}: a .npy array of Python objects; save integer sizes")
    declared = dtype.itemsize
    for extent in shape:
        declared *= int(extent)  # Python ints: no overflow
    if declared > data_bytes:
        raise InputError(f"{path}: not a readable .npy array (its header declares {declared} "
                         f"bytes of data, more than the {data_bytes} the file holds)")


def read_sizes(path: str | Path) -> SizesFile:
    """Read sizes from a text file (one size, or weights activations buffers, per line;
    ``#`` starts a comment, and a comment after a row names that layer) or a ``.npy``
    array of shape (n,) or (n, 3); ``"-"`` reads text from standard input. Directories,
    FIFOs and files over the input size limit (:func:`layerwise_fast.units.max_file_bytes`)
    are refused before reading."""
    if str(path) == "-":
        raw = read_standard_input(error=InputError, prompt=STDIN_PROMPT.format(what="sizes"))
        return _read_text(Path("<stdin>"), raw)
    path = Path(path)
    if path.suffix != ".npy":
        return _read_text(path)
    head = read_input_head(path, len(_NPY_MAGIC), what="sizes file", error=InputError)
    return _read_npy(path, head)  # np.load reads it again


def example_names() -> list[str]:
    """Names of the bundled example size files."""
    folder = resources.files("layerwise_fast") / "examples"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(EXAMPLE_SUFFIXES))


def example_path(name: str) -> Path:
    folder = resources.files("layerwise_fast") / "examples"
    for suffix in EXAMPLE_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return Path(str(candidate))
    raise InputError(f"no bundled example named {name!r}; available: {', '.join(example_names())}")


def _columns(sizes: np.ndarray) -> Any:
    return sizes if sizes.ndim == 1 else {"weights": sizes[:, 0], "activations": sizes[:, 1], "buffers": sizes[:, 2]}


def _run(args: argparse.Namespace, sizes: Any) -> Partition:
    capacity = args.capacity
    if args.algo == "balanced":
        if capacity is None and args.k is None:
            capacity = DEFAULT_CAPACITY
        return balanced(sizes, args.k, capacity=capacity, cost=args.cost)
    if args.k is not None:
        raise InputError(f"--k applies to --algo balanced only; {args.algo} finds the fewest groups itself")
    algorithm = greedy if args.algo == "greedy" else dp
    return algorithm(sizes, capacity or DEFAULT_CAPACITY, cost=args.cost)


def _fill_bar(cost: int, capacity: int | None, width: int = 20) -> str:
    if not capacity:
        return ""
    filled = min(width, round(width * cost / capacity))
    return "█" * filled + "░" * (width - filled) + f" {100 * cost / capacity:5.1f}%"


def format_table(p: Partition, names: list[str] | None) -> str:
    """A readable table of the groups, headed by one summary line."""
    capacity = f" · capacity {format_bytes(p.capacity)}" if p.capacity is not None else ""
    lines = [
        f"{p.algorithm} · {p.cost} cost · {counted(p.n, 'layer')} in {counted(p.k, 'group')}{capacity}"
        f" · bottleneck {format_bytes(p.bottleneck)} (group {p.bottleneck_group})",
        f"{'group':>5}  {'layers':<13} {'count':>6}  {'cost':>10}  {'slack':>10}  "
        + (f"{'first .. last':<28}" if names else "")
        + ("fill" if p.capacity else ""),
    ]
    slack = p.slack
    for g, (start, stop) in enumerate(p):
        span = f"{printable(names[start])} .. {printable(names[stop - 1])}" if names else ""
        free = format_bytes(int(slack[g])) if slack is not None else "-"
        lines.append(
            f"{g:>5}  {f'{start}-{stop - 1}':<13} {stop - start:>6}  {format_bytes(int(p.group_costs[g])):>10}  "
            f"{free:>10}  " + (f"{pad(span, 28)} " if names else "") + _fill_bar(int(p.group_costs[g]), p.capacity)
        )
    return "\n".join(line.rstrip() for line in lines)


def _partition_command(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.example is None):
        raise InputError("give exactly one of FILE or --example NAME")
    if args.json and args.format == "table":
        raise InputError("--json and --format table ask for different outputs; give one")
    as_json = args.json or args.format == "json"
    source = example_path(args.example) if args.example else Path(args.file)
    data = read_sizes(source)
    if args.cost == "peak" and data.sizes.ndim == 1:
        label = "<stdin>" if args.file == "-" else source
        raise InputError(f"{label}: --cost peak needs three sizes per layer (weights activations "
                         f"buffers on each line, or a .npy array of shape (n, 3)); it has one")
    try:
        with in_option_words({"k": "--k", "capacity": "--capacity"}):
            result = _run(args, _columns(data.sizes))
    except LayerTooLargeError as err:
        if data.names is None:
            raise
        named = f"layer {err.layer} ({printable(data.names[err.layer])!r}) "  # the file's own name for it
        raise InfeasibleError(str(err).replace(f"layer {err.layer} ", named, 1)) from err
    if as_json:
        payload = {"source": str(args.example or args.file), **result.to_dict(), "names": data.names}
        print(json.dumps(payload, indent=2))
    else:
        print(format_table(result, data.names))
    return 0


class _CommandsFormatter(argparse.HelpFormatter):
    """Lines each command's help up beside the longest command name: argparse measures
    the names without the indentation it then prints them with."""

    def add_argument(self, action: argparse.Action) -> None:
        if isinstance(action, argparse._SubParsersAction):
            self._indent()
            super().add_argument(action)
            self._dedent()
        else:
            super().add_argument(action)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` among ``parser``'s commands."""
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    chosen: argparse.ArgumentParser = commands.choices[command]
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerwise-fast",
        allow_abbrev=False,
        description="Plan layer-wise deployment: cut a network's layers into contiguous groups "
        "whose working set fits a capacity, by default one H100's L2 cache: 50 MB for "
        "partition, the H100 profile's effective 31.5 MB for plan and sweep.",
        epilog="Exit status: 0 success, 1 no partition or plan fits, 2 bad arguments or input, "
        "130 interrupted.",
        formatter_class=_CommandsFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    part = commands.add_parser(
        "partition",
        allow_abbrev=False,
        help="partition per-layer sizes read from a file",
        description="Partition per-layer sizes into contiguous groups. The file holds one layer per "
        "line: one size in bytes, or three (weights activations buffers, separated by spaces, tabs "
        "or commas); '#' starts a comment, and a comment after a row names the layer. A .npy array "
        "of shape (n,) or (n, 3) works too.",
        epilog=f"Bundled examples: {', '.join(example_names())}. "
        "Example: layerwise-fast partition --example gpt2-sublayers --capacity 50MB",
    )
    part.add_argument("file", nargs="?", metavar="FILE",
                      help="sizes file (.txt or .npy), or - for text on standard input")
    part.add_argument("--example", metavar="NAME", help="use a bundled example instead of FILE")
    part.add_argument(
        "--capacity",
        metavar="BYTES",
        help=f"bytes one group may hold: 50000000, 50MB, 50MiB, 4.8e7 (default {DEFAULT_CAPACITY} "
        "unless --k is given)",
    )
    part.add_argument("--k", type=integer_argument, metavar="K", help="exactly K groups (balanced only)")
    part.add_argument(
        "--algo",
        choices=["balanced", "greedy", "dp"],
        default="balanced",
        help="balanced: fewest groups (or K), minimum bottleneck [default]; greedy: fewest groups, "
        "filled left to right; dp: fewest groups then minimum bottleneck, by dynamic programming",
    )
    part.add_argument(
        "--cost",
        choices=["sum", "peak"],
        default="sum",
        help="sum: a group costs the sum of its layers [default]; peak: sum of weights + the largest "
        "activations+buffers of one layer (needs 3 columns)",
    )
    part.add_argument("--format", choices=("table", "json"),
                      help="table [default] or json, as for plan and sweep")
    part.add_argument("--json", action="store_true", help="the same as --format json")
    part.set_defaults(handler=_partition_command)
    add_plan_commands(commands)
    commands.add_parser(
        "verify",
        help="check on one GPU that planned groups fit its cache (needs the cuda extra; "
        "layerwise-fast verify --help)",
        add_help=False,
    )
    for each in (parser, *commands.choices.values()):
        _take_negative_values(each)
    return parser


def _take_negative_values(parser: argparse.ArgumentParser) -> None:
    """Read ``--capacity -5MB`` as the value -5MB, which the option's own check refuses
    by name, rather than as an unknown option ("expected one argument"): argparse takes
    what its negative-number pattern matches as values, and no option here starts with
    a digit."""
    parser._negative_number_matcher = _NEGATIVE_VALUE  # type: ignore[attr-defined]


def _verify(argv: Sequence[str]) -> int:
    """`layerwise-fast verify ...`: the on-GPU verification (layerwise_fast.cuda.verify)."""
    try:
        from layerwise_fast.cuda.verify import main as verify_main
    except ImportError as err:
        asked_for_help = "-h" in argv or "--help" in argv
        if asked_for_help:
            print("usage: layerwise-fast verify [options]\n\nCheck on one GPU that planned groups "
                  "fit its cache: calibration sweep, chunked and layer-by-layer runs, a table "
                  "and JSON. Its options are listed once the cuda extra is installed.")
        hint = "" if "pip install" in str(err) else ' (install the GPU extra: pip install "layerwise_fast[cuda]")'
        print(f"layerwise-fast verify: {err}{hint}", file=sys.stderr)
        return 0 if asked_for_help else 2
    return verify_main(list(argv), prog="layerwise-fast verify")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if sys.stdout is None:  # started with its standard output closed (`>&-`)
        if sys.stderr is not None:
            print("layerwise-fast: error: standard output is closed; redirect it to a file "
                  "or to /dev/null", file=sys.stderr)
        return 2
    if arguments[:1] == ["verify"]:
        return _verify(arguments[1:])
    parser = build_parser()
    args, unknown = parser.parse_known_args(arguments)
    if unknown:  # named by the command's own usage, not the top level's
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.handler(args))
    except InfeasibleError as err:
        what = "partition" if args.command == "partition" else "plan"
        print(f"layerwise-fast: no {what} fits: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OverflowError) as err:
        print(f"layerwise-fast: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"layerwise-fast: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layerwise-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
