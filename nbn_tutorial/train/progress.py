"""Training progress for people: widget bars in JupyterLab, text bars in a terminal, one compact output under papermill.

The mode comes from the environment variable ``NBN_PROGRESS`` (``widget``, ``text``, ``compact`` or
``off``) when it is set. Otherwise:

- a notebook kernel that a Jupyter server started for an open notebook (the server sets
  ``JPY_SESSION_NAME``) draws **widget** bars when ipywidgets is installed;
- any other kernel (papermill, nbclient, nbval, ``nbconvert --execute``) gets the **compact** output:
  one text output per training call, updated in place, so a saved notebook holds no per-batch lines;
- outside a kernel (the CLI, a script), nested **text** bars on stderr, as tqdm draws them.

Messages about a run (what trains where, the final accuracies) go to :func:`message_stream`: stdout
inside a kernel, where stderr shows as a red block, and stderr in a terminal.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any, TextIO

from nbn_tutorial.registry import check_choice

PROGRESS_ENV = "NBN_PROGRESS"
MODES = ("widget", "text", "compact", "off")
# The environment of the kernels the notebook runner starts: compact progress, and at most one update
# per 30 s from any other tqdm bar (tqdm reads TQDM_* variables as defaults).
KERNEL_ENV = {PROGRESS_ENV: "compact", "TQDM_MININTERVAL": "30"}
COMPACT_REFRESH_S = 5.0       # in a kernel the compact output is rewritten at most this often
COMPACT_LINE_S = 30.0         # outside a kernel a compact line is printed at most this often ...
COMPACT_LINE_FRACTION = 0.1   # ... and only after another tenth of the epochs


def in_kernel() -> bool:
    """True inside an IPython kernel (a notebook, papermill, nbval), False in a terminal or script."""
    if "IPython" not in sys.modules:  # a kernel has imported IPython long before any training starts
        return False
    from IPython import get_ipython   # deferred: only inside a kernel

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _has_widgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def progress_mode() -> str:
    """The progress mode of this process: ``widget``, ``text``, ``compact`` or ``off`` (see the module doc)."""
    requested = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if requested:
        check_choice(f"progress mode (environment variable {PROGRESS_ENV})", requested, MODES)
        return "compact" if requested == "widget" and not (in_kernel() and _has_widgets()) else requested
    if not in_kernel():
        return "text"
    return "widget" if os.environ.get("JPY_SESSION_NAME") and _has_widgets() else "compact"


def message_stream() -> TextIO:
    """Where messages about a run go: stdout inside a notebook kernel, stderr elsewhere."""
    return sys.stdout if in_kernel() else sys.stderr


class BatchProgress:
    """Progress within one epoch; this base class shows nothing (tqdm-like ``update`` and ``set_postfix``)."""

    def update(self, n: int = 1) -> None:
        """Count ``n`` more batches."""

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        """Show running values such as the loss."""

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the epoch's progress."""


class TrainingProgress(BatchProgress):
    """The progress output of one training call over epochs; this base class shows nothing (mode ``off``)."""

    def __init__(self, header: str, total: int, initial: int = 0) -> None:
        self.header, self.total, self.n = header, total, initial
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        """Count ``n`` more epochs."""
        self.n += n

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        """Show the latest metrics (e.g. acc, bal) beside the epoch count."""
        self.postfix = values

    def batches(self, epoch: int, total: int) -> BatchProgress:
        """Progress over the ``total`` batches of 0-based ``epoch``."""
        return BatchProgress()

    def __enter__(self) -> TrainingProgress:
        return self


