"""Maintainer tool: ship trained weights, and freeze shipped weights for coding.

    python -m models.ship NAME FILE --description "..."   # copy FILE in, record it, freeze it
    python -m models.ship --refreeze NAME                   # freeze NAME's shipped file again

Trained files are copied into models/weights under `<arch>-<variant>-<sha256[:8]>.safetensors`;
freezing (a step of its own, see architectures.freeze) writes `<name>-int-<sha256[:8]>` beside it.
The manifest records both files' sha256 and the commands that made them.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .architectures import NUMERICS_VERSION, freeze, save_frozen
from .files import sha256_of
from .shipped import WEIGHTS_DIR, manifest, register, shipped_path, update_entry
from .weights import load_model


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
    refreeze(name, old)
    return target


def refreeze(name: str, old_entry: dict | None = None) -> Path:
    """Freeze the shipped trained file of `name` and record the frozen file in the manifest."""
    path, sha = shipped_path(name)
    model, _ = load_model(path, sha)
    command = f"python -m models.ship --refreeze {name}"
    staging = WEIGHTS_DIR / f".{name}-int.staging"
    frozen_sha = save_frozen(freeze(model), staging, {"frozen_from": sha, "command": command})
    target = WEIGHTS_DIR / f"{name}-int-{frozen_sha[:8]}.safetensors"
    staging.replace(target)
    previous = (old_entry or manifest().get(name, {})).get("frozen", {}).get("file")
    update_entry(name, lambda entry: {**entry, "frozen": {"file": target.name, "sha256": frozen_sha,
                                                          "numerics": NUMERICS_VERSION, "command": command}})
    if previous and previous != target.name:
        (WEIGHTS_DIR / previous).unlink(missing_ok=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--description")
    parser.add_argument("--refreeze", action="store_true", help="only freeze NAME's shipped file again")
    args = parser.parse_args()
    if args.refreeze:
        print(refreeze(args.name))
    elif args.file and args.description:
        print(ship(args.name, args.file, args.description))
    else:
        parser.error("give NAME FILE --description, or --refreeze NAME")


if __name__ == "__main__":
    main()
