"""Test-session settings: nothing a test does may write into the source tree; parallel workers share the cores.

Datasets that are unpacked on first use (Fashion-MNIST from the Debian copy) go to a session folder
through $NBN_DATA, and list files of read-only image trees go to a session cache ($XDG_CACHE_HOME),
unless the caller set those variables already.

Under pytest-xdist (`make test` runs `pytest -n auto --dist loadgroup`) each worker uses one torch thread, and so do the
processes it starts (training CLIs, notebook kernels). The tests of one file stay on one worker (their
module-scoped trained runs are made once), heavy files are handed out first, and tests marked `alone` (a
browser, or several processes at once) run afterwards in a pass of their own (`make test` runs both passes).
"""
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_COURSE_GROUP = "quick_course"
# Handed out first under xdist, longest first (seconds measured in benchmarks/results/*test-durations*): a
# long unit that starts last would leave the other worker idle at the end.
HEAVY_FIRST = (QUICK_COURSE_GROUP, "test_file_datasets", "test_hardening", "test_data_identity", "test_reliability",
               "test_stage2", "test_progress", "test_benchmarks", "test_selection", "test_report_protocols",
               "test_compound", "test_wheel", "test_runner", "test_cli")


def _under_xdist() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


if _under_xdist():   # before any test imports torch: one thread per worker, inherited by its subprocesses
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def _group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return marker.args[0] if marker.args else marker.kwargs["name"]
    return "alone" if item.get_closest_marker("alone") else item.path.stem


def pytest_collection_modifyitems(config, items):
    """Under xdist: one group per test file (explicit groups and `alone` tests aside), heavy groups first."""
    if not _under_xdist():
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_group_of(item)))
    rank = {group: index for index, group in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(_group_of(item), len(rank)))   # stable: file order otherwise


@pytest.fixture(scope="session", autouse=True)
def _session_data_and_cache(tmp_path_factory):
    created = {}
    for variable, name in (("NBN_DATA", "data"), ("XDG_CACHE_HOME", "cache")):
        if not os.environ.get(variable):
            created[variable] = str(tmp_path_factory.mktemp(name))
            os.environ[variable] = created[variable]
    if _under_xdist():
        import torch

        torch.set_num_threads(1)
    yield
    for variable in created:
        os.environ.pop(variable, None)


@dataclass(frozen=True)
class QuickCourse:
    """The eight notebooks prepared with the quick profile (as `make demo` runs them) over one run directory."""

    folder: Path
    prepared: list[Path]
    parameters: dict[str, dict]   # notebook file name -> its parameters, run_dir included
    run_dir: Path


@pytest.fixture(scope="session")
def quick_course(tmp_path_factory) -> QuickCourse:
    """One quick-profile run directory for every test that executes the real notebooks with that profile: the
    first execution trains each run and the later ones load it (tests using it carry the quick_course group)."""
    from nbn_tutorial import notebooks as runner
    from nbn_tutorial.notebooks.runner import shares_with_run_dir

    folder = tmp_path_factory.mktemp(QUICK_COURSE_GROUP)
    prepared = runner.prepare_notebooks(folder, "quick")
    run_dir = (folder / runner.RUN_SUBDIR).resolve()
    notebooks = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    shares = shares_with_run_dir(runner.load_profile("quick"), notebooks, run_dir)
    return QuickCourse(folder, prepared, {path.name: values for path, values in shares.items()}, run_dir)


@pytest.fixture(scope="session")
def tiny_bn_run(tmp_path_factory) -> Path:
    """A finished 1-epoch BN run of the tiny digits config, trained once per session; read-only (copy it first)."""
    from nbn_tutorial import train
    from tiny_runs import BN_RUN, tiny_config

    return train.train(tiny_config(*BN_RUN), tmp_path_factory.mktemp("tiny_bn") / "run", progress=False)


@pytest.fixture(scope="session")
def tiny_nbn_run(tmp_path_factory) -> Path:
    """A finished 2-epoch NBN run of the tiny digits config (also the stage-1 run of the stage-2 tests), trained
    once per session; read-only (copy it first)."""
    from nbn_tutorial import train
    from tiny_runs import NBN_RUN, tiny_config

    return train.train(tiny_config(*NBN_RUN), tmp_path_factory.mktemp("tiny_nbn") / "run", progress=False)
