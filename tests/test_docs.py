"""The examples in README.md and in the package docstring run as written."""

from __future__ import annotations

import doctest
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

import layerwise_fast

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples() -> None:
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False)
    assert result.attempted >= 5 and result.failed == 0


def test_package_docstring_examples() -> None:
    result = doctest.testmod(layerwise_fast)
    assert result.attempted >= 2 and result.failed == 0


def _shell_examples(path: Path) -> list[tuple[str, list[str]]]:
    """Each ``$ layerwise-fast ...`` block of a Markdown file: the command and the lines
    shown after it, up to the end of its fenced block."""
    examples: list[tuple[str, list[str]]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("$ layerwise-fast ") and lines[i - 1] == "```":
            end = lines.index("```", i + 1)
            examples.append((line[2:], lines[i + 1:end]))
    return examples


README_COMMANDS = _shell_examples(ROOT / "README.md")


def test_readme_shows_command_output() -> None:
    assert len(README_COMMANDS) >= 3


@pytest.mark.parametrize("command, shown", README_COMMANDS, ids=[c for c, _ in README_COMMANDS])
def test_readme_command_output_is_what_the_command_prints(
        command: str, shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Output shown in full must match; a ``[...]`` line stands for lines left out."""
    from layerwise_fast.cli import main
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).splitlines()
    if "[...]" in shown:
        cut = shown.index("[...]")
        head, tail = shown[:cut], shown[cut + 1:]
        assert printed[:len(head)] == head
        assert any(printed[start:start + len(tail)] == tail
                   for start in range(len(head), len(printed) - len(tail) + 1))
    else:
        assert printed == shown


def _gpu_report() -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return gpu_report


def test_readme_gpu_tables_are_those_of_the_committed_runs() -> None:
    """The GPU tables in README.md are what bench/gpu_report.py makes of the JSON of
    the runs kept in bench/gpu_results."""
    gpu_report = _gpu_report()
    runs = [gpu_report.load(ROOT / "bench" / "gpu_results" / card) for card in ("h200", "h100")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    between = readme.split(gpu_report.BEGIN + "\n", 1)[1].split(gpu_report.END, 1)[0]
    assert between == gpu_report.render(runs)
    assert "| H200 | A | 8 | 16.2 MiB |" in between


def test_gpu_report_reads_a_run_cut_short_after_the_variant_sweep(tmp_path: Path) -> None:
    variant = {"barrier": "cg", "packs_in_flight": 4, "speedup": 1.5,
               "chunked": {"seconds": 0.004, "bandwidth_bytes_per_s": 4.0e12, "relative_error": 1e-4,
                           "unwritten": 0, "barrier_timeouts": 0, "mismatches": 0},
               "control": {"seconds": 0.006, "bandwidth_bytes_per_s": 2.7e12, "relative_error": 1e-4,
                           "unwritten": 0, "barrier_timeouts": 0, "mismatches": None}}
    run = {"environment": {"device": {"name": "NVIDIA H200"}}, "verdict": "incomplete",
           "calibration": {"timed": False}, "groups": [],
           "variants": {"group": "A", "runs": [variant], "correct": True, "tolerance": 5e-3}}
    (tmp_path / "verification.json").write_text(json.dumps(run))
    gpu_report = _gpu_report()
    markdown = gpu_report.render([gpu_report.load(tmp_path)])
    assert "| H200 | A | cg | 4 | 4.00 TB/s | 2.70 TB/s | 1.50x | 1.50x | yes |" in markdown
    assert markdown.endswith("Overall verdicts: H200 incomplete.\n")
    # No timed calibration and no group yet: those tables are left out, not printed empty.
    assert "Calibration" not in markdown and "Groups" not in markdown
    variant["chunked"]["mismatches"] = 3
    (tmp_path / "verification.json").write_text(json.dumps(run))
    assert "| NO |" in gpu_report.render([gpu_report.load(tmp_path)])


def test_gpu_report_lists_the_judging_stream_then_the_comparison(tmp_path: Path) -> None:
    def calibration(access: str | None, hbm: float) -> dict[str, Any]:
        method = {} if access is None else {"access": access}
        return {"timed": True, "device_name": "NVIDIA H200", "l2_bytes": 60 << 20,
                "plateau_bytes_per_s": 5.0e12, "hbm_bytes_per_s": hbm, "knee_bytes": 30 << 20,
                "sizes": [16 << 20, 30 << 20, 240 << 20], "bytes_per_s": [4.0e12, 5.0e12, hbm],
                "meta": {"method": method, "plateau_size_bytes": 30 << 20}}

    run = {"environment": {"device": {"name": "NVIDIA H200"}}, "verdict": "incomplete", "groups": [],
           "calibration": calibration("quad", 4.2e12), "calibration_scalar": calibration("scalar", 3.5e12)}
    (tmp_path / "verification.json").write_text(json.dumps(run))
    gpu_report = _gpu_report()
    rows = [line for line in gpu_report.render([gpu_report.load(tmp_path)]).splitlines()
            if line.startswith("| NVIDIA H200 |")]
    assert rows == ["| NVIDIA H200 | quad | 60.0 MiB | 5.00 TB/s | 30.0 MiB | 4.20 TB/s | 30.0 MiB | 0.50 | - |",
                    "| NVIDIA H200 | scalar (comparison) | 60.0 MiB | 5.00 TB/s | 30.0 MiB | 3.50 TB/s "
                    "| 30.0 MiB | 0.50 | - |"]
    # A timed curve without a knee keeps its row, marked, so rows never shift roles.
    run["calibration"] = {"timed": True, "l2_bytes": 60 << 20, "sizes": [], "bytes_per_s": [],
                          "error": "the curve shows no cache step: ...", "meta": {}, "method": {"access": "quad"}}
    (tmp_path / "verification.json").write_text(json.dumps(run))
    rows = [line for line in gpu_report.render([gpu_report.load(tmp_path)]).splitlines()
            if line.startswith("| NVIDIA H200 |")]
    assert rows[0] == "| NVIDIA H200 | quad | 60.0 MiB | - | - | - | no knee | - | - |"
    # A run from before the choice names no access: its stream made 4-byte loads.
    assert gpu_report.stream_access(calibration(None, 3.5e12)) == "scalar"


def test_gpu_report_shows_the_speedup_with_each_compared_barrier() -> None:
    gpu_report = _gpu_report()
    runs = {"layer_by_layer": {"seconds": 0.006}, "planned": {"seconds": 0.004},
            "planned_atomic": {"seconds": 0.003}, "2x_cache": {"seconds": 0.005}}
    assert gpu_report._other_barriers(runs) == "atomic 2.00x"
    assert gpu_report._other_barriers({"layer_by_layer": {"seconds": 0.006}}) == "-"
    runs["planned_atomic"]["seconds"] = None  # a timed-out barrier has no time
    assert gpu_report._other_barriers(runs) == "atomic -"
