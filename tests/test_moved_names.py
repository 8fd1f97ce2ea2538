"""The computations that left nbn_tutorial.notebooks (issue 18): an old name fails with its new home, which exists."""
import importlib

import pytest

from nbn_tutorial import notebooks
from nbn_tutorial.notebooks.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_name_points_to_a_name_that_exists(old):
    module, attribute = MOVED[old].split(" ")[0].rsplit(".", 1)
    assert hasattr(importlib.import_module(f"nbn_tutorial.{module}"), attribute)
    assert old not in notebooks.__all__
    with pytest.raises(AttributeError, match=f"use nbn_tutorial.{MOVED[old].split(' ')[0]}"):
        getattr(notebooks, old)


def test_an_unknown_name_is_the_usual_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_helper'"):
        notebooks.no_such_helper
    assert not hasattr(notebooks, "no_such_helper")
