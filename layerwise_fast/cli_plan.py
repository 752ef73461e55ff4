"""The ``plan`` and ``sweep`` subcommands of ``layerwise-fast`` (registered by cli.py).

``layerwise-fast plan MODEL`` plans a layer-table JSON file or a transformer
``config.json``; ``--example NAME`` plans a bundled example with its own settings, which
the other options override. ``layerwise-fast sweep`` prints the chunk and the group count
for each of a list of batch sizes. Errors go to stderr as one line; the exit status
follows cli.py (0 ok, 1 no plan fits, 2 bad input, 130 interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Final, Iterator, Mapping, TextIO

from .chunking import MAX_BATCH
from .deployment import Plan
from .hardware import PROFILES, Hardware
from .layers import GRANULARITIES, WEIGHT_DTYPES, LayerTableError
from .oversize import POLICIES
from .planner import ALGORITHMS, COSTS, Model, load_model, plan, sequence_note, sweep
from .plot import PlotUnavailableError, plot_plan, require_matplotlib
from .scaling import ACT_DTYPE_BYTES
from .scenarios import SCENARIOS, scenario, scenario_model
from .units import (INT64_MAX, MAX_OPTION_DIGITS, STDIN_PROMPT, InputBytes, ascii_digits,
                    integer_argument, printable, read_standard_input)

__all__ = ["PROGRESS_MIN_LAYERS", "SWEEP_PROGRESS_MIN_WORK", "add_plan_commands",
           "in_option_words", "parse_batch_sizes", "parse_devices"]

PROGRESS_MIN_LAYERS: Final[int] = 10**6
"""Models with more layers than this get a progress bar on stderr."""
SWEEP_PROGRESS_MIN_WORK: Final[int] = 3 * 10**8
"""Layers x batch sizes above which a sweep shows progress (about ten seconds of work)."""
MAX_SWEEP_BATCHES: Final[int] = 1 << 20
_BAR_WIDTH: Final[int] = 30


def parse_devices(text: str) -> int | list[str]:
    """``"8"`` -> 8; ``"h100,h100,a100"`` -> a list of profile names or calibration files.

    Raises:
        ValueError: an empty entry, a count that is not a whole number from 1, or an
            entry that is neither a known profile nor a calibration file.
    """
    text = text.strip()
    if ascii_digits(text):
        if len(text) > MAX_OPTION_DIGITS or not 1 <= int(text) <= INT64_MAX:
            raise ValueError(f"--devices must be between 1 and {INT64_MAX}, got "
                             f"{_shown_text(text)}")
        return int(text)
    if _is_number(text) and not os.path.exists(text):
        raise ValueError(f"--devices: a device count is written with the digits 0-9 (such as 8), "
                         f"got {text}")
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError(f"--devices: {text!r} has an empty entry; give a count such as 8 "
                         f"or profiles such as h100,h100,a100")
    for name in names:
        if name.lower() not in PROFILES and not _names_a_calibration(name):
            raise ValueError(f"--devices: unknown hardware profile {name!r}; built-in profiles: "
                             f"{', '.join(sorted(PROFILES))}, or a calibration JSON file")
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _hidden_elems(text: str) -> int:
    """``--hidden``: elements per token, 1..2**62 (argparse names the option in the error;
    no layer of a model whose cuts all carry nothing hands anything on)."""
    text = text.strip()
    if not ascii_digits(text) or len(text) > MAX_OPTION_DIGITS or not 1 <= int(text) <= 2**62:
        raise argparse.ArgumentTypeError(f"must be a whole number between 1 and 2**62, got "
                                         f"{_shown_text(text)!r}")
    return int(text)


def _shown_text(text: str) -> str:
    """``text``, or its start and length where it is too long to quote whole."""
    return text if len(text) <= 40 else f"{text[:12]}... ({len(text)} characters)"


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,2,8-12"`` -> [1, 2, 8, 9, 10, 11, 12] (ranges inclusive).

    Raises:
        ValueError: an entry that is not a positive integer or an ``a-b`` range with
            ``a <= b``, a size listed twice, or more than :data:`MAX_SWEEP_BATCHES` sizes.
    """
    sizes: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        bounds = (low, high) if dash else (low, low)
        if not all(ascii_digits(b.strip()) for b in bounds):
            raise ValueError(f"--batch-sizes: cannot read {_shown_text(part.strip())!r}; "
                             f"expected sizes and ranges such as 1,2,4,8-16")
        if any(len(b.strip()) > MAX_OPTION_DIGITS for b in bounds):
            raise ValueError(f"--batch-sizes: {_shown_text(part.strip())!r} must lie within "
                             f"1..{MAX_BATCH}")
        first, last = (int(b) for b in bounds)
        if not 1 <= first <= last <= MAX_BATCH:
            raise ValueError(f"--batch-sizes: {part.strip()!r} must lie within 1..{MAX_BATCH} "
                             f"and run upwards")
        if len(sizes) + last - first + 1 > MAX_SWEEP_BATCHES:
            raise ValueError(f"--batch-sizes: more than {MAX_SWEEP_BATCHES} batch sizes")
        sizes.extend(range(first, last + 1))
    seen: set[int] = set()
    for size in sizes:
        if size in seen:
            raise ValueError(f"--batch-sizes lists the batch size {size} more than once; each "
                             f"row of the sweep is one batch size")
        seen.add(size)
    return sizes


