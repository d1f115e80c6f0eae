"""Training loops: the VAE by its ELBO, and encoder-only fine-tuning (decoder frozen).

Both are plain functions with a progress callback, periodic checkpoints and resume. The same
seed gives the same weights on the same machine: shuffling and every noise draw come from one
torch.Generator, and the generator state is saved in checkpoints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .evaluate import values_per_image
from .objectives import denoising, negative_elbo, reverse_half_asleep, sleep
from .parallel import Shards
from .vae import MLPVAE
from .weights import load_checkpoint, save_checkpoint

ENCODER_OBJECTIVES = ("reverse-half-asleep", "sleep", "denoise")
SCHEDULES = ("constant", "cosine")


@dataclass
class Progress:
    epoch: int
    epochs: int
    step: int
    steps: int
    bpd: float  # running mean of the objective this epoch, bits per dimension


def _bits_per_dim(nats: float, model: MLPVAE) -> float:
    return nats / (values_per_image(model.config) * math.log(2.0))


def fit(
    model: MLPVAE,
    images: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    parameters,
    *,
    epochs: int,
    lr: float = 3e-4,
    batch_size: int = 100,
    seed: int = 0,
    progress: Callable[[Progress], None] | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    schedule: str = "constant",
    shards: Shards | None = None,
    device: str = "cpu",
    after_epoch: Callable[[int], None] | None = None,
) -> list[float]:
    """Adam on `loss_fn(batch, generator)` (mean nats per image). Returns the bpd of each epoch.
    `schedule` "cosine" lowers the learning rate from lr to 0 along a half cosine over all the
    steps of all the epochs (a resumed run continues the same curve). `shards` (models/
    parallel.py) says how each batch is cut and which shards this process computes; noise comes
    from CPU generators whatever the device, so it is the same on every device. `after_epoch`
    is called with the epoch's number after it (a held-out evaluation, say)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}")
    shards = shards or Shards()
    parameters = list(parameters)
    model.to(device)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generators = shards.generators(seed)
    data = torch.from_numpy(np.ascontiguousarray(images))
    start_epoch, history = 0, []
    if resume and checkpoint is not None and Path(checkpoint).exists():
        start_epoch, history = load_checkpoint(checkpoint, model, optimizer, generators)
    steps = math.ceil(len(data) / batch_size)
    for epoch in range(start_epoch, epochs):
        order = shards.shared_order(torch.randperm(len(data), generator=generators[0]))
        total = 0.0
        for step in range(steps):
            if schedule == "cosine":
                done = (epoch * steps + step) / (epochs * steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * done))
            batch = data[order[step * batch_size : (step + 1) * batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = 0.0
            for k, rows in enumerate(shards.parts(len(batch))):
                if k in shards.mine and len(rows):
                    part_loss = loss_fn(batch[rows].to(device), generators[k]) * (len(rows) / len(batch))
                    part_loss.backward()
                    loss += part_loss.item()
            total += shards.summed(parameters, loss)
            optimizer.step()
            if progress is not None:
                progress(Progress(epoch + 1, epochs, step + 1, steps, _bits_per_dim(total / (step + 1), model)))
        history.append(_bits_per_dim(total / steps, model))
        states = shards.gathered_states(generators)
        if checkpoint is not None and shards.leader and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
            save_checkpoint(checkpoint, model, optimizer, states, epoch + 1, history)
        if after_epoch is not None and shards.leader:
            after_epoch(epoch + 1)
    return history


def train_vae(model: MLPVAE, images: np.ndarray, **kwargs) -> list[float]:
    """Fit encoder and decoder by the ELBO."""
    return fit(model, images, lambda x, g: negative_elbo(model, x, g).mean(), model.parameters(), **kwargs)


def train_encoder(
    model: MLPVAE,
    images: np.ndarray,
    objective: str = "reverse-half-asleep",
    *,
    alpha: float = 0.5,
    sigma: float = 0.1,
    samples_from: str = "prior",
    **kwargs,
) -> list[float]:
    """Fine-tune only the encoder; the rest of the model (decoder, and the local model's head) is
    frozen. The reported bpd is the objective's value."""
    if objective not in ENCODER_OBJECTIVES:
        raise ValueError(f"objective must be one of {ENCODER_OBJECTIVES}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must lie in [0, 1]")
    encoder = {id(p) for p in model.encoder.parameters()}
    frozen = [p for p in model.parameters() if id(p) not in encoder]
    for p in frozen:
        p.requires_grad_(False)
    if objective == "reverse-half-asleep":
        loss = lambda x, g: reverse_half_asleep(model, x, alpha, g, samples_from)  # noqa: E731
    elif objective == "sleep":
        loss = lambda x, g: sleep(model, x, g)  # noqa: E731
    else:
        loss = lambda x, g: denoising(model, x, sigma, 0.5, g)  # noqa: E731
    try:
        return fit(model, images, loss, model.encoder.parameters(), **kwargs)
    finally:
        for p in frozen:
            p.requires_grad_(True)
