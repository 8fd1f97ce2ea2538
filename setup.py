"""Build hook: a wheel carries the presets, notebook profiles, notebooks and studies as package data.

The source tree keeps `configs/`, `notebooks/` and `studies/` at the top level (as the README shows);
a normal (non-editable) build copies them into `nbn_tutorial/_bundled/`, where `nbn_tutorial.paths`
finds them when the package runs outside a checkout. Everything else is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {  # top-level folder -> glob patterns copied into nbn_tutorial/_bundled/<folder>/
    "configs": ("*.yaml",),
    "notebooks": ("*.ipynb", "sanitize.cfg", "params/*.yaml"),
    "studies": ("*.yaml", "results/**/*.csv", "results/**/*.md"),
}


class BuildPyWithResources(build_py):
    """build_py that also copies the top-level resources into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        target = Path(self.build_lib) / "nbn_tutorial" / "_bundled"
        for folder, patterns in BUNDLED.items():
            for pattern in patterns:
                for source in sorted((ROOT / folder).glob(pattern)):
                    destination = target / folder / source.relative_to(ROOT / folder)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildPyWithResources})