def _names_a_calibration(text: str) -> bool:
    """Whether a --hardware or --devices entry that is no profile names a calibration file."""
    return text.endswith(".json") or os.path.exists(text)


def _hardware(text: str | None) -> str | Hardware | None:
    """A profile name, or a calibration file (a path ending in .json or an existing file)."""
    if text is None or text.lower() in PROFILES:
        return text
    if _names_a_calibration(text):
        return Hardware.from_calibration(text)
    return text  # plan() reports the unknown profile, listing the known ones


def _model(args: argparse.Namespace) -> tuple[Model, dict[str, Any]]:
    """The model and the example's settings (empty for a file)."""
    if (args.model is None) == (args.example is None):
        raise ValueError("give exactly one of MODEL or --example NAME "
                         f"(examples: {', '.join(SCENARIOS)})")
    if args.example is not None:
        example = scenario(args.example)
        return (scenario_model(example, layer_granularity=args.layers or "layer"),
                dict(example.settings))
    source = args.model
    if source == "-":
        prompt = STDIN_PROMPT.format(what="the model (a layer table or a config.json)")
        source = InputBytes("<stdin>", read_standard_input(error=LayerTableError, prompt=prompt))
    return load_model(source, layer_granularity=args.layers or "layer"), {}


_PLAN_OPTIONS: Final[dict[str, str]] = {
    "batch": "batch", "micro_batches": "micro_batches", "sequence": "sequence",
    "chunk": "chunk", "granularity": "granularity", "precision": "weight_dtype",
    "act_precision": "act_dtype", "capacity": "capacity", "algo": "algorithm",
    "cost": "cost", "on_oversize": "on_oversize", "hidden": "cut_elems_per_token",
}