class _EpochBar(TrainingProgress):
    """A training progress drawn as one tqdm bar over epochs (``self.bar``, made by the subclass)."""

    bar: Any

    def update(self, n: int = 1) -> None:
        super().update(n)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class TextProgress(_EpochBar):
    """Nested tqdm text bars on stderr: epochs, and the batches of the current epoch (for terminals)."""

    def __init__(self, header: str, total: int, initial: int = 0) -> None:
        super().__init__(header, total, initial)
        from tqdm import tqdm   # deferred: only when a bar is shown

        print(header, file=sys.stderr)
        self.bar = tqdm(total=total, initial=initial, desc="training", unit="epoch", dynamic_ncols=True,
                        file=sys.stderr)

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.bar.set_postfix(refresh=refresh, **values)

    def batches(self, epoch: int, total: int) -> BatchProgress:
        from tqdm import tqdm   # deferred: only when a bar is shown

        return tqdm(total=total, leave=False, desc=f"epoch {epoch + 1}", unit="batch", dynamic_ncols=True,
                    file=sys.stderr)


class _PostfixBatches(BatchProgress):
    """Batches of an epoch shown in the postfix of the one widget bar (one widget per training call)."""

    def __init__(self, owner: WidgetProgress, epoch: int, total: int) -> None:
        self.owner, self.epoch, self.total, self.done = owner, epoch, total, 0

    def update(self, n: int = 1) -> None:
        self.done += n

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.owner.bar.set_postfix({"epoch": self.epoch + 1, "batch": f"{self.done}/{self.total}", **values})


class WidgetProgress(_EpochBar):
    """One ipywidgets bar per training call (JupyterLab), with the running batch and metrics as its postfix."""

    def __init__(self, header: str, total: int, initial: int = 0) -> None:
        super().__init__(header, total, initial)
        from tqdm.notebook import tqdm   # deferred: only when a bar is shown

        print(header, file=sys.stdout)
        self.bar = tqdm(total=total, initial=initial, desc="training", unit="epoch")

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.bar.set_postfix(refresh=True, **values)

    def batches(self, epoch: int, total: int) -> BatchProgress:
        return _PostfixBatches(self, epoch, total)


class CompactProgress(TrainingProgress):
    """No bars: in a kernel one plain-text output rewritten in place; elsewhere a line per tenth of the epochs."""

    def __init__(self, header: str, total: int, initial: int = 0) -> None:
        super().__init__(header, total, initial)
        self.started = self.last_shown = time.perf_counter()
        self.shown_at = initial
        self.handle = None
        if in_kernel():
            from IPython.display import Pretty, display   # deferred: only inside a kernel

            self.handle = display(Pretty(self._text()), display_id=True)
        else:
            print(header, file=sys.stderr, flush=True)

    def status(self, final: bool = False) -> str:
        """``epoch 12/30, 8 s, acc 0.901, bal 0.870`` (``trained 30/30 epochs in ...`` once finished)."""
        seconds = time.perf_counter() - self.started
        metrics = "".join(f", {key} {value}" for key, value in self.postfix.items())
        if final:
            return f"trained {self.n}/{self.total} epochs in {seconds:.0f} s{metrics}"
        return f"epoch {self.n}/{self.total}, {seconds:.0f} s{metrics}"

    def _text(self, final: bool = False) -> str:
        return f"{self.header}\n{self.status(final)}"

    def _due(self) -> bool:
        elapsed = time.perf_counter() - self.last_shown
        if self.handle is not None:
            return elapsed >= COMPACT_REFRESH_S
        return elapsed >= COMPACT_LINE_S and self.n - self.shown_at >= COMPACT_LINE_FRACTION * self.total

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        super().set_postfix(refresh, **values)
        if self._due():
            self._show()

    def _show(self, final: bool = False) -> None:
        self.last_shown, self.shown_at = time.perf_counter(), self.n
        if self.handle is not None:
            from IPython.display import Pretty   # deferred: only inside a kernel

            self.handle.update(Pretty(self._text(final)))
        else:
            print(self.status(final), file=sys.stderr, flush=True)

    def close(self) -> None:
        self._show(final=True)


_MODE_CLASSES = {"off": TrainingProgress, "text": TextProgress, "widget": WidgetProgress,
                 "compact": CompactProgress}


def training_progress(show: bool, header: str, total: int, initial: int = 0) -> TrainingProgress:
    """The progress output of one training call (``show=False``: none), in this process's :func:`progress_mode`."""
    mode = progress_mode() if show else "off"
    return _MODE_CLASSES[mode](header, total, initial)
