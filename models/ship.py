"""Maintainer tool: put a trained model into the store of shipped models (models/shipped.py).

    python -m bbzip.models.ship NAME FILE --description "..." [--default] [--tile N]   # freeze FILE, store its parts
    python -m bbzip.models.ship --remove NAME

The frozen integers are stored as a decoder part and an encoder part; a decoder that the store
already holds (the baseline's, for a reverse half-asleep encoder) is not stored again. The
manifest records both parts' sha256, the model's id and the command that trained FILE.
`--tile` sets the tile a tiled model without a latent codes in (its weights do not depend on it:
FrozenTiledARVAE.with_tile); the manifest's command then says so.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .architectures import NUMERICS_VERSION, freeze, narrowest
from .files import sha256_of
from .shipped import (WEIGHTS_DIR, config_json, files_in_use, manifest, model_id,
                      read_part, split_tensors, update_entry, write_part)
from .weights import load_model


def ship(name: str, source: Path, description: str, default: bool = False, tile: int | None = None) -> dict:
    """Freeze the trained file `source` and store it as `name`; returns its manifest entry.
    `default`: `bbzip compress` picks it for the images it codes when not given a model."""
    model, metadata = load_model(source)  # refuses anything that is not a bbzip model
    info = {"trained_from": sha256_of(source)}
    frozen, command = freeze(model), metadata.get("command", "unknown")
    if tile is not None:
        if not hasattr(frozen, "with_tile"):
            raise SystemExit(f"--tile: {frozen.architecture} codes images of one size")
        frozen, command = frozen.with_tile(tile), f"{command}; shipped with --tile {tile}"
    return store(name, frozen, description, command, info, default=default)


def store(name: str, frozen, description: str, command: str, info: dict, archive_id: tuple[str, str] | None = None,
          default: bool | str = False) -> dict:
    """Store a frozen model's parts and record them under `name`. `archive_id` is the id its
    archives record and what it is the sha256 of; by default model_id of its parts."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    decoder = _stored_decoder(frozen) or _write(frozen, name, "decoder", info)
    encoder = _write(frozen, name, "encoder", {**info, "decoder_sha256": decoder["sha256"]})
    sha256, id_of = archive_id or (model_id(decoder["sha256"], encoder["sha256"]), "parts")
    entry = {"description": description, "command": command, "numerics": NUMERICS_VERSION,
             "sha256": sha256, "id_of": id_of, "decoder": decoder, "encoder": encoder}
    if default:
        entry["default"] = default
    update_entry(name, lambda old: entry)
    _remove_unused()
    return entry


def remove(name: str) -> None:
    update_entry(name, lambda old: None)
    _remove_unused()


def _write(frozen, name: str, part: str, info: dict) -> dict:
    staging = WEIGHTS_DIR / f".{name}-{part}.staging"
    sha = write_part(frozen, part, staging, info)
    target = WEIGHTS_DIR / f"{name}-{part}-{sha[:8]}.safetensors"
    staging.replace(target)
    return {"file": target.name, "sha256": sha}


def _stored_decoder(frozen) -> dict | None:
    """The store's decoder part that holds exactly this model's decoder integers, if any.
    (Compared by value: a file's bytes also hold its metadata, in no fixed order.)"""
    wanted = narrowest(split_tensors(frozen)["decoder"])
    for name, shipped in manifest().items():
        part = read_part(name, "decoder")
        same_model = (part.metadata["architecture"], part.metadata["config"]) == \
                     (frozen.architecture, config_json(frozen))
        if same_model and part.tensors.keys() == wanted.keys() and \
                all(np.array_equal(part.tensors[key], value) for key, value in wanted.items()):
            return shipped["decoder"]
    return None


def _remove_unused() -> None:
    in_use = files_in_use()
    for path in WEIGHTS_DIR.glob("*.safetensors"):
        if path.name not in in_use:
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--description")
    parser.add_argument("--remove", action="store_true", help="take NAME out of the store")
    parser.add_argument("--default", action="store_true", help="a default model: bbzip compress picks it")
    parser.add_argument("--tile", type=int, help="a tiled model without a latent: the tile it codes in")
    args = parser.parse_args()
    if args.remove:
        remove(args.name)
    elif args.file and args.description:
        print(ship(args.name, args.file, args.description, args.default, args.tile))
    else:
        parser.error("give NAME FILE --description, or --remove NAME")


if __name__ == "__main__":
    main()