def _plan_settings(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    if args.chunk is not None and args.granularity is not None:
        raise ValueError("--granularity applies to a searched chunk; --chunk gives the chunk itself")
    settings = dict(base)
    for option, keyword in _PLAN_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            settings[keyword] = value
    hardware = _hardware(args.hardware)
    if hardware is not None:
        settings["hardware"] = hardware
    if args.devices is not None:
        devices = parse_devices(args.devices)
        if hardware is not None and not isinstance(devices, int):
            raise ValueError("--hardware names the device of a device count; a device list names "
                             "each device itself (--devices h100,h200)")
        if isinstance(devices, int):
            settings["devices"] = devices
            settings.setdefault("share_devices", False)  # an example's own choice stands
        else:  # one group on each listed device, whatever an example shares
            settings["devices"] = [_hardware(name) for name in devices]
            settings["share_devices"] = False
    if args.share_devices:
        if isinstance(settings.get("devices"), list):
            raise ValueError("--share-devices applies to a device count (--devices 8); a device list "
                             "runs one group on each device")
        if settings.get("devices") is None:
            raise ValueError("--share-devices applies to a device count (--devices 8); without "
                             "--devices every group has a device of its own")
        settings["share_devices"] = True
    return settings


class _Bar:
    """A progress bar on stderr: redrawn in place on a terminal, one line per stage
    otherwise."""

    def __init__(self, stream: TextIO, title: str) -> None:
        self.stream = stream
        self.started = time.perf_counter()
        self.live = stream.isatty()
        self.stage = ""
        stream.write(f"{title}\n")

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.live and stage == self.stage:
            return  # a log gets one line per stage, not one per step
        self.stage = stage
        filled = round(_BAR_WIDTH * fraction)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = (f"[{bar}] {100 * fraction:3.0f}% {stage} "
                f"({time.perf_counter() - self.started:.1f} s)")
        if self.live:
            self.stream.write("\r" + line + ("\n" if fraction >= 1 else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse an --output or --plot path in a missing folder, a --plot that is not a
    .png or without matplotlib, before any work (and before the other file is written)."""
    if args.output == "-":
        raise ValueError("--output names a file; for the plan's JSON on standard output, "
                         "use --format json")
    for option, path in (("--output", args.output), ("--plot", args.plot)):
        if path is None:
            continue
        if not path:
            raise ValueError(f"{option} is empty: name the file to write")
        if os.path.isdir(path) or path.endswith(("/", os.sep)):
            raise ValueError(f"{option} {path!r} names a folder: name the file to write in it")
    if args.plot is not None:
        if not args.plot.lower().endswith(".png"):
            raise ValueError(f"--plot {args.plot!r}: the plot is a PNG image; name a .png file")
        try:  # before --output is written
            require_matplotlib()
        except PlotUnavailableError as exc:
            raise ValueError(f"--plot: {exc}") from exc
    for option, path in (("--output", args.output), ("--plot", args.plot)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"{option} {path!r}: the folder {folder!r} does not exist")
    _check_outputs_apart(args)


def _check_outputs_apart(args: argparse.Namespace) -> None:
    """Refuse an output that is an input (the plan would replace what it read) or is the
    other output (one would overwrite the other)."""
    inputs = [("MODEL", args.model)]
    if args.example is not None and args.example in SCENARIOS:
        inputs.append(("--example model", str(scenario(args.example).model_path())))
    if args.hardware is not None and os.path.isfile(args.hardware):
        inputs.append(("--hardware", args.hardware))
    if args.devices is not None:
        inputs += [("--devices", entry.strip()) for entry in args.devices.split(",")
                   if os.path.isfile(entry.strip())]
    if args.output is not None and args.plot is not None \
            and _same_file(args.output, args.plot):
        raise ValueError(f"--output and --plot name the same file ({args.output!r}); the "
                         f"plot would replace the plan")
    for option, path in (("--output", args.output), ("--plot", args.plot)):
        for name, source in inputs:
            if path is not None and source not in (None, "-") and _same_file(path, source):
                raise ValueError(f"{option} {path!r} is the {name} file read: writing it "
                                 f"would replace the input")


def _same_file(first: str, second: str) -> bool:
    """Whether two paths name one file (through links too), existing or not."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one does not exist yet
        return os.path.realpath(first) == os.path.realpath(second)


def _plan_command(args: argparse.Namespace) -> int:
    _check_output_paths(args)
    model, base = _model(args)
    settings = _plan_settings(args, base)
    progress = _Bar(sys.stderr, f"planning {len(model.table):,} layers") \
        if len(model.table) > PROGRESS_MIN_LAYERS else None
    with in_option_words(_PLAN_FLAGS):
        result: Plan = plan(model, progress=progress, **settings)
    if args.output is not None:
        result.to_json(args.output)
    if args.plot is not None:
        plot_plan(result, args.plot)
    if args.format == "json":
        _write_json(result)
    else:
        sys.stdout.write(result.summary() + "\n")
    return 0


@contextlib.contextmanager
def in_option_words(flags: Mapping[str, str]) -> Iterator[None]:
    """Word an error about a setting by its option (``--micro-batches must ...``), not by
    the keyword the Python API takes (``micro_batches``); ``flags`` maps keywords to
    options."""
    try:
        yield
    except ValueError as exc:
        if type(exc) is not ValueError:  # a subclass carries its own fields: keep it whole
            raise
        text = str(exc)
        for keyword, flag in flags.items():
            if text.startswith((f"{keyword} must ", f"{keyword} (", f"{keyword}: ")):
                raise ValueError(flag + text.removeprefix(keyword)) from exc
        raise


_PLAN_FLAGS: Final[dict[str, str]] = {
    keyword: "--" + option.replace("_", "-") for option, keyword in _PLAN_OPTIONS.items()}


def _write_json(result: Plan) -> None:
    """The plan's JSON on stdout: its UTF-8 bytes straight to the binary stream when
    there is one (a 10^6-layer plan is 70 MB), else as text."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:
        sys.stdout.write(result.dumps())
        return
    sys.stdout.flush()
    binary.writelines(result._json_chunks("strict"))
    binary.flush()


def _sweep_command(args: argparse.Namespace) -> int:
    model, base = _model(args)
    options = {"sequence": args.sequence, "granularity": args.granularity,
               "weight_dtype": args.precision, "act_dtype": args.act_precision,
               "capacity": args.capacity, "cost": args.cost, "on_oversize": args.on_oversize}
    settings = {k: v for k, v in base.items()
                if k in ("sequence", "granularity", "weight_dtype", "act_dtype",
                         "on_oversize", "hardware")}
    settings.update({k: v for k, v in options.items() if v is not None})
    hardware = _hardware(args.hardware)
    if hardware is not None:
        settings["hardware"] = hardware
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    work = len(model.table) * len(batch_sizes)
    if work > SWEEP_PROGRESS_MIN_WORK:
        settings["progress"] = _Bar(sys.stderr, f"sweeping {len(model.table):,} layers at "
                                                f"{len(batch_sizes):,} batch sizes")
    with in_option_words(_PLAN_FLAGS):
        result = sweep(model, batch_sizes, **settings)
    if args.format == "json":
        sys.stdout.write(json.dumps({"model": model.label, **result.to_dict()}) + "\n")
    else:
        sys.stdout.write(f"{printable(model.label)}\n{result.format_table()}\n")
    longer = sequence_note(result.sequence, model.positions)
    if longer:
        print(f"layerwise-fast: note: {longer}", file=sys.stderr)
    if not result.fits.any():
        print(f"layerwise-fast: no plan fits at any of the batch sizes; `layerwise-fast plan "
              f"--batch {int(result.batch_sizes.min())}` with the same model and the other "
              f"options says why", file=sys.stderr)
        return 1
    return 0


def _shared_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("model", nargs="?", metavar="MODEL",
                         help="a layer-table JSON file or a transformer config.json "
                              "(-: read it from standard input)")
    command.add_argument("--example", metavar="NAME",
                         help=f"a bundled example instead of MODEL: {', '.join(SCENARIOS)}")
    command.add_argument("--hardware", metavar="NAME|FILE",
                         help=f"a profile ({', '.join(PROFILES)}; default h100) or a "
                              f"calibration JSON file")
    command.add_argument("--capacity", metavar="BYTES",
                         help="bytes a group may hold, e.g. 30MiB (default: the hardware's "
                              "effective capacity, not its nominal L2)")
    command.add_argument("--sequence", type=integer_argument, metavar="TOKENS",
                         help="tokens per sequence (default 4096)")
    command.add_argument("--granularity", type=integer_argument, metavar="TOKENS",
                         help="the chunk is a multiple of this (default 64)")
    command.add_argument("--precision", choices=WEIGHT_DTYPES,
                         help="weight precision for every layer (default: the model's)")
    command.add_argument("--act-precision", choices=tuple(ACT_DTYPE_BYTES),
                         help="activation precision (default bf16)")
    command.add_argument("--cost", choices=COSTS,
                         help="sum: a group costs the sum of its layers [default]; peak: "
                              "its weights plus the largest activations+buffers")
    command.add_argument("--on-oversize", choices=POLICIES,
                         help="a layer that fits no device: error [default], tile (stream "
                              "its weights in tiles) or quantize (int8, else int4)")
    command.add_argument("--layers", choices=GRANULARITIES,
                         help="for a config.json: one row per layer [default] or sublayer")
    command.add_argument("--format", choices=("table", "json"), default="table",
                         help="print a table [default] or JSON")


def add_plan_commands(commands: Any) -> None:
    """Add ``plan`` and ``sweep`` to the subcommands of the ``layerwise-fast`` parser."""
    examples = "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())
    command = commands.add_parser(
        "plan", allow_abbrev=False, help="plan the deployment of a model on GPUs",
        description="Plan a layer-wise deployment: chunk, groups under the cache capacity, "
        "devices, oversize layers, traffic, speedup, communication and pipeline timeline.",
        epilog=f"Examples: {examples}. Try: layerwise-fast plan --example llama-2-7b-8xh100")
    _shared_options(command)
    command.add_argument("--batch", type=integer_argument, metavar="N",
                         help="sequences per micro-batch (default 1)")
    command.add_argument("--micro-batches", type=integer_argument, metavar="M",
                         help="micro-batches through the pipeline (default 1)")
    command.add_argument("--chunk", type=integer_argument, metavar="TOKENS",
                         help="tokens per chunk (default: the largest that fits)")
    command.add_argument("--devices", metavar="N|LIST",
                         help="a device count (8), or devices in pipeline order "
                              "(h100,h100,a100); default one device per group")
    command.add_argument("--share-devices", action="store_true",
                         help="with a device count, let several groups share a device")
    command.add_argument("--algo", choices=ALGORITHMS,
                         help="balanced [default]: fewest groups, then the smallest largest "
                              "group; greedy: fewest, filled left to right; dp: balanced's "
                              "answer by dynamic programming; stage_time: "
                              "fewest groups, then the smallest largest stage time including "
                              "the transfer at its cut")
    command.add_argument("--hidden", type=_hidden_elems, metavar="ELEMS",
                         help="elements per token between layers (a transformer's hidden "
                              "size; read from a config.json) for exact cut sizes")
    command.add_argument("--output", metavar="FILE",
                         help="also write the plan as JSON to FILE (--format json prints it)")
    command.add_argument("--plot", metavar="FILE.png",
                         help="draw working sets and timeline (needs the plot extra)")
    command.set_defaults(handler=_plan_command)
    sweeper = commands.add_parser(
        "sweep", allow_abbrev=False, help="chunk and group count for each batch size",
        description="For each batch size: the largest chunk that fits and the fewest groups.",
        epilog="Example: layerwise-fast sweep --example llama-2-7b-8xh100 "
               "--batch-sizes 1,2,4,8-16")
    _shared_options(sweeper)
    sweeper.add_argument("--batch-sizes", required=True, metavar="LIST",
                         help="batch sizes and inclusive ranges, e.g. 1,2,4,8-16")
    sweeper.set_defaults(handler=_sweep_command)
