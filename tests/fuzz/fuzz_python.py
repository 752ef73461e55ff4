"""Fuzz the Python entry points that read untrusted input (atheris).

Targets, chosen by the first byte of each input:
  0  LayerTable.from_json on arbitrary bytes written to a file, which must give the table
     or the message that reading them with the json module gives; the same bytes
     through the native JSON reader, which must give json.loads's value or decline, and
     through its rows-as-columns form, which must decline whatever json.loads rejects
  1  LayerTable.from_transformer_config on arbitrary JSON
  2  parse_bytes on arbitrary text
  3  the command line's argument handling and input files (layerwise-fast partition)
  4  the partitioners on arbitrary size arrays, capacities and k
Every input must either succeed or raise one of the documented exception types
(ValueError and its subclasses, TypeError, OverflowError; SystemExit(2) from argparse);
anything else is a bug and stops the fuzzer with the input saved.

    python tests/fuzz/fuzz_python.py -max_total_time=60 tests/corpus/python
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import numpy as np

    import layerwise_fast as lf
    from layerwise_fast import _core, cli
    from layerwise_fast._reference import same_json_value
    from layerwise_fast.layers import _table_from_document

EXPECTED = (ValueError, TypeError, OverflowError)
WORKDIR = tempfile.mkdtemp(prefix="layerwise_fast_fuzz_")
FILE = os.path.join(WORKDIR, "input")


def write(data: bytes, suffix: str = "") -> str:
    path = FILE + suffix
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def layer_table_file(fdp: atheris.FuzzedDataProvider) -> None:
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    native_json_reader(data)
    path = write(data)
    try:
        table: object = lf.LayerTable.from_json(path)
    except lf.LayerTableError as error:
        table = str(error)
    try:
        reference = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return  # the messages for unreadable files come from the json module itself
    try:
        expected: object = _table_from_document(reference, f"layers file {path!r}")
    except lf.LayerTableError as error:
        expected = str(error)
    if table != expected:
        raise RuntimeError(f"from_json read {data!r} as {table!r}, the json module's rows as {expected!r}")


def native_json_reader(data: bytes) -> None:
    try:
        _core.json_loads_row_columns(data, "layers")
    except ValueError:
        pass
    else:
        try:
            json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise RuntimeError(f"the rows-as-columns reader accepted what json.loads rejects: {data!r}") from exc
    try:
        fast = _core.json_loads(data)
    except ValueError:
        return  # declined: the json module reads it
    try:
        reference = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise RuntimeError(f"the native reader accepted what json.loads rejects: {data!r}") from exc
    if not same_json_value(fast, reference):
        raise RuntimeError(f"the native reader read {data!r} as {fast!r}, json.loads as {reference!r}")


def transformer_config(fdp: atheris.FuzzedDataProvider) -> None:
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        return
    lf.LayerTable.from_transformer_config(config)


def byte_text(fdp: atheris.FuzzedDataProvider) -> None:
    lf.parse_bytes(fdp.ConsumeUnicodeNoSurrogates(64))


def command_line(fdp: atheris.FuzzedDataProvider) -> None:
    argv = ["partition", write(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)), fdp.PickValueInList([".txt", ".npy"]))]
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        argv.append(fdp.PickValueInList(["--capacity", "--k", "--algo", "--cost", "--json", "--example"]))
        argv.append(fdp.ConsumeUnicodeNoSurrogates(12))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            status = cli.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    if status not in (0, 1, 2):
        raise RuntimeError(f"unexpected exit status {status!r} for {argv!r}")


def partitioners(fdp: atheris.FuzzedDataProvider) -> None:
    n = fdp.ConsumeIntInRange(0, 40)
    sizes = np.array([fdp.ConsumeIntInRange(-2, 2**62) for _ in range(n)], dtype=np.int64)
    capacity = fdp.ConsumeIntInRange(-1, 2**63)
    k = fdp.ConsumeIntInRange(-1, n + 1)
    for call in (lambda: lf.greedy(sizes, capacity), lambda: lf.balanced(sizes, k),
                 lambda: lf.dp(sizes, capacity), lambda: lf.balanced(sizes, capacity=capacity)):
        try:
            p = call()
        except EXPECTED:
            continue
        if p.boundaries[0] != 0 or p.boundaries[-1] != n or np.any(np.diff(p.boundaries) <= 0):
            raise RuntimeError(f"malformed partition {p!r} for {sizes.tolist()}")


TARGETS = [layer_table_file, transformer_config, byte_text, command_line, partitioners]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)]
    try:
        target(fdp)
    except EXPECTED:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
