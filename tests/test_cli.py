"""The command line as a user meets it: one-sentence errors, exit status 2. The tests call `nbn_tutorial.cli.main`
in the test process (`cli_tools.run_cli`); the first test shows that this sees what a real process prints."""
import subprocess
from pathlib import Path

import pytest
from cli_tools import run_cli

ROOT = Path(__file__).resolve().parents[1]


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: ") and message.count("\n") == 0, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message


@pytest.mark.parametrize("args", [("data", "stats", "digits-lt"), ("train", "--config", "no_such_preset"),
                                  ("data", "stats", "digits-lt", "--imbalance-factor", "lots")],
                         ids=["output", "user-error", "argparse-error"])
def test_the_in_process_cli_sees_what_a_real_process_prints(args):
    in_process, real = run_cli(*args), run_cli(*args, separate_process=True)
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (real.returncode, real.stdout, real.stderr)


def test_data_list_names_every_registered_dataset():
    from nbn_tutorial.data import DATASETS

    result = run_cli("data", "list")
    assert result.returncode == 0, result.stderr
    for name in DATASETS:
        assert name in result.stdout


def test_data_stats_prints_counts_and_shot_groups():
    result = run_cli("data", "stats", "digits-lt", "--imbalance-factor", "10")
    assert result.returncode == 0, result.stderr
    for word in ("many", "medium", "few"):
        assert word in result.stdout.lower()


def test_data_stats_cifar_counts_follow_the_formula_without_files(tmp_path):
    from nbn_tutorial.data import longtail_counts

    result = run_cli("data", "stats", "cifar10-lt", "--imbalance-factor", "100", "--data-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert str(sum(longtail_counts(10, 5000, 100))) in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (("data", "stats", "cifar11-lt"), ("cifar10-lt", "digits-lt")),
    (("data", "stats", "digits-lt", "--imbalance-factor", "0.5"), ("imbalance factor",)),
    (("data", "stats", "digits-lt", "--imbalance-factor", "nan"), ("imbalance factor",)),
    (("data", "stats", "digits-lt", "--imbalance-factor", "abc"), ("imbalance factor",)),
    (("data", "stats", "digits-lt", "--profile", "linear"), ("exp", "step")),
])
def test_bad_data_input_is_one_sentence(args, fragments):
    assert_user_error(run_cli(*args), *fragments)


def test_missing_list_files_say_where_they_were_expected(tmp_path):
    result = run_cli("data", "stats", "imagenet-lt", "--data-root", str(tmp_path))
    assert_user_error(result, "ImageNet_LT_train.txt")


def test_data_root_comes_from_the_environment(tmp_path):
    result = run_cli("data", "stats", "places-lt", env={"NBN_DATA": str(tmp_path)})
    assert_user_error(result, str(tmp_path))


def test_train_with_a_missing_config_is_a_user_error(tmp_path):
    assert_user_error(run_cli("train", "--config", str(tmp_path / "nope.yaml")), "nope.yaml")


def test_evaluate_a_missing_checkpoint_is_a_user_error(tmp_path):
    assert_user_error(run_cli("evaluate", "--checkpoint", str(tmp_path / "best.pt")), "best.pt")
