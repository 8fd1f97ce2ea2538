"""Test-session settings: nothing a test does may write into the source tree.

Datasets that are unpacked on first use (Fashion-MNIST from the Debian copy) go to a session folder
through $NBN_DATA, and list files of read-only image trees go to a session cache ($XDG_CACHE_HOME),
unless the caller set those variables already.
"""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_data_and_cache(tmp_path_factory):
    created = {}
    for variable, name in (("NBN_DATA", "data"), ("XDG_CACHE_HOME", "cache")):
        if not os.environ.get(variable):
            created[variable] = str(tmp_path_factory.mktemp(name))
            os.environ[variable] = created[variable]
    yield
    for variable in created:
        os.environ.pop(variable, None)
