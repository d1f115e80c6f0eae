"""Model files: safetensors only (never pickle), the architecture in the file's metadata, and a
manifest of shipped weights with their full sha256, checked at load time.

Shipped models are stored frozen (models/shipped.py); their trained form is derived here from
the frozen integers.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import registry
from .files import ModelFileError, atomic_write, sha256_of
from .shipped import entry, load_shipped_frozen

FORMAT = "bbzip-mlp-vae-2"
# Version 1 had another logistic parameterisation (sigmoid mean, log-scale floor -7); its
# Bernoulli models mean the same under version 2, its logistic models do not.
READABLE_OLD_FORMATS = {"bbzip-mlp-vae-1": ("bernoulli",)}


def save_model(model, path: Path, info: dict | None = None) -> str:
    """Write the model to `path` atomically; returns its sha256. `info` lands in the metadata."""
    metadata = {"format": FORMAT, "architecture": registry.of_trained(model).name, "config": json.dumps(model.config.to_dict())}
    for key, value in (info or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return sha256_of(path)


def read_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as error:  # safetensors raises several types for bad headers
        raise ModelFileError(f"{path}: not a safetensors model file ({error})") from None


def load_model(path: Path, expected_sha256: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Load a model file; if `expected_sha256` is given the file must match it exactly."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ModelFileError(f"{path}: sha256 does not match the manifest (file changed or damaged)")
    metadata = read_metadata(path)
    file_format = metadata.get("format")
    if file_format != FORMAT and file_format not in READABLE_OLD_FORMATS:
        raise ModelFileError(f"{path}: not a bbzip model (metadata format {file_format!r})")
    try:
        architecture = registry.get(metadata.get("architecture", "mlp-vae"))  # files without one are MLP VAEs
        model_class = architecture.trained_class()
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        config = architecture.config_class(**json.loads(metadata["config"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: bad architecture metadata ({error})") from None
    if file_format != FORMAT and config.likelihood not in READABLE_OLD_FORMATS[file_format]:
        raise ModelFileError(f"{path}: a {config.likelihood} model from an older bbzip ({file_format}); retrain it")
    model = model_class(config)
    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{path}: tensors do not fit the architecture in its metadata") from error
    model.eval()
    return model, metadata


# -- shipped trained models (for training and evaluation; coding uses their frozen form) -------
def load_shipped(name: str) -> tuple[torch.nn.Module, dict]:
    """The trained form of a shipped model: the float network its frozen integers stand for
    (freezing it gives the same integers back). Metadata as a trained file's."""
    frozen, model_id = load_shipped_frozen(name)
    model = registry.get(frozen.architecture).trained_class()(frozen.config)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in frozen.float_state().items()}, strict=True)
    model.eval()
    shipped = entry(name)
    metadata = {"format": FORMAT, "architecture": frozen.architecture, "config": json.dumps(frozen.config.to_dict()),
                "command": shipped["command"], "description": shipped["description"], "shipped_as": name}
    return model, metadata


def load_trained(spec: str) -> tuple[torch.nn.Module, dict]:
    """A trained model from a .safetensors file, or a shipped model's name."""
    from .coder_choice import is_file_spec

    return load_model(Path(spec)) if is_file_spec(spec) else load_shipped(spec)


# -- training checkpoints (also safetensors: model, Adam state, generator state) ----------------
def save_checkpoint(path, model, optimizer, generator_states: list[torch.Tensor], epoch: int, history: list[float]) -> None:
    """The model, Adam's state and every shard's generator state (models/parallel.py: shard 0's
    as "generator", shard k's as "generator.k")."""
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            tensors[f"adam.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone().contiguous()
    for k, generator_state in enumerate(generator_states):
        tensors["generator" if k == 0 else f"generator.{k}"] = generator_state.clone()
    metadata = {"epoch": str(epoch), "history": json.dumps(history), "architecture": registry.of_trained(model).name,
                "config": json.dumps(model.config.to_dict()), "shards": str(len(generator_states))}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_checkpoint(path, model, optimizer, generators: list[torch.Generator]) -> tuple[int, list[float]]:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if int(metadata.get("shards", "1")) != len(generators):
        raise ModelFileError(f"{path}: a checkpoint of a run in {metadata.get('shards', '1')} shards; "
                             f"resume it with as many (--shards, or processes)")
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state = optimizer.state_dict()
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            state["state"].setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict(state)
    for k, generator in enumerate(generators):
        generator.set_state(tensors["generator" if k == 0 else f"generator.{k}"])
    return int(metadata["epoch"]), json.loads(metadata["history"])
