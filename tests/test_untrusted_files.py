"""Files from elsewhere: refused before large allocations, never blocking on FIFOs,
never half-written on failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import layerwise_fast as lf
from layerwise_fast.cli import InputError, read_sizes
from layerwise_fast.units import DEFAULT_MAX_FILE_BYTES, MAX_FILE_BYTES_ENV, max_file_bytes, write_text_atomically

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
    with pytest.raises(lf.LayerTableError, match="holds a value that cannot be read"):
        lf.LayerTable.from_json(long_number)
    outside = dict(TINY_TABLE, layers=[dict(TINY_TABLE["layers"][0], params=2**64)])
    big = tmp_path / "big.json"
    big.write_text(json.dumps(outside))
    with pytest.raises(lf.LayerTableError, match="params"):
        lf.LayerTable.from_json(big)


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
