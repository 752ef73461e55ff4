"""``layerwise-fast plan`` and ``sweep``, run as users run them: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import layerwise_fast as lf
from layerwise_fast import cli, cli_plan
from layerwise_fast.scenarios import scenario, scenario_model

CONFIGS = Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples" / "configs"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise_fast", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def one_clean_error(out: subprocess.CompletedProcess[str], status: int, *texts: str) -> None:
    assert out.returncode == status, out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for text in texts:
        assert text in out.stderr, out.stderr


def test_help_lists_the_options() -> None:
    out = run("plan", "--help")
    assert out.returncode == 0
    for option in ("--example", "--hardware", "--batch", "--sequence", "--chunk", "--precision",
                   "--devices", "--share-devices", "--algo", "--cost", "--on-oversize",
                   "--format", "--plot", "seed-30b", "llama-2-7b-8xh100"):
        assert option in out.stdout


def test_llama_example_fits() -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Plan for llama-2-7b-8xh100: 35 layers in 35 groups on 8 devices (h100)"
    assert "Oversize layers (33: 33 tiled, 0 quantized)" in out.stdout
    assert "Timeline for 8 micro-batches of" in out.stdout
    assert out.stderr == ""


def test_seed_example_fails_honestly() -> None:
    out = run("plan", "--example", "seed-30b")
    one_clean_error(out, 1, "layer 0 ('layers.0') needs 15008194304 bytes",
                    "capacity of 31457280 bytes")


def test_seed_example_tiled_shows_tiles_and_traffic() -> None:
    out = run("plan", "--example", "seed-30b", "--on-oversize", "tile")
    assert out.returncode == 0, out.stderr
    assert "chunk 6 tokens" in out.stdout and "1667 chunks per sequence" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("0  layers.0"))
    assert row.split()[3:] == ["15.0", "GB", "15.0", "GB", "6547", "2.3", "MB", "129.0", "KB",
                               "25.0", "TB"]


def test_json_output_is_the_api_plan(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    out = run("plan", "--example", "llama-2-7b-8xh100", "--format", "json", "--batch", "2",
              "--output", str(saved))
    assert out.returncode == 0, out.stderr
    example = scenario("llama-2-7b-8xh100")
    expected = lf.plan(scenario_model(example), **{**example.settings, "batch": 2})
    assert lf.Plan.from_dict(json.loads(out.stdout)) == expected
    assert lf.Plan.from_json(saved) == expected


def test_model_files_and_options(tmp_path: Path) -> None:
    table = lf.LayerTable.from_transformer_config(CONFIGS / "gpt2.json")
    table.to_json(tmp_path / "gpt2-layers.json")
    for model in (str(CONFIGS / "gpt2.json"), str(tmp_path / "gpt2-layers.json")):
        out = run("plan", model, "--on-oversize", "quantize", "--devices", "4",
                  "--share-devices", "--sequence", "1024", "--micro-batches", "2",
                  "--hidden", "768", "--cost", "peak", "--algo", "dp", "--format", "json")
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert plan["settings"]["devices_requested"] == 4 and plan["settings"]["cost"] == "peak"
        assert plan["treated"]["kind"] == ["int4"]  # the head; the embedding holds its rows
        assert plan["treated"]["layers"] == [14] and plan["lookups"]["layers"] == [0]
    mixed = run("plan", str(CONFIGS / "gpt2.json"), "--on-oversize", "tile", "--devices",
                ",".join(["h100", "h200"] * 8), "--sequence", "1024", "--format", "json")
    assert mixed.returncode == 0, mixed.stderr
    assert json.loads(mixed.stdout)["settings"]["mixed"] is True


@pytest.mark.parametrize("args, texts", [
    (["--batch", "0"], ["error: --batch must be between 1 and"]),
    (["--micro-batches", "0"], ["error: --micro-batches must be between 1 and 2147483648, got 0"]),
    (["--capacity", "0"], ["error: --capacity must be positive, got 0"]),
    (["--devices", "0"], ["--devices must be between 1 and 9223372036854775807, got 0"]),
    (["--devices", "9" * 20], ["--devices must be between 1 and 9223372036854775807"]),
    (["--devices", "h100,h200", "--share-devices"], ["--share-devices applies to a device count"]),
    (["--devices", "h100,h200", "--hardware", "h200"], ["--hardware names the device of a device count"]),
    (["--chunk", "128", "--granularity", "100"], ["--granularity applies to a searched chunk"]),
    (["--devices", "h100,,a100"], ["has an empty entry"]),
    (["--devices", "-3"], ["--devices: a device count is written with the digits 0-9 (such as 8), got -3"]),
    (["--devices", "2.5"], ["--devices: a device count is written with the digits 0-9", "got 2.5"]),
    (["--devices", "h100,h10"], ["--devices: unknown hardware profile 'h10'; built-in profiles: a100, h100"]),
    (["--hardware", "b200"], ["unknown hardware profile 'b200'"]),
    (["--chunk", "9000"], ["error: --chunk (9000 tokens) exceeds sequence (4096 tokens)"]),
    (["--capacity", "fifty"], ["capacity: cannot read 'fifty'"]),
    (["--capacity", "-5MB"], ["capacity must not be negative, got -5MB"]),
    (["--capacity", "foo"], ["layerwise-fast: error: --capacity: cannot read 'foo' as a byte count"]),
    (["--hardware", "missing-calibration.json"], ["calibration file", "does not exist"]),
])
def test_bad_options_exit_2(args: list[str], texts: list[str]) -> None:
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", *args), 2, *texts)


@pytest.mark.parametrize("value", ["-5", "0", "99999999999999999999", "\u0663"])
def test_hidden_is_checked_as_an_option(value: str) -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", "--hidden", value)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"layerwise-fast plan: error: argument --hidden: must be a whole number between 1 "
        f"and 2**62, got {value!r}")


def test_a_device_list_runs_one_group_on_each_even_for_a_sharing_example() -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", "--devices", ",".join(["h100"] * 40))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Plan for llama-2-7b-8xh100: 35 layers in 35 groups on 35 of 40 "
                                 "devices (h100)")
    alone = run("plan", str(CONFIGS / "llama-2-7b.json"), "--share-devices", "--on-oversize", "tile")
    one_clean_error(alone, 2, "--share-devices applies to a device count", "without --devices")


def test_output_to_dev_stdout_through_a_pipe() -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", "--format", "json", "--output", "/dev/stdout")
    assert out.returncode == 0, out.stderr
    decoder = json.JSONDecoder()
    written, end = decoder.raw_decode(out.stdout)  # the --output file, then the --format json
    printed, _ = decoder.raw_decode(out.stdout[end:].lstrip())
    assert written == printed and written["schema"] == "layerwise_fast.plan"
    assert os.path.islink("/dev/stdout")


def test_output_folders_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    written = tmp_path / "plan.json"
    out = run("plan", "--example", "llama-2-7b-8xh100", "--output", str(written),
              "--plot", str(tmp_path / "missing" / "plan.png"))
    one_clean_error(out, 2, "--plot ", "plan.png': the folder ", "missing' does not exist")
    assert not written.exists()


def test_model_and_example_are_exclusive() -> None:
    one_clean_error(run("plan"), 2, "give exactly one of MODEL or --example NAME")
    one_clean_error(run("plan", "--example", "gpt5"), 2, "no bundled example named 'gpt5'")


def test_too_many_groups_exit_1() -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", "--devices", "8", "--chunk", "64")
    assert out.returncode == 0  # the example shares its devices
    one_clean_error(run("plan", str(CONFIGS / "llama-2-7b.json"), "--devices", "8",
                        "--on-oversize", "tile"), 1, "needs 35 groups but only 8 devices")


@pytest.mark.parametrize("name, content, texts", [
    ("missing.json", None, ["model file", "does not exist"]),
    ("folder", "dir", ["is a directory"]),
    ("latin1.json", b'{"model_type": "gpt2", "n_embd": 768, \xe9}', ["is not UTF-8 text"]),
    ("cut.json", b'{"model_type": "llama", "hidden_size": 40', ["ends early (truncated?)"]),
    ("two.json", b'{"model_type": "llama"} 2', ["is not valid JSON: Extra data"]),  # not 'ends early'
    ("sizes.txt", b"# layer sizes\n1000\n2000\n", ["opens with a number", "`layerwise-fast partition` reads"]),
    ("typo.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": [{"name": "a", '
                  b'"kind": "decoder", "params": 1, "weight_dtype": "bf16", '
                  b'"act_elems_per_token": 1, "colour": 3}]}', ["unknown field 'colour'"]),
    ("missing-field.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": '
                           b'[{"name": "a", "kind": "decoder", "params": 1, '
                           b'"weight_dtype": "bf16"}]}', ["missing field 'act_elems_per_token'"]),
    ("negative.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": '
                      b'[{"name": "a", "kind": "decoder", "params": -4, "weight_dtype": "bf16", '
                      b'"act_elems_per_token": 1}]}', ["must be >= 0, got -4"]),
    ("absurd.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": '
                    b'[{"name": "a", "kind": "decoder", "params": 99999999999999999999, '
                    b'"weight_dtype": "bf16", "act_elems_per_token": 1}]}', ["exceeds 2**62"]),
    ("wrong-type.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": '
                        b'[{"name": "a", "kind": "decoder", "params": "12", '
                        b'"weight_dtype": "bf16", "act_elems_per_token": 1}]}',
     ["must be an integer, got string '12'"]),
    ("version.json", b'{"schema": "layerwise_fast.layers", "version": 7, "layers": []}',
     ["unsupported version 7"]),
    ("empty.json", b'{"schema": "layerwise_fast.layers", "version": 1, "layers": []}',
     ["model has no layers to plan"]),
    ("config.json", b'{"model_type": "llama", "hidden_size": 64}', ["missing field"]),
])
def test_malformed_models_exit_2(tmp_path: Path, name: str, content: bytes | str | None,
                                 texts: list[str]) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    one_clean_error(run("plan", str(path)), 2, *texts)


def test_a_dash_reads_the_model_from_standard_input(tmp_path: Path) -> None:
    def piped(data: bytes, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([sys.executable, "-m", "layerwise_fast", *args], input=data,
                             capture_output=True, timeout=120, env={**os.environ, **(env or {})})
        return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(), out.stderr.decode())

    def plan_json(out: subprocess.CompletedProcess[str]) -> dict[str, object]:
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        del plan["settings"]["model"]  # the file's name, or <stdin>
        return plan

    config = CONFIGS / "gpt2.json"
    table = tmp_path / "gpt2-layers.json"
    lf.LayerTable.from_transformer_config(config, granularity="sublayer").to_json(table)
    options = ("--on-oversize", "tile", "--sequence", "1024", "--format", "json")
    for path, layers in ((config, ()), (config, ("--layers", "sublayer")), (table, ())):
        piped_plan = piped(path.read_bytes(), "plan", "-", *layers, *options)
        assert json.loads(piped_plan.stdout)["settings"]["model"] == "<stdin>"
        assert plan_json(piped_plan) == plan_json(run("plan", str(path), *layers, *options))
    sweep = piped(config.read_bytes(), "sweep", "-", "--batch-sizes", "1-3", "--on-oversize", "tile",
                  "--format", "json")
    assert sweep.returncode == 0, sweep.stderr
    swept = json.loads(sweep.stdout)
    assert swept["model"] == "<stdin>" and swept["fits"] == [True, True, True]
    one_clean_error(piped(b"", "plan", "-"), 2, "model file '<stdin>' is empty")
    one_clean_error(piped(b'{"model_type": "llama", "hidden_size": 40', "plan", "-"), 2,
                    "config file '<stdin>' ends early (truncated?)")
    one_clean_error(piped(b'{"schema": "layerwise_fast.layers", "version": 7, "layers": []}', "plan", "-"),
                    2, "layers file '<stdin>': unsupported version 7")
    one_clean_error(piped(config.read_bytes(), "plan", "-", env={"LAYERWISE_FAST_MAX_FILE_BYTES": "4"}), 2,
                    "standard input holds more than the limit of 4 bytes")
    # A limit far beyond memory reserves nothing: standard input is read in pieces.
    roomy = piped(config.read_bytes(), "plan", "-", *options, env={"LAYERWISE_FAST_MAX_FILE_BYTES": "1EiB"})
    assert plan_json(roomy) == plan_json(run("plan", str(config), *options))


def test_sweep_table_and_json() -> None:
    out = run("sweep", "--example", "llama-2-7b-8xh100", "--batch-sizes", "1,2,8-9")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "llama-2-7b-8xh100"
    assert lines[3].split() == ["1", "384", "11", "35", "33"]
    assert lines[5].split() == ["8", "-", "-", "-", "-", "does", "not", "fit"]
    out = run("sweep", str(CONFIGS / "gpt2.json"), "--batch-sizes", "1-3", "--on-oversize",
              "quantize", "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["batch_sizes"] == [1, 2, 3] and result["model"] == "gpt2"
    one_clean_error(run("sweep", "--example", "seed-30b", "--batch-sizes", "4-2"), 2,
                    "must lie within 1..")


def test_sweep_exits_1_when_no_batch_size_fits() -> None:
    out = run("sweep", "--example", "seed-30b", "--batch-sizes", "128,1")  # the hint names the smallest
    assert out.returncode == 1
    assert out.stdout.count("does not fit") == 2
    assert out.stderr == ("layerwise-fast: no plan fits at any of the batch sizes; `layerwise-fast plan "
                          "--batch 1` with the same model and the other options says why\n")


@pytest.mark.parametrize("args", [
    ("sweep", "--example", "llama-2-7b-8xh100", "--batch-sizes", "1", "--batch", "2"),
    ("plan", "--example", "llama-2-7b-8xh100", "--micro", "2"),
    ("partition", "--example", "gpt2-sublayers", "--cap", "50MB"),
])
def test_abbreviated_options_are_not_taken_for_others(args: tuple[str, ...]) -> None:
    out = run(*args)
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr, out.stderr
    # Named by the command's own usage and prefix, not the top level's.
    assert out.stderr.startswith(f"usage: layerwise-fast {args[0]} ")
    assert out.stderr.splitlines()[-1].startswith(f"layerwise-fast {args[0]}: error: unrecognized arguments")


def test_plot_writes_a_png_that_is_not_blank(tmp_path: Path) -> None:
    image = pytest.importorskip("matplotlib.image",
                                reason="matplotlib is the optional 'plot' extra")
    target = tmp_path / "plan.png"
    out = run("plan", "--example", "llama-2-7b-8xh100", "--plot", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(str(target))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # bars and text, not one flat colour


def test_plot_draws_dollar_signs_in_names_as_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional 'plot' extra")
    from layerwise_fast.plot import plot_plan
    gpu = lf.Hardware.custom("GPU $\\sqrt{$", l2="50MiB", hbm_bytes_per_s=3e12,
                             link_bytes_per_s=4.5e11, flops_per_s=1e15)
    plan = lf.plan(scenario_model(scenario("llama-2-7b-8xh100")), gpu, name="run $x^$ v2",
                   on_oversize="tile")
    plot_plan(plan, tmp_path / "dollars.png")  # mathtext would refuse both names
    assert (tmp_path / "dollars.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    status = cli.main(["plan", "--example", "llama-2-7b-8xh100", "--plot",
                       str(tmp_path / "x.png"), "--output", str(tmp_path / "plan.json")])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.err.startswith('layerwise-fast: error: --plot: plotting needs matplotlib')
    assert 'pip install "layerwise_fast[plot]"' in captured.err
    # Refused before any work: --output is not written, and no plan is printed.
    assert not (tmp_path / "plan.json").exists() and captured.out == ""


def test_progress_bar_for_large_models(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_plan, "PROGRESS_MIN_LAYERS", 10)
    assert cli.main(["plan", "--example", "llama-2-7b-8xh100"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0] == "planning 35 layers"
    assert lines[-1].startswith("[" + "#" * 30 + "] 100% performance")
    assert captured.out.startswith("Plan for llama-2-7b-8xh100")
    monkeypatch.setattr(cli_plan, "PROGRESS_MIN_LAYERS", 10**6)
    assert cli.main(["plan", "--example", "llama-2-7b-8xh100"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_for_long_sweeps(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_plan, "SWEEP_PROGRESS_MIN_WORK", 100)  # layers x batch sizes
    assert cli.main(["sweep", "--example", "llama-2-7b-8xh100", "--batch-sizes", "1-4"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()  # not a terminal: one line per stage
    assert lines[0] == "sweeping 35 layers at 4 batch sizes"
    assert lines[1].startswith("[" + "-" * 30 + "]   0% group counts")
    assert lines[2].startswith("[" + "#" * 30 + "] 100% done") and len(lines) == 3
    assert "batch" in captured.out
    assert cli.main(["sweep", "--example", "llama-2-7b-8xh100", "--batch-sizes", "1,2"]) == 0
    assert capsys.readouterr().err == ""  # 70 layer-sizes: no bar


def test_parsers() -> None:
    assert cli_plan.parse_devices(" 8 ") == 8
    assert cli_plan.parse_devices("h100,a100") == ["h100", "a100"]
    assert cli_plan.parse_batch_sizes("1,4-6,2") == [1, 4, 5, 6, 2]
    with pytest.raises(ValueError, match="cannot read 'x'"):
        cli_plan.parse_batch_sizes("1,x")
    for text in ("1,1", "2,1-4"):  # a repeated size would print its row twice
        with pytest.raises(ValueError, match=r"^--batch-sizes lists the batch size [12] more than once"):
            cli_plan.parse_batch_sizes(text)


def test_unwritable_output_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "plan.json"
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--output", str(target)), 2,
                    str(target), "no-such-folder' does not exist")


def test_output_must_name_a_file_and_plot_a_png(tmp_path: Path) -> None:
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--output", "-", cwd=tmp_path),
                    2, "--output names a file; for the plan's JSON on standard output, use "
                       "--format json")
    assert not (tmp_path / "-").exists()
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--plot", str(tmp_path / "p.pdf")),
                    2, "the plot is a PNG image; name a .png file")
    assert not (tmp_path / "p.pdf").exists()
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--output", str(tmp_path)), 2,
                    f"--output {str(tmp_path)!r} names a folder: name the file to write in it")
    (tmp_path / "folder.png").mkdir()
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--plot", str(tmp_path / "folder.png")),
                    2, "--plot", "names a folder: name the file to write in it")
    one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", "--output", str(tmp_path / "new") + "/"),
                    2, "--output", "new/' names a folder")
    for option in ("--output", "--plot"):
        one_clean_error(run("plan", "--example", "llama-2-7b-8xh100", option, ""), 2,
                        f"{option} is empty: name the file to write")


@pytest.mark.parametrize("args, text", [
    (["--batch", "\u0663"], "argument --batch: must be a whole number written with the digits "
                            "0-9, got '\u0663'"),
    (["--sequence", "1_024"], "argument --sequence: must be a whole number written with"),
    (["--micro-batches", "9" * 40], "argument --micro-batches: 999999999999... has 40 digits"),
])
def test_integer_options_take_the_digits_0_to_9(args: list[str], text: str) -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", *args)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert text in out.stderr.strip().splitlines()[-1]


def test_an_output_that_is_an_input_or_the_other_output_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "gpt2.json"
    model.write_bytes((CONFIGS / "gpt2.json").read_bytes())
    (tmp_path / "link.json").symlink_to(model)
    for target in (model, tmp_path / "link.json"):
        one_clean_error(run("plan", str(model), "--on-oversize", "tile", "--output", str(target)),
                        2, f"--output {str(target)!r} is the MODEL file read: writing it would "
                           f"replace the input")
    assert model.read_bytes() == (CONFIGS / "gpt2.json").read_bytes()
    same = tmp_path / "same.png"
    one_clean_error(run("plan", str(model), "--on-oversize", "tile", "--output", str(same),
                        "--plot", str(same)),
                    2, f"--output and --plot name the same file ({str(same)!r})")
    assert not same.exists()


def test_an_output_may_not_be_an_example_model_or_a_listed_calibration(tmp_path: Path) -> None:
    # The check runs alone: a failure here must not write over a packaged example.
    example = str(scenario("llama-2-7b-8xh100").model_path())
    calibration = tmp_path / "cal.json"
    calibration.write_text("{}")
    for argv, message in (
            (["--example", "llama-2-7b-8xh100", "--output", example],
             "is the --example model file read"),
            (["--example", "llama-2-7b-8xh100", "--devices", f"h100,{calibration}",
              "--output", str(calibration)], "is the --devices file read")):
        args = cli.build_parser().parse_args(["plan", *argv])
        with pytest.raises(ValueError, match=message):
            cli_plan._check_output_paths(args)


def test_layers_applies_to_an_example_config_and_not_to_an_example_table() -> None:
    out = run("plan", "--example", "llama-2-7b-8xh100", "--layers", "sublayer")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Plan for llama-2-7b-8xh100: 67 layers")
    swept = run("sweep", "--example", "llama-2-7b-8xh100", "--layers", "sublayer",
                "--batch-sizes", "1", "--format", "json")
    assert json.loads(swept.stdout)["groups"] == [67]
    one_clean_error(run("plan", "--example", "seed-30b", "--layers", "sublayer"), 2,
                    "layer_granularity (--layers) 'sublayer' applies to a transformer config")


def test_a_config_that_gives_a_key_twice_is_refused(tmp_path: Path) -> None:
    text = (CONFIGS / "gpt2.json").read_text(encoding="utf-8")
    assert text.count('"n_layer": 12') == 1
    config = tmp_path / "twice.json"
    config.write_text(text.replace('"n_layer": 12', '"n_layer": 12, "n_layer": 48'),
                      encoding="utf-8")
    one_clean_error(run("plan", str(config), "--on-oversize", "tile"), 2,
                    "the key 'n_layer' appears twice in one object; which value is meant is "
                    "unclear")


def test_a_closed_standard_output_is_an_error_not_a_traceback() -> None:
    out = subprocess.run(f"'{sys.executable}' -m layerwise_fast plan --example "
                         f"llama-2-7b-8xh100 >&-", shell=True, capture_output=False,
                         stderr=subprocess.PIPE, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "standard output is closed" in out.stderr


def test_sweep_notes_a_sequence_longer_than_the_config_allows() -> None:
    out = run("sweep", str(CONFIGS / "gpt2.json"), "--batch-sizes", "1", "--sequence", "2048",
              "--on-oversize", "tile", "--format", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["sequence"] == 2048
    assert out.stderr == ("layerwise-fast: note: the sequence (2048 tokens) is longer than the "
                          "1024 positions of the model's config (n_positions or "
                          "max_position_embeddings)\n")
    within = run("sweep", str(CONFIGS / "gpt2.json"), "--batch-sizes", "1", "--sequence", "1024",
                 "--on-oversize", "tile")
    assert within.returncode == 0 and within.stderr == ""


def test_batch_sizes_take_the_digits_0_to_9_only() -> None:
    one_clean_error(run("sweep", "--example", "llama-2-7b-8xh100", "--batch-sizes", "1,\u00b2"),
                    2, "--batch-sizes: cannot read '\u00b2'")


def test_one_layer_one_group_one_device_read_in_the_singular(tmp_path: Path) -> None:
    table = tmp_path / "one.json"
    lf.LayerTable.from_records([{"name": "only", "kind": "mlp", "params": 10, "weight_dtype": "bf16",
                                 "act_elems_per_token": 1}]).to_json(table)
    out = run("plan", str(table), "--sequence", "1", "--granularity", "1")
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first.startswith("Plan for one: 1 layer in 1 group on 1 device (h100)")
    assert "1 micro-batch · sequence 1 token · chunk 1 token (" in second
    assert second.endswith("1 chunk per sequence")


def test_device_kinds_read_in_pipeline_order_and_a_numeric_file_name_is_a_calibration(tmp_path: Path) -> None:
    config = str(CONFIGS / "tiny-moe-synthetic.json")
    out = run("plan", config, "--devices", "h200,h100,h100")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].endswith("(h200, h100)")
    (tmp_path / "1e3").write_text("{}")  # a file whose name reads as a number is still a file
    one_clean_error(run("plan", config, "--devices", "1e3", cwd=tmp_path), 2, "calibration file '1e3'")
