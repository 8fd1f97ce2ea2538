"""Executing notebooks with papermill: one notebook, or the numbered sequence sharing one run directory.

`run_sequence` executes the numbered notebooks (all eight, or those a profile or ``only`` selects) in order in a
kernel of the current interpreter, passing one `run_dir` so later notebooks reuse earlier checkpoints, and
records what ran in ``sequence.json`` (the manifest the report and the sweeps read).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.data.images import NOTEBOOK_SKIP_HINT, SKIP_HINT
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import check_utf8_path, ensure_dir, write_error
from nbn_tutorial.notebooks.implied import check_training_configs
from nbn_tutorial.notebooks.manifest import (MANIFEST_FILE, previous_manifest, record_failure, record_seconds,
                                             sequence_differences, start_manifest)
from nbn_tutorial.notebooks.profiles import (ParameterSource, check_parameters, combine_sources, notebook_parameters,
                                             select_notebooks, sequence_of)
from nbn_tutorial.notebooks.rendering import html_path
from nbn_tutorial.notebooks.report import REPORT_FILES, build_report, report_inputs
from nbn_tutorial.train.lock import folder_lock
from nbn_tutorial.train.progress import KERNEL_ENV  # compact training progress in executed notebooks

RUN_SUBDIR = "run"               # <out>/run is the run directory shared by the sequence
RUN_DIR_PARAMETER = "run_dir"


def _kernel_manager_class():
    """A kernel manager that always starts ipykernel in this interpreter (no kernelspec lookup)."""
    from ipykernel.kernelspec import get_kernel_dict   # deferred: notebook libraries: only notebook commands need them
    from jupyter_client import AsyncKernelManager   # deferred: notebook libraries: only notebook commands need them
    from jupyter_client.kernelspec import KernelSpec   # deferred: notebook libraries: only notebook commands need them
    from traitlets import default   # deferred: notebook libraries: only notebook commands need them

    class CurrentInterpreterKernelManager(AsyncKernelManager):
        """Starts `python -m ipykernel_launcher` with this interpreter; never looks up a kernelspec."""

        @default("transport")
        def _local_sockets(self) -> str:
            # Unix sockets keep the kernel off the network (and ipykernel quiet about plain TCP).
            return "ipc" if os.name == "posix" else "tcp"

        @default("ip")
        def _unique_socket_prefix(self) -> str:
            # jupyter_client's default prefix is "kernel-ipc" in the current directory, where two processes
            # starting kernels at once can pick the same socket files (and then reject each other's messages).
            if self.transport != "ipc":
                return super()._ip_default()
            return os.path.join(tempfile.gettempdir(), f"nbn-kernel-{uuid.uuid4().hex[:12]}-ipc")

        @property
        def kernel_spec(self) -> KernelSpec:
            """ipykernel's own kernel.json for sys.executable, built in memory."""
            # argv starts with sys.executable; KERNEL_ENV keeps progress bars from flooding executed copies
            return KernelSpec(**get_kernel_dict(), env=KERNEL_ENV)

        async def _async_interrupt_kernel(self) -> None:
            # Papermill shuts the kernel down once no cell runs; the interrupt jupyter_client sends
            # first would only make ipykernel log a KeyboardInterrupt error on the terminal.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return CurrentInterpreterKernelManager


def run_notebook(source: str | Path, target: str | Path, parameters: Mapping[str, Any] | None = None, *,
                 progress: bool = True, cell_timeout: int | None = None) -> Path:
    """Execute one notebook with papermill into `target` (kept on failure); errors name notebook and cell."""
    import papermill   # deferred: notebook libraries: only notebook commands need them
    # deferred: notebook libraries: only notebook commands need them
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    source, target = Path(source), Path(target)
    ensure_dir(target.parent)
    try:
        papermill.execute_notebook(str(source), str(target), parameters=dict(parameters or {}), kernel_name="python3",
                                   language="python", progress_bar=progress, execution_timeout=cell_timeout,
                                   kernel_manager_class=_kernel_manager_class())
    except papermill.PapermillExecutionError as error:
        message = (error.evalue or "").strip().splitlines()
        detail = (f"{error.ename}: {message[0]}" if message else error.ename).replace(SKIP_HINT, NOTEBOOK_SKIP_HINT)
        raise UserError(f"notebook {source.name} failed in cell {error.exec_count}: {detail} "
                        f"(executed copy with the traceback: {target})") from None
    except CellTimeoutError:
        raise UserError(f"notebook {source.name} timed out: a cell ran longer than {cell_timeout} s "
                        f"(executed copy: {target})") from None
    except DeadKernelError:
        raise UserError(f"notebook {source.name} failed: its kernel died, often from running out of memory "
                        f"(executed copy: {target})") from None
    except OSError as error:  # papermill writes the executed copy itself (full disk, no permission)
        raise write_error(target, error) from None
    return target


def shares_with_run_dir(parameters: Mapping[str, Any], notebooks: Sequence[Path],
                        run_dir: Path) -> dict[Path, dict[str, Any]]:
    """Each selected notebook's parameters (checked against the whole sequence), plus `run_dir` where declared."""
    shares = check_parameters(parameters, sequence_of(notebooks))
    return {path: {**shares[path], **({RUN_DIR_PARAMETER: str(run_dir)} if RUN_DIR_PARAMETER in
                                      notebook_parameters(path) else {})} for path in notebooks}


FRESH_HINT = "run again with --overwrite to replace that sequence, or choose another --out"


