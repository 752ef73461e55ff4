"""The command line, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast.cli import example_path, read_sizes


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layerwise_fast", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_help_explains_itself() -> None:
    out = cli("partition", "--help")
    assert out.returncode == 0
    for text in ("--capacity", "--k", "--algo", "--cost", "--json", "gpt2-sublayers", "50MiB"):
        assert text in out.stdout


def test_example_table() -> None:
    out = cli("partition", "--example", "gpt2-sublayers", "--capacity", "50MB")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("balanced · sum cost · 26 layers in 8 groups · capacity 50.0 MB")
    assert "embedding .. h.1.attn" in out.stdout
    assert len(lines) == 2 + 8


def test_example_json_matches_api() -> None:
    out = cli("partition", "--example", "gpt2-sublayers", "--algo", "dp", "--cost", "peak", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    sizes = read_sizes(example_path("gpt2-sublayers")).sizes
    expected = lf.dp(sizes, 50_000_000, cost="peak").to_dict()
    assert {k: payload[k] for k in expected} == expected
    assert payload["names"][0] == "embedding" and payload["names"][-1] == "ln_f"


def test_one_column_text_and_npy(tmp_path: Path) -> None:
    (tmp_path / "sizes.txt").write_text("# sizes\n30\n10\n\n25 # third\n5\n40\n")
    np.save(tmp_path / "sizes.npy", np.array([30, 10, 25, 5, 40]))
    for name in ("sizes.txt", "sizes.npy"):
        out = cli("partition", name, "--capacity", "50", "--algo", "greedy", "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["boundaries"] == [0, 2, 4, 5]


def test_text_sizes_with_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_bytes("\ufeff30 # a\r\n10 # b\r\n+25\r\n".encode())
    data = read_sizes(tmp_path / "s.txt")
    assert data.sizes.tolist() == [30, 10, 25] and data.names == ["a", "b", "2"]
    (tmp_path / "cr.txt").write_bytes(b"30\r10\r25\r")  # line ends of old Mac files
    assert read_sizes(tmp_path / "cr.txt").sizes.tolist() == [30, 10, 25]


def test_names_with_control_characters_stay_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("30 # a\tb\n10 # " + "x" * 40 + "\n")
    out = cli("partition", str(tmp_path / "s.txt"), "--capacity", "100")
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 3
    assert "a\\tb .. " + "x" * 40 + " " in out.stdout  # escaped; a space before the fill bar
    table = lf.LayerTable.from_records([{"name": "line\nbreak", "kind": "norm", "params": 10,
                                         "weight_dtype": "bf16", "act_elems_per_token": 1}])
    summary = lf.plan(table).summary()
    assert "line\\nbreak .. line\\nbreak" in summary and "line\nbreak" not in summary


def test_k_without_capacity(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("30\n10\n25\n5\n40\n")
    out = cli("partition", str(tmp_path / "s.txt"), "--k", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bottleneck"] == 65


@pytest.mark.parametrize(
    "content, message",
    [
        ("1\n2 3\n", "s.txt:2: expected 1 size or 3 (weights activations buffers), got 2 fields"),
        ("1\n2.5\n", "s.txt:2: '2.5' is not a whole number of bytes"),
        ("1e3\n", "s.txt:1: '1e3' is not a whole number of bytes written in the digits 0-9 "
                  "(no exponent, unit or separator)"),
        ("1 2 3\n4\n", "s.txt:2: 1 fields where earlier lines have 3"),
        ("# nothing\n\n", "no sizes found"),
        ("1\n-4\n", "s.txt:2: -4 is negative; sizes are bytes and must be >= 0"),
        ("1\n99999999999999999999\n", "s.txt:2: 99999999999999999999 is outside the int64 range of sizes"),
        ('{"model_type": "gpt2"}\n', "s.txt: JSON, not sizes; `layerwise-fast plan` reads model configs"),
        ("\ufeff [1, 2, 3]\n", "s.txt: JSON, not sizes"),
        ("1\n1_000\n", "s.txt:2: '1_000' is not a whole number of bytes"),
        ("1\n\u0663\n", "s.txt:2: '\u0663' is not a whole number of bytes"),
        ("1 # a\u2028b\n2\n3.5\n", "s.txt:3: '3.5' is not a whole number"),  # U+2028 ends no line
    ],
)
def test_bad_text_files_exit_2(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "s.txt").write_text(content)
    out = cli("partition", str(tmp_path / "s.txt"), "--capacity", "100")
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_a_total_beyond_int64_points_from_balanced_to_dp(tmp_path: Path) -> None:
    sizes = tmp_path / "sizes.txt"
    sizes.write_text(f"{2**62}\n{2**62}\n")
    out = cli("partition", str(sizes), "--capacity", str(2**62))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("balanced partitioning needs the total of the whole model (dp does not; --algo dp "
            "on the command line)") in out.stderr
    answered = cli("partition", str(sizes), "--capacity", str(2**62), "--algo", "dp")
    assert answered.returncode == 0 and "2 layers in 2 groups" in answered.stdout


def test_peak_cost_needs_three_columns(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("10\n20\n")
    out = cli("partition", str(tmp_path / "s.txt"), "--cost", "peak")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{tmp_path / 's.txt'}: --cost peak needs three sizes per layer" in out.stderr


def test_an_npy_array_under_another_name_is_named_as_one(tmp_path: Path) -> None:
    with open(tmp_path / "s.txt", "wb") as handle:
        np.save(handle, np.arange(3))
    np.savez(tmp_path / "s.npz", sizes=np.arange(3))
    for name in ("s.txt", "s.npz"):
        out = cli("partition", str(tmp_path / name))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"{name}: a .npy array (or .npz archive), which is read only from a file whose name ends in .npy" \
            in out.stderr


def test_non_utf8_directory_missing_and_bad_npy(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes(b"12\n\xff\xfe\n")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    (tmp_path / "wide.npy").write_bytes(b"")
    np.save(tmp_path / "wide.npy", np.ones((3, 2), dtype=np.int64))
    np.savez(tmp_path / "archive.npz", sizes=np.arange(3))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    cut = np.lib.format.magic(1, 0) + b"\x76\x00{'descr'"  # a .npy file cut short
    (tmp_path / "cut.npy").write_bytes(cut)
    with open(tmp_path / "huge.npy", "wb") as handle:  # declares 8 TB, holds 32 bytes
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
        handle.write(np.arange(4, dtype=np.int64).tobytes())
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with open(tmp_path / "v3.npy", "wb") as handle:
        np.lib.format.write_array(handle, np.arange(5), version=(3, 0))
    cases = {
        "latin.txt": "not UTF-8 text",
        ".": "' is a directory, not a file",
        "missing.txt": "' does not exist",
        "bad.npy": "bad.npy: not a .npy file (it does not start with the .npy magic bytes)",
        "cut.npy": "cut.npy: not a readable .npy array",
        "wide.npy": "expected shape (n,) or (n, 3), got (3, 2)",
        "archive.npy": "an .npz archive of arrays, not one .npy array",
        "huge.npy": "huge.npy: not a readable .npy array (its header declares 8000000000000 "
                    "bytes of data, more than the 32 the file holds)",
        "objects.npy": "objects.npy: a .npy array of Python objects; save integer sizes",
        "v3.npy": "v3.npy: a .npy file of version 3.0; this reader takes versions 1.0 and 2.0",
    }
    for name, message in cases.items():
        out = cli("partition", str(tmp_path / name))
        assert out.returncode == 2, name
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "pickle" not in out.stderr, out.stderr


def test_infeasible_exits_1() -> None:
    out = cli("partition", "--example", "gpt2-sublayers", "--capacity", "10MB")
    assert out.returncode == 1
    assert "no partition fits: layer 1 ('h.0.attn') needs 11805696 bytes, more than the capacity of 10000000 bytes" in out.stderr
    out = cli("partition", "--example", "gpt2-sublayers", "--k", "2", "--capacity", "50MB")
    assert out.returncode == 1
    assert "at least 8 groups are needed" in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--example", "nope"], "no bundled example named 'nope'; available: gpt2-sublayers"),
        (["--example", "gpt2-sublayers", "--capacity", "lots"], "capacity: cannot read 'lots' as a byte count"),
        (["--example", "gpt2-sublayers", "--algo", "greedy", "--k", "3"], "--k applies to --algo balanced only"),
        ([], "give exactly one of FILE or --example NAME"),
        (["--example", "gpt2-sublayers", "--k", "0"], "error: --k must be >= 1, got 0"),
        (["--example", "gpt2-sublayers", "--capacity", "-5MB"],  # a value, not an option
         "capacity must not be negative, got -5MB"),
        (["--example", "gpt2-sublayers", "--capacity", "-.5GB"],
         "capacity must not be negative, got -.5GB"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    out = cli("partition", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_argparse_errors_exit_2() -> None:
    out = cli("partition", "--example", "gpt2-sublayers", "--algo", "magic")
    assert out.returncode == 2 and "invalid choice: 'magic'" in out.stderr
    out = cli()
    assert out.returncode == 2 and "the following arguments are required: COMMAND" in out.stderr


def test_console_script_is_installed() -> None:
    out = subprocess.run(["layerwise-fast", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"layerwise-fast {lf.__version__}"


def test_verify_subcommand_delegates_to_the_gpu_verification() -> None:
    out = cli("verify", "--help")
    assert out.returncode == 0
    assert "usage: layerwise-fast verify" in out.stdout and "--out DIR" in out.stdout
    listed = cli("--help")
    assert "verify" in listed.stdout


def test_verify_without_the_cuda_extra_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from layerwise_fast.cli import main
    monkeypatch.setitem(sys.modules, "layerwise_fast.cuda.verify", None)  # as if numba were missing
    assert main(["verify", "--help"]) == 0  # the help asked for was printed
    out, err = capsys.readouterr()
    assert out.startswith("usage: layerwise-fast verify") and "cuda extra" in out
    assert 'pip install "layerwise_fast[cuda]"' in err
    assert main(["verify", "--out", "results"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and 'pip install "layerwise_fast[cuda]"' in err


def test_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    sizes = tmp_path / "sizes.npy"
    np.save(sizes, np.ones(200_000, dtype=np.int64))
    # Megabytes of JSON: far more than a pipe holds, so writing must hit the closed end.
    process = subprocess.Popen([sys.executable, "-m", "layerwise_fast", "partition", str(sizes), "--capacity", "1",
                                "--algo", "greedy", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert stderr == ""


def test_a_dash_reads_sizes_from_standard_input() -> None:
    def piped(text: str, *env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "layerwise_fast", "partition", "-", "--capacity", "40",
                               "--json"], input=text, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **dict(env)})

    out = piped("10\n20 # b\n30\n")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["boundaries"] == [0, 2, 3] and result["names"] == ["0", "b", "2"]
    bad = piped("10\nx\n")
    assert bad.returncode == 2 and bad.stderr == ("layerwise-fast: error: <stdin>:2: 'x' is not a whole number "
                                               "of bytes written in the digits 0-9 (no exponent, unit or "
                                               "separator)\n")
    big = piped("10\n20\n", ("LAYERWISE_FAST_MAX_FILE_BYTES", "4"))
    assert big.returncode == 2 and "standard input holds more than the limit of 4 bytes" in big.stderr


def test_format_json_is_the_same_as_json(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("30\n10\n25\n5\n40\n")
    outputs = [cli("partition", str(tmp_path / "s.txt"), "--capacity", "50", *flag)
               for flag in (("--json",), ("--format", "json"), ("--json", "--format", "json"))]
    assert all(out.returncode == 0 for out in outputs), [out.stderr for out in outputs]
    assert outputs[0].stdout == outputs[1].stdout == outputs[2].stdout
    assert json.loads(outputs[0].stdout)["boundaries"] == [0, 2, 4, 5]
    table = cli("partition", str(tmp_path / "s.txt"), "--capacity", "50", "--format", "table")
    assert table.returncode == 0 and not table.stdout.startswith("{")
    both = cli("partition", str(tmp_path / "s.txt"), "--json", "--format", "table")
    assert both.returncode == 2 and "--json and --format table ask for different outputs" in both.stderr


def _read_until(fd: int, text: str, seconds: float = 60.0) -> str:
    """What a pseudo-terminal shows until `text` appears (or the time is up)."""
    import select
    seen, deadline = "", time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:  # the other end closed
                break
    return seen


@pytest.mark.parametrize("args, what, error", [
    (["partition", "-"], "sizes", "<stdin>: no sizes found"),
    (["plan", "-"], "the model (a layer table or a config.json)", "model file '<stdin>' is empty"),
])
def test_a_terminal_on_standard_input_is_told_what_is_read(args: list[str], what: str, error: str) -> None:
    pty = pytest.importorskip("pty")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its standard streams on the terminal
        os.execv(sys.executable, [sys.executable, "-m", "layerwise_fast", *args])
    try:
        prompt = f"layerwise-fast: reading {what} from standard input; end it with Ctrl-D"
        assert prompt in _read_until(fd, prompt)
        os.write(fd, b"\x04")  # Ctrl-D: the input ends, empty
        assert error in _read_until(fd, error)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 2


def test_partition_table_lines_up_with_wide_names(tmp_path: Path) -> None:
    from layerwise_fast.units import display_width

    sizes = tmp_path / "s.txt"
    sizes.write_text("100 # 層の名前\n200 # b\n300 # c\n", encoding="utf-8")
    out = cli("partition", str(sizes), "--capacity", "350", "--algo", "greedy")
    rows = [line for line in out.stdout.splitlines() if "█" in line]
    assert len(rows) == 2
    # The fill bars start in one terminal column whatever the names' widths.
    assert len({display_width(row[:row.index("█")]) for row in rows}) == 1
