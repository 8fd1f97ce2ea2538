"""Helpers the command-line and runner tests share: run the real CLI, list its options, read its one-sentence error,
write tiny notebooks."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbn_tutorial.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


# The warning filters a fresh interpreter starts with (what `python -m nbn_tutorial` would show).
_INTERPRETER_WARNING_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                                ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                                ("ignore", ResourceWarning, ""))


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, drop_env: tuple[str, ...] = (),
            preexec_fn=None, timeout: int = 300, separate_process: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI with ARGS (from the checkout unless `cwd`), capturing its output and exit status.

    By default this calls `nbn_tutorial.cli.main` (what `python -m nbn_tutorial` calls) in this process, which saves
    the interpreter start and the torch import of a subprocess; `separate_process` (or `preexec_fn`) runs
    ``python -m nbn_tutorial ARGS`` instead, for tests of the process itself (signals, kills, the entry point);
    `timeout` applies to that process only.
    """
    if separate_process or preexec_fn is not None:
        full_env = {key: value for key, value in os.environ.items() if key not in drop_env}
        return subprocess.run([sys.executable, "-m", "nbn_tutorial", *args], capture_output=True, text=True,
                              timeout=timeout, env={**full_env, **(env or {})}, cwd=cwd or ROOT,
                              preexec_fn=preexec_fn)
    stdout, stderr = io.StringIO(), io.StringIO()
    with (_environment(env or {}, drop_env), contextlib.chdir(cwd or ROOT), contextlib.redirect_stdout(stdout),
          contextlib.redirect_stderr(stderr)):
        status = _call_main(list(args))
    return subprocess.CompletedProcess(["nbn_tutorial", *args], status, stdout.getvalue(), stderr.getvalue())


def _call_main(argv: list[str]) -> int:
    """`main(argv)` as an interpreter would run it: warnings and tracebacks on stderr, the status it exits with."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        for action, category, module in _INTERPRETER_WARNING_FILTERS:
            warnings.filterwarnings(action, category=category, module=module, append=True)
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = _exit_status(exit_.code)
        except BaseException:  # noqa: BLE001 - an interpreter prints any other exception as a traceback, status 1
            traceback.print_exc()
            status = 1
    for warning in caught:
        sys.stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno,
                                                warning.line))
    return status


def _exit_status(code: object) -> int:
    """The status `raise SystemExit(code)` gives a process (a message is printed and gives 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _environment(env: dict[str, str], drop: tuple[str, ...]) -> Iterator[None]:
    """`os.environ` with `drop` removed and `env` set, restored afterwards."""
    saved = dict(os.environ)
    for key in drop:
        os.environ.pop(key, None)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


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
