"""Finding the images of one class folder of an ImageFolder tree, as torchvision's ImageFolder does, but safely.

Symbolic links are followed (a tree of links into a shared image store is common), except that a link
back into a folder being walked (``ant/up -> ..``, ``bee/self -> .``) is a loop and is refused instead of
walked until the path length runs out, and a file reached twice (through a link, within a class, in
another class or in another split) is refused instead of being counted, and labelled, twice. Names
that are not UTF-8 are refused too: list files and reports are UTF-8 text.
"""
from __future__ import annotations

import os
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import check_utf8_path


def _is_image(name: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS   # deferred: torchvision: heavy, only this path needs it

    return name.lower().endswith(IMG_EXTENSIONS)


def _shown(path: str, tree: Path) -> str:
    return Path(path).relative_to(tree).as_posix() if Path(path).is_relative_to(tree) else path


class TreeWalk:
    """One scan of a tree: remembers every real file it found, so no file is counted twice across classes."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.files: dict[str, str] = {}   # real path -> the path it was found under

    def class_images(self, folder: Path) -> list[str]:
        """The image files under ``folder`` (paths under it, sorted like ImageFolder: by folder, then name)."""
        above = {os.path.realpath(parent) for parent in (folder, *folder.parents) if parent.is_relative_to(self.tree)}
        found: list[tuple[str, str]] = []
        self._visit(str(folder), frozenset(above - {os.path.realpath(folder)}), found)
        return [os.path.join(root, name) for root, name in sorted(found)]

    def _visit(self, directory: str, ancestors: frozenset[str], found: list[tuple[str, str]]) -> None:
        real = os.path.realpath(directory)
        if real in ancestors:
            raise UserError(f"the symbolic link {_shown(directory, self.tree)!r} in the ImageFolder tree {self.tree} "
                            f"points back into a folder that contains it ({real}), a loop that would list its images "
                            "again and again under the wrong class; remove that link")
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            check_utf8_path(entry.path, "the file name")
            if entry.is_dir():
                self._visit(entry.path, ancestors | {real}, found)
            elif _is_image(entry.name):
                self._count(entry.path)
                found.append((directory, entry.name))

    def _count(self, path: str) -> None:
        real = os.path.realpath(path)
        first = self.files.setdefault(real, path)
        if first != path:
            raise UserError(f"the image {_shown(path, self.tree)!r} of the ImageFolder tree {self.tree} is the same "
                            f"file as {_shown(first, self.tree)!r} (reached twice through a symbolic link), so it "
                            "would be counted, and labelled, twice; remove one of them")
