"""Maintainer tool: copy a trained weights file into models/weights under its canonical name
(`<arch>-<variant>-<sha256[:8]>.safetensors`) and record it in the manifest.

    python -m models.ship NAME FILE --description "..."

The command that made the file is read from its metadata.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .weights import WEIGHTS_DIR, load_model, manifest, register, sha256_of


def ship(name: str, source: Path, description: str, extra: dict | None = None) -> Path:
    _, metadata = load_model(source)  # refuses anything that is not a bbzip model
    sha = sha256_of(source)
    target = WEIGHTS_DIR / f"{name}-{sha[:8]}.safetensors"
    WEIGHTS_DIR.mkdir(exist_ok=True)
    old = manifest().get(name)
    shutil.copyfile(source, target)
    register(name, target, description, metadata.get("command", "unknown"), extra)
    if old and old["file"] != target.name:
        (WEIGHTS_DIR / old["file"]).unlink(missing_ok=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("file", type=Path)
    parser.add_argument("--description", required=True)
    args = parser.parse_args()
    print(ship(args.name, args.file, args.description))


if __name__ == "__main__":
    main()
