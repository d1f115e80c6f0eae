"""File helpers shared by trained and frozen model files (no torch here)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ModelFileError(Exception):
    """A model file is missing, not a bbzip model, or does not match its recorded sha256."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write, exclusive: bool = False) -> None:
    """Call write(temporary path) next to `path`, then put it in place in one step, with the
    usual file mode. `exclusive`: never replace an existing file (a hard link fails with
    FileExistsError if the name exists, even one that appeared while `write` ran)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
