"""nbn_tutorial: long-tailed recognition and Normalizing Batch Normalization, for learning and research.

Notebooks use one namespace: ``import nbn_tutorial as nbt`` then ``nbt.data``, ``nbt.nn``, ``nbt.models``,
``nbt.losses``, ``nbt.train``, ``nbt.diagnosis``, ``nbt.plots``, ``nbt.notebooks``.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("errors", "paths", "fileio", "registry", "accuracy", "data", "nn", "models", "losses", "train",
               "diagnosis", "plots", "notebooks", "study", "provenance", "workspace", "cli")


def __getattr__(name: str):
    # Lazy submodule import keeps `nbn-tutorial data list` fast (torch loads only when needed).
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
