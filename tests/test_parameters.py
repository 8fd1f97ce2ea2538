"""Notebook parameters from the command line: `-p NAME VALUE` (YAML values, as papermill parses them),
combined with `--profile` and `-f` in command-line order (later wins), for `notebooks run` and `sweep`.

Executed on the tiny notebooks of tests/test_runner.py (real papermill, real kernels).
"""
import json

import pytest
from cli_tools import run_cli
from test_runner import injected_parameters, tiny, write_notebook, write_yaml  # noqa: F401 (tiny: fixture)

from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks import profiles


@pytest.mark.parametrize("text, value", [("5", 5), ("0.5", 0.5), ("true", True), ("True", True), ("None", None),
                                         ("null", None), ("[0, 1]", [0, 1]), ("digits-lt", "digits-lt"),
                                         ("a: b: c", "a: b: c")])
def test_p_values_are_parsed_as_yaml(text, value):
    assert profiles.parse_parameter_value(text) == value


def test_cli_collects_profile_file_and_p_in_command_line_order(tmp_path):
    from nbn_tutorial.cli import build_parser

    args = build_parser().parse_args(["notebooks", "run", "--profile", "fashion", "-f", "mine.yaml", "-p", "seed", "3",
                                      "-p", "epochs", "7", "--out", "x"])
    assert args.sources == [("profile", "fashion"), ("file", "mine.yaml"), ("set", ["seed", "3"]),
                            ("set", ["epochs", "7"])]
    assert build_parser().parse_args(["notebooks", "sweep", "s.yaml", "-p", "epochs", "2"]).sources == [
        ("set", ["epochs", "2"])]


def test_later_sources_win_and_name_the_default_output(tiny, tmp_path):
    mine = write_yaml(tmp_path / "mine.yaml", {"size": 3, "label": "m"})
    base = write_yaml(tmp_path / "base.yaml", {"size": 1, "ratio": 0.25})
    out = runner.run_sequence(out_dir=tmp_path / "a", notebook_dir=tiny, progress=False, sources=[
        ("profile", str(base)), ("file", mine), ("set", ("size", 9))])
    assert injected_parameters(out / "01_first.ipynb")["size"] == 9
    assert injected_parameters(out / "02_second.ipynb")["label"] == "m"
    assert json.loads((out / runner.MANIFEST_FILE).read_text())["profile"] == "base+mine"
    out = runner.run_sequence(out_dir=tmp_path / "b", notebook_dir=tiny, progress=False, only="01", sources=[
        ("set", ("size", 9)), ("file", mine)])
    assert injected_parameters(out / "01_first.ipynb")["size"] == 3   # the file came later
    parameters, label = profiles.combine_sources([("set", ("seed", 2))])
    assert parameters == {**runner.load_profile("quick"), "seed": 2} and label == "quick"


def test_python_api_takes_profile_file_and_parameters_together(tiny, tmp_path):
    base, mine = write_yaml(tmp_path / "base.yaml", {"size": 1}), write_yaml(tmp_path / "mine.yaml", {"size": 2})
    out = runner.run_sequence(profile=str(base), params_file=mine, parameters={"label": "z"}, out_dir=tmp_path / "o",
                              only="01,02", notebook_dir=tiny, progress=False)
    assert (out / runner.RUN_SUBDIR / "second.txt").read_text() == "z2"


def test_cli_p_with_an_unknown_name_is_one_sentence(tmp_path):
    result = run_cli("notebooks", "run", "--profile", "quick", "-p", "epochz", "3", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.startswith("error: unknown parameter 'epochz'"), result.stderr
    assert "did you mean 'epochs'" in result.stderr and "Traceback" not in result.stderr


def test_sweep_p_overrides_fixed_parameters_but_not_the_grid(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_only.ipynb", "seed = 0\nscale = 1", "print(seed * scale)")
    sweep = write_yaml(tmp_path / "sweep_p.yaml", {"profile": str(write_yaml(tmp_path / "b.yaml", {})),
                                                   "parameters": {"scale": 2}, "grid": {"seed": [0, 1]}})
    runner.run_sweep(sweep, tmp_path / "out", notebook_dir=folder, progress=False, sources=[("set", ("scale", 5))])
    assert injected_parameters(tmp_path / "out" / "seed=1" / "01_only.ipynb") == {"seed": 1, "scale": 5}
    with pytest.raises(UserError, match="'seed' cannot be overridden for sweep sweep_p: it is a grid parameter"):
        runner.run_sweep(sweep, tmp_path / "out2", notebook_dir=folder, progress=False, sources=[("set", ("seed", 5))])
    with pytest.raises(UserError, match="unknown parameter 'scal'"):
        runner.run_sweep(sweep, tmp_path / "out3", notebook_dir=folder, progress=False, sources=[("set", ("scal", 5))])
