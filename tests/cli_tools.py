"""Helpers the command-line and runner tests share: run the real CLI, list its options, read its one-sentence error,
write tiny notebooks."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbn_tutorial.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, drop_env: tuple[str, ...] = (),
            preexec_fn=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m nbn_tutorial ARGS`` in a subprocess (from the checkout unless `cwd`), capturing its output."""
    full_env = {key: value for key, value in os.environ.items() if key not in drop_env}
    return subprocess.run([sys.executable, "-m", "nbn_tutorial", *args], capture_output=True, text=True,
                          timeout=timeout, env={**full_env, **(env or {})}, cwd=cwd or ROOT, preexec_fn=preexec_fn)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's one-sentence error (exit status 2, no traceback)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook whose first code cell, tagged `parameters`, holds `parameters`."""
    notebook = new_notebook()
    parameters_cell = new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [new_markdown_cell("# tiny"), parameters_cell, *(new_code_cell(c) for c in cells)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def cli_options() -> dict[str, set[str]]:
    """Every subcommand path ('data stats', 'train', ...) and the options it accepts."""
    found: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, subparser in action.choices.items():
                    walk(subparser, f"{name} {child}".strip())
            else:
                found.setdefault(name, set()).update(action.option_strings)

    walk(build_parser(), "")
    return found
