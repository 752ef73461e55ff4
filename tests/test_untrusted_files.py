"""Files from elsewhere: refused before large allocations, never blocking on FIFOs,
never half-written on failure."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast.cli import InputError, read_sizes
from layerwise_fast.units import (DEFAULT_MAX_FILE_BYTES, MAX_FILE_BYTES_ENV, max_file_bytes, read_input_file,
                                  write_text_atomically)

TINY_TABLE = {"schema": "layerwise_fast.layers", "version": 1,
              "layers": [{"name": "a", "kind": "mlp", "params": 10, "weight_dtype": "bf16", "act_elems_per_token": 4}]}


def test_default_limit_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_FILE_BYTES_ENV, raising=False)
    assert max_file_bytes() == DEFAULT_MAX_FILE_BYTES == 2**30
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "4GiB")
    assert max_file_bytes() == 4 * 2**30
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_FILE_BYTES_ENV}: cannot read 'lots'"):
        max_file_bytes()


def test_file_over_the_limit_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(TINY_TABLE))
    assert len(lf.LayerTable.from_json(path)) == 1
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "100")
    size = path.stat().st_size
    message = (f"is {size} bytes, more than the limit of 100 bytes; to read it anyway, raise the limit with "
               f"the environment variable {MAX_FILE_BYTES_ENV}")
    with pytest.raises(lf.LayerTableError, match=message):
        lf.LayerTable.from_json(path)
    sizes = tmp_path / "sizes.txt"
    sizes.write_text("1\n" * 100)
    with pytest.raises(InputError, match="more than the limit of 100 bytes"):
        read_sizes(sizes)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for read in (lf.LayerTable.from_json, lf.Plan.from_json, read_sizes):
        with pytest.raises(ValueError, match="is not a regular file \\(a FIFO, socket or device\\)"):
            read(fifo)


def test_deep_nesting_and_huge_numbers_are_clear_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(lf.LayerTableError, match="nests arrays or objects too deeply to read"):
        lf.LayerTable.from_json(deep)
    long_number = tmp_path / "long.json"
    long_number.write_text('{"schema": "layerwise_fast.layers", "version": ' + "9" * 5000 + "}")
    with pytest.raises(lf.LayerTableError, match=r"holds a value that cannot be read: an "
                                                 r"integer of more than 4300 digits$"):
        lf.LayerTable.from_json(long_number)
    outside = dict(TINY_TABLE, layers=[dict(TINY_TABLE["layers"][0], params=2**64)])
    big = tmp_path / "big.json"
    big.write_text(json.dumps(outside))
    with pytest.raises(lf.LayerTableError, match="params"):
        lf.LayerTable.from_json(big)


def _calibration_text() -> str:
    return json.dumps({"schema": lf.hardware.CALIBRATION_SCHEMA, "version": 1,
                       "device_name": "NVIDIA H100 80GB HBM3", "l2_bytes": 52428800,
                       "knee_bytes": 31457280, "plateau_bytes_per_s": 5e12,
                       "hbm_bytes_per_s": 3e12, "sizes": [1048576, 209715200],
                       "bytes_per_s": [5e12, 3e12]})


@pytest.mark.parametrize("kind", ["table", "plan", "calibration"])
def test_a_key_given_twice_in_one_object_is_refused(tmp_path: Path, kind: str) -> None:
    if kind == "table":
        text, read, key = json.dumps(TINY_TABLE), lf.LayerTable.from_json, "version"
    elif kind == "plan":
        text, read, key = lf.plan(lf.LayerTable.from_records(TINY_TABLE["layers"]),
                                  sequence=64).dumps(), lf.Plan.from_json, "version"
    else:
        text, read, key = _calibration_text(), lf.Hardware.from_calibration, "version"
    once = read(_written(tmp_path / "once.json", text))
    assert isinstance(once, (lf.LayerTable, lf.Plan, lf.Hardware))
    twice = text.replace(f'"{key}":', f'"{key}": 1, "{key}":', 1)
    with pytest.raises(ValueError, match=f"the key '{key}' appears twice in one object"):
        read(_written(tmp_path / "twice.json", twice))


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_an_npy_header_is_not_trusted_with_an_allocation(tmp_path: Path) -> None:
    path = tmp_path / "sizes.npy"
    with open(path, "wb") as handle:  # declares 2**60 int64 values, holds one
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<i8", "fortran_order": False, "shape": (2**60,)})
        handle.write(np.int64(7).tobytes())
    with pytest.raises(InputError, match=r"its header declares 9223372036854775808 bytes of "
                                         r"data, more than the 8 the file holds\)$"):
        read_sizes(path)


def test_failed_write_leaves_the_existing_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "plan.json"
    target.write_text("the previous plan\n")

    class Unwritable:
        def __str__(self) -> str:
            raise RuntimeError("serialisation failed half way")

    with pytest.raises(TypeError):
        write_text_atomically(target, Unwritable())  # type: ignore[arg-type]
    assert target.read_text() == "the previous plan\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
    write_text_atomically(target, "the new plan\n")
    assert target.read_text() == "the new plan\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_plan_and_table_writes_go_through_a_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(b), real_replace(a, b)))
    table = lf.LayerTable.from_records(TINY_TABLE["layers"])
    table.to_json(tmp_path / "layers.json")
    assert renamed == [str(tmp_path / "layers.json")]
    assert lf.LayerTable.from_json(tmp_path / "layers.json") == table


def test_a_write_keeps_links_modes_and_the_umask(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomically(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    previous = os.umask(0o027)
    try:
        write_text_atomically(tmp_path / "fresh.json", "x\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "fresh.json").stat().st_mode) == 0o640  # 0o666 & ~0o027
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.json", "link.json", "real.json"]


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_text_atomically(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_write_errors_name_the_path_asked_for(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="a-folder"):
        write_text_atomically(folder, "x")
    with pytest.raises(FileNotFoundError, match="the path is empty"):
        write_text_atomically("", "x")
    with pytest.raises(IsADirectoryError, match="ends in a separator"):
        write_text_atomically(f"{tmp_path / 'out'}{os.sep}", "x")
    with pytest.raises(FileNotFoundError, match="missing/plan.json"):
        write_text_atomically(tmp_path / "missing" / "plan.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]


def test_a_limit_above_memory_reads_small_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read is sized by the file, not by the limit: a limit of 1 EiB allocates nothing."""
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(TINY_TABLE))
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "1EiB")
    assert len(lf.LayerTable.from_json(path)) == 1
    assert read_input_file(path, what="file", error=ValueError) == path.read_bytes()


