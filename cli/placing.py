"""Putting decoded files in place under the output folder: all of them or none.

Every file is first written into a staging folder inside the output folder (same file system,
so each is then moved into place in one step); if anything fails, the files already moved and
the folders made for them are taken back. A process killed outright leaves only its staging
folder, which the next bbzip writing there removes (models.files.remove_leftovers).
"""
from __future__ import annotations

import array
import contextlib
import itertools
import os
import shutil
import stat
import tempfile
from pathlib import Path

from bbzip.models.files import leftover_prefix, remove_leftovers

from .errors import BBZipError


def check_room(output_dir: Path, needed: int) -> None:
    """Before anything is written: refuse files that need more bytes (`needed`: what the archive
    declares, cli/entry_kind.py's least_bytes) than the output's file system has free."""
    folder = output_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise BBZipError(f"{output_dir}: its files need at least {needed:,} bytes, as the archive declares; "
                         f"{free:,} are free there; nothing was written")


class Staging:
    """Files written one at a time as they are decoded (so none need stay in memory, nor all of
    a large one), then put in place together by `place`; leaving the `with` block without
    `place` writes nothing."""

    def __init__(self, output_dir: Path, names):
        """`names`: the archive's names (a sequence, by entry index: archive.names)."""
        self.output_dir, self._names = output_dir, names
        # Each staged file's entry index (its name is the archive's, derived again when it is
        # placed) and whether it is a link: a Path a file was most of a million files' memory, a
        # name a file about a hundred bytes.
        self.entries = array.array("q")
        self.links = bytearray()

    def __enter__(self) -> "Staging":
        self.made = _make_folder(self.output_dir)
        remove_leftovers(self.output_dir)
        self.folder = tempfile.mkdtemp(dir=self.output_dir, prefix=leftover_prefix())
        return self

    def add(self, reader) -> str | None:
        """Restore an entry (coding.EntryReader) into the staging folder, to go to its name under
        the output folder; returns why it is lost (nothing of it is kept then), or None."""
        staged = os.path.join(self.folder, str(len(self.entries)))
        if reader.is_link:
            why = reader.restore(None)
            if why is None:
                os.symlink(reader.link_target, staged)
        else:
            with open(staged, "wb") as f:
                why = reader.restore(f)
            if why is not None:
                os.unlink(staged)
            elif reader.attributes:
                permissions, mtime_ns = reader.attributes
                os.chmod(staged, permissions)
                os.utime(staged, ns=(mtime_ns, mtime_ns))
        if why is None:
            self.entries.append(reader.index)
            self.links.append(reader.is_link)
        return why

    def place(self) -> None:
        """Every staged file to its name. Paths here are strings: a Path a file (two a move) is
        most of the time of a move, and pathlib interns every name it parses."""
        output_dir = str(self.output_dir)
        root = os.path.realpath(output_dir)
        for entry in self.entries:  # before anything moves: bbzip replaces only files and links
            target = os.path.join(output_dir, self._names[entry])
            if _special(target):
                raise BBZipError(f"{target}: exists and is not a regular file; not replacing it, nothing was written")
        placed = array.array("q")  # (the index of) each target that did not exist before: removed again if a later one fails
        try:
            # Files first, links last, so that no file is written through a link of this archive;
            # and every folder a file goes into must really lie inside the output folder (a link
            # already there must not lead a file out of it).
            inside = set()  # folders made and found to lie inside the output folder (one look each)
            for index in itertools.chain(self._staged(links=False), self._staged(links=True)):
                target = os.path.join(output_dir, self._names[self.entries[index]])
                parent = os.path.dirname(target)
                if self.links[index] or parent not in inside:  # a link of this archive placed earlier may be a folder's part
                    self.made += _make_folder(Path(parent))
                    if os.path.commonpath([root, os.path.realpath(parent)]) != root:
                        raise BBZipError(f"{target}: its folder leads outside {self.output_dir} (through a symbolic "
                                         "link); nothing was written")
                    inside.add(parent)
                existed = os.path.lexists(target)
                os.replace(os.path.join(self.folder, str(index)), target)
                if not existed:
                    placed.append(index)
            placed, self.made = array.array("q"), []
        finally:
            for index in placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(output_dir, self._names[self.entries[index]]))

    def _staged(self, links: bool):
        """The indices of the staged links, or of the other files, in order."""
        return (index for index, is_link in enumerate(self.links) if is_link == links)

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        for folder in reversed(self.made):  # deepest last made, first removed; only if left empty
            try:
                folder.rmdir()
            except OSError:
                pass


def _make_folder(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it made, outermost first."""
    missing = []
    while not folder.exists() and not folder.is_symlink():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _special(path: Path) -> bool:
    """Whether something other than a regular file or a symbolic link is at `path`."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))
