"""Where a committed result came from: the command, the software versions, the commit and the date."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from nbn_tutorial import paths


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when files differ from it), or ``not a git checkout``."""
    root = paths.source_root()
    if root is None or not (root / ".git").exists():
        return "not a git checkout"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def software_versions() -> dict[str, str]:
    """Versions of Python, torch, numpy and this package, the commit, and the machine's processor count."""
    import numpy   # deferred: the versions of what ran: imported only when asked
    import torch   # deferred: the versions of what ran: imported only when asked

    import nbn_tutorial   # deferred: the versions of what ran: imported only when asked

    return {"nbn_tutorial": nbn_tutorial.__version__, "commit": git_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "platform": platform.platform(terse=True),
            "cpus": str(os.cpu_count()), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a user would type it (``nbn-tutorial ...``)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "python"
    if program in ("__main__.py", "-m"):
        program = "python -m nbn_tutorial"
    return " ".join([program, *argv[1:]])


def now() -> str:
    """The local date and time, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
