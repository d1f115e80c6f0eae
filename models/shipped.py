"""The manifest of shipped weights: each name's trained file and its frozen (coding) file, with
their full sha256, checked at load time, and the commands that made them.

Shipped files are named `<arch>-<variant>-<sha256[:8]>.safetensors` (CompressAI's convention).
"""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

from .files import ModelFileError, atomic_write, sha256_of

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def manifest() -> dict:
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def _entry(name: str) -> dict:
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ModelFileError(f"no shipped model named {name!r} (installed: {known})")
    return entries[name]


def shipped_path(name: str) -> tuple[Path, str]:
    """The trained (torch) file of a shipped model and its sha256."""
    entry = _entry(name)
    return WEIGHTS_DIR / entry["file"], entry["sha256"]


def shipped_frozen_path(name: str) -> tuple[Path, str]:
    """The frozen (integer, coding) file of a shipped model and its sha256."""
    entry = _entry(name)
    if "frozen" not in entry:
        raise ModelFileError(f"shipped model {name!r} has no frozen form (python -m models.freeze {name})")
    return WEIGHTS_DIR / entry["frozen"]["file"], entry["frozen"]["sha256"]


def find_frozen_by_sha256(sha256: str) -> str | None:
    """The shipped model whose frozen file has this sha256."""
    for name, entry in manifest().items():
        if entry.get("frozen", {}).get("sha256") == sha256:
            return name
    return None


def update_entry(name: str, update) -> None:
    """Change one manifest entry under a lock (two training runs may finish at once)."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    with open(WEIGHTS_DIR / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = manifest()
        entries[name] = update(entries.get(name))
        atomic_write(MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n"))


def register(name: str, path: Path, description: str, command: str, extra: dict | None = None) -> None:
    """Add or replace the entry of a trained weights file that lives in WEIGHTS_DIR."""
    entry = {"file": Path(path).name, "sha256": sha256_of(path), "description": description, "command": command,
             **(extra or {})}
    update_entry(name, lambda old: entry)
