"""One writer per folder: an advisory lock (``fcntl.flock``) on ``<folder>/.nbn-lock``, held for a whole run.

Training (train, stage 2, notebook training), study runs and notebook sequences take it where they open
their folder; a second writer gets one sentence naming the folder and the holder's process id, and
changes nothing there. The kernel drops the lock when its holder dies (even after ``kill -9``), so a
lock file that a dead holder left behind is taken over with a note; the holder's unfinished temporary
files (:func:`~nbn_tutorial.fileio.leftover_temp_files`) are removed then. The lock is re-entrant
within a process (a study run holds its run folder while training into it). Folders it had to create
are removed again when the run that created them leaves them empty (a refused start leaves nothing).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import leftover_temp_files, write_error
from nbn_tutorial.wording import plural

LOCK_FILE = ".nbn-lock"
_HELD: dict[Path, int] = {}   # resolved folder -> how many nested holds this process has on it


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing[::-1]


def _read_pid(fd: int) -> int | None:
    """The process id written into an open lock file (None when it holds none)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise write_error(path, error) from None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a holder that finished removes its lock file)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _acquire(folder: Path, what: str) -> int:
    """The open, locked lock file of ``folder``; a UserError naming the holder when another process has it."""
    path = folder / LOCK_FILE
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise UserError(f"{what} {folder} is in use: {who} is writing there; wait until it finishes, or "
                            "choose another --out") from None
        if _same_file(fd, path):
            return fd
        os.close(fd)   # locked a file its finished holder had just removed: lock the current one


def _take_over(fd: int, folder: Path) -> None:
    """Write this process's id into the lock; say so when a dead holder's lock and temporary files were left."""
    previous = _read_pid(fd)
    if previous is not None and previous != os.getpid():
        print(f"note: took over the lock of {folder} from process {previous}, which stopped without releasing it",
              file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    leftovers = leftover_temp_files(folder)
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        print(f"note: removed {plural(len(leftovers), 'temporary file')} that an interrupted write left in {folder} "
              f"({', '.join(path.name for path in leftovers[:3])})", file=sys.stderr)


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this lock created, innermost first, as long as they are empty (a refused or failed
    start leaves no empty folder behind)."""
    for path in reversed(created):
        try:
            path.rmdir()
        except FileNotFoundError:
            continue   # its creation failed
        except OSError:
            break      # not empty: the run wrote something there


def _release(fd: int, folder: Path, created: list[Path]) -> None:
    (folder / LOCK_FILE).unlink(missing_ok=True)   # while still holding it: see _same_file
    os.close(fd)
    _remove_if_empty(created)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run folder") -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if needed) for the ``with`` block; re-entrant within a process."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    created = _missing_folders(folder)
    try:
        for path in created:
            try:
                path.mkdir()
            except OSError as error:
                raise write_error(path, error) from None
        fd = _acquire(folder, what)
    except BaseException:
        _remove_if_empty(created)
        raise
    _HELD[key] = 1
    try:
        _take_over(fd, folder)
        yield folder
    finally:
        del _HELD[key]
        _release(fd, folder, created)