def test_a_file_that_grows_after_the_check_is_read_to_the_limit(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "growing.txt"
    path.write_bytes(b"x" * 10)
    real_stat = os.stat
    small = real_stat(path)
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: small if Path(p) == path else real_stat(p, *a, **k))
    path.write_bytes(b"y" * (3 << 20))  # grew to 3 MiB after the (faked) check
    assert read_input_file(path, what="file", error=ValueError) == b"y" * (3 << 20)
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "2MiB")
    with pytest.raises(ValueError, match=f"is {(2 << 20) + 1} bytes, more than the limit"):
        read_input_file(path, what="file", error=ValueError)


def test_a_model_path_is_checked_before_it_is_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    for run in (lambda: lf.plan(fifo), lambda: lf.sweep(fifo, [1])):
        with pytest.raises(lf.LayerTableError, match="is not a regular file \\(a FIFO, socket or device\\)"):
            run()
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(lf.LayerTableError, match="is empty: give a layer table or a transformer config.json"):
        lf.plan(empty)


def test_a_table_with_sorted_keys_is_a_table_however_long(tmp_path: Path) -> None:
    rows = [dict(TINY_TABLE["layers"][0], name=f"layer{i}") for i in range(2000)]
    columnar = tmp_path / "columnar.json"
    lf.LayerTable.from_records(rows).to_json(columnar, columnar=True)
    for document in ({**TINY_TABLE, "layers": rows}, json.loads(columnar.read_text())):
        path = tmp_path / "sorted.json"
        path.write_text(json.dumps(document, sort_keys=True, indent=1))
        assert path.stat().st_size > 1 << 16 and path.read_text().find('"schema"') > 1 << 16
        assert lf.plan(path).n == 2000


def test_sublayers_are_refused_for_a_layer_table(tmp_path: Path) -> None:
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(TINY_TABLE))
    with pytest.raises(ValueError, match="'sublayer' applies to a transformer config; .* is a layer table"):
        lf.plan(path, layer_granularity="sublayer")


def test_a_plan_given_as_the_model_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    lf.plan(lf.LayerTable.from_records(TINY_TABLE["layers"])).to_json(path)
    with pytest.raises(lf.LayerTableError, match="field 'schema' must be 'layerwise_fast.layers', got "
                                                 "'layerwise_fast.plan'"):
        lf.plan(path)