def _clear_sequence(out: Path, manifest: dict[str, Any]) -> None:
    """--overwrite: remove a previous sequence (its executed notebooks and their pages, its report, its manifest
    and the records of its run directory that the report reads); its training runs stay, since each is named by
    what its config computes and is reused only by that config."""
    run_dir = Path(manifest.get("run_dir") or out / RUN_SUBDIR)
    names = manifest.get("notebooks", [])
    paths = [*(out / name for name in names), *(html_path(out / name) for name in names),
             *(out / name for name in REPORT_FILES), *report_inputs(run_dir), out / MANIFEST_FILE]
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    print(f"overwrite: removed the previous sequence in {out} ({', '.join(names) or 'no notebook'}, its report and "
          f"recorded results); its training runs in {run_dir} are kept for configs that compute the same",
          file=sys.stderr)


def _open_manifest(out: Path, label: str, parameters: Mapping[str, Any], run_dir: Path, notebooks: Sequence[Path],
                   overwrite: bool, fresh_hint: str) -> dict[str, Any]:
    """The manifest of this run in ``out``: merged into an earlier one of the same parameters, refused for other
    parameters (one report never mixes two protocols), or fresh with ``overwrite``."""
    previous = previous_manifest(out)
    if previous is not None and overwrite:
        _clear_sequence(out, previous)
    elif previous is not None:
        differences = sequence_differences(previous, parameters, run_dir)
        if differences:
            raise UserError(f"{out} holds notebooks executed with other parameters ({'; '.join(differences)}), and "
                            f"one report must not mix two settings; {fresh_hint}")
    return start_manifest(out, label, parameters, run_dir, notebooks)


def _remove_stale_report(out: Path) -> None:
    """Remove a report that no longer describes the notebooks in ``out`` (one of them failed this time)."""
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    print(f"note: removed the report in {out}, which no longer matches its notebooks; it is written again once the "
          "sequence is complete", file=sys.stderr)


def execute_sequence(parameters: Mapping[str, Any], notebooks: Sequence[Path], out: Path, *, label: str,
                     progress: bool, overwrite: bool = False, report: bool = False,
                     fresh_hint: str = FRESH_HINT) -> Path:
    """Validate, then run the notebooks in order into `out` with one shared run directory.

    Parameters are checked against every notebook of the sequence, not only the selected ones, so a
    profile written for the whole sequence also works with --only; the training configs they imply
    are built and validated before the first notebook starts. Running notebooks again into a finished
    output with the same parameters merges into its manifest (see :mod:`.manifest`); other parameters are
    refused (``fresh_hint`` says what to do) unless ``overwrite`` replaces the previous sequence. The
    report is written when ``report`` is set, and rewritten whenever one was there already. `out` is
    locked for the whole call (:mod:`nbn_tutorial.train.lock`).
    """
    run_dir = Path(parameters.get(RUN_DIR_PARAMETER) or out / RUN_SUBDIR).resolve()
    shares = shares_with_run_dir(parameters, notebooks, run_dir)
    check_training_configs(shares)
    with folder_lock(out, "notebook output folder"):
        report = report or any((out / name).exists() for name in REPORT_FILES)
        manifest = _open_manifest(out, label, parameters, run_dir, notebooks, overwrite, fresh_hint)
        ensure_dir(run_dir)
        for position, path in enumerate(notebooks, start=1):
            if progress:
                print(f"[{position}/{len(notebooks)}] {path.name}", flush=True)
            started = time.perf_counter()
            try:
                run_notebook(path, out / path.name, shares[path], progress=progress)
            except UserError as error:
                record_failure(out, manifest, path.name, error)
                if any((out / name).exists() for name in REPORT_FILES):
                    _remove_stale_report(out)
                raise
            record_seconds(out, manifest, path.name, time.perf_counter() - started)
            if progress:
                print(f"      done in {manifest['seconds'][path.name]:.0f} s -> {out / path.name}", flush=True)
        if report:
            build_report(out)
    return out


def run_sequence(profile: str | None = None, params_file: str | Path | None = None, out_dir: str | Path | None = None,
                 only: Sequence[str] | str | None = None, progress: bool = True,
                 notebook_dir: str | Path | None = None, parameters: Mapping[str, Any] | None = None, *,
                 sources: Sequence[ParameterSource] | None = None, overwrite: bool = False,
                 report: bool = False) -> Path:
    """Execute the notebooks in order with a profile's parameters; returns the output directory.

    Parameters: the profile, then the parameter file, then `parameters` (later wins); `sources`, when
    given, replaces those three with an ordered list (what the CLI's --profile, -f and -p build).
    The output directory receives the executed notebooks, `sequence.json` and the run directory
    `run/` (unless the parameters name a `run_dir`, taken relative to the current directory).
    Default output: runs/<profile name>. An output holding notebooks run with other parameters is
    refused unless ``overwrite``; ``report`` writes the report (see :func:`execute_sequence`).
    """
    if sources is None:
        sources = [*([("profile", profile)] if profile is not None else []),
                   *([("file", params_file)] if params_file is not None else []),
                   *(("set", (name, value)) for name, value in (parameters or {}).items())]
    merged, label = combine_sources(sources)
    notebooks = select_notebooks(only, notebook_dir)
    out = Path(out_dir) if out_dir is not None else Path("runs") / label
    check_utf8_path(out, "output folder")
    return execute_sequence(merged, notebooks, out, label=label, progress=progress, overwrite=overwrite,
                            report=report)
