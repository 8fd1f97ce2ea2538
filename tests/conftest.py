"""Test-session settings: nothing a test does may write into the source tree; parallel workers share the cores.

Datasets that are unpacked on first use (Fashion-MNIST from the Debian copy) go to a session folder
through $NBN_DATA, and list files of read-only image trees go to a session cache ($XDG_CACHE_HOME),
unless the caller set those variables already.

Under pytest-xdist (`make test` runs `pytest -n auto --dist loadfile`) each worker uses one torch thread, and so
do the processes it starts (training CLIs, notebook kernels). The tests of one file stay on one worker (their
module-scoped trained runs are made once), heavy files are handed out first, and tests marked `alone` (a
browser, or several processes at once) run afterwards in a pass of their own (`make test` runs both passes).
"""
import os
from pathlib import Path

import pytest

# Handed out first under xdist, longest first (seconds measured in benchmarks/results/*test-durations*): a
# long file that starts last would leave the other worker idle at the end.
HEAVY_FIRST = ("test_quick_course", "test_file_datasets", "test_progress", "test_benchmarks", "test_hardening",
               "test_runner", "test_study", "test_rebalancing_study", "test_train", "test_wheel", "test_notebooks",
               "test_compound_study", "test_reliability", "test_data_identity", "test_stage2", "test_compound")


def _under_xdist() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


if _under_xdist():   # before any test imports torch: one thread per worker, inherited by its subprocesses
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def pytest_collection_modifyitems(config, items):
    """Under xdist: the heavy test files first (`--dist loadfile --no-loadscope-reorder` hands files out in
    collection order); the order of tests within a file is kept."""
    if not _under_xdist():
        return
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))   # stable: file order otherwise


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
