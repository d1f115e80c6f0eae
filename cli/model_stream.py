"""Coding a list of same-sized images with a VAE: bits-back over batches chained on one message.

Each image is one lane of the message head; a batch of up to B images is coded at once (its
pixels one step at a time along each lane). Batches are pushed in order onto the same message,
so initial bits are paid once per archive, not per batch; a smaller batch uses the first lanes.
The message starts with one lane and grows a lane (from bits already on the stack) each time a
batch is wider than any before it, so wide batches cost no extra bytes.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

import bbans
from bbans import Message
from models.inference import likelihood_params, posterior_params
from models.vae import MLPVAE


@dataclass(frozen=True)
class CodingSettings:
    k_steps: int = 0
    lr: float = 5e-3
    seed: int = 0
    batch_size: int = 100
    bucket_bits: int = 12
    posterior_precision: int = 24
    likelihood_precision: int = 24

    def to_dict(self) -> dict:
        return asdict(self)


def batch_seed(seed: int, batch_index: int) -> int:
    """The K-step noise seed of one batch, derived from the archive's seed."""
    digest = hashlib.sha256(f"bbzip-batch:{seed}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def batch_codec(model: MLPVAE, settings: CodingSettings, batch_index: int, n_images: int) -> bbans.Codec:
    config = model.config
    shape = (n_images, config.height, config.width)
    centres = bbans.bucket_centres(settings.bucket_bits)

    def posterior(x_symbols):
        images = x_symbols.reshape(shape).astype(np.uint8)
        mean, std = posterior_params(model, images, settings.k_steps, settings.lr, batch_seed(settings.seed, batch_index))
        return bbans.BucketedGaussian(mean, std, settings.bucket_bits, settings.posterior_precision)

    def likelihood(z_index):
        params = likelihood_params(model, centres[z_index])
        if config.likelihood == "bernoulli":
            return bbans.Bernoulli(logits=params["logits"], precision=settings.likelihood_precision)
        return bbans.DiscretisedLogistic(params["mean"], params["log_scale"], settings.likelihood_precision)

    prior = bbans.BucketPrior(settings.bucket_bits, (n_images, config.latent))
    return bbans.bits_back(prior, likelihood, posterior)


def _on_first_lanes(message: Message, n: int, step):
    """Run `step` on a message made of the first n lanes; the other lanes are left as they are."""
    if n == message.shape[0]:
        return step(message)
    sub, result = step(Message(message.head[:n], message.tail))
    head = message.head.copy()
    head[:n] = sub.head
    return Message(head, sub.tail), result


def coding_batches(n_images: int, batch_size: int):
    """(index, first, end) of each batch: 1, 2, 3, 5, 8, ... images (x1.5), then batch_size.

    The ramp is what keeps the initial bits small. A lane's first posterior pop needs bits; on
    an empty stack they come from the virtual bottom and are paid for in full. With the ramp,
    each new lane's first pop pulls words that earlier images already pushed (ordinary bits
    back), so only the very first images pay initial bits. The ramp grows by half, not double:
    a posterior pop can take nearly as many bits as an image adds, and a doubling batch would
    then run the stack dry and pull from the virtual bottom again.
    """
    bounds, start, size = [], 0, 1
    while start < n_images:
        end = min(start + min(size, batch_size), n_images)
        bounds.append((len(bounds), start, end))
        start, size = end, size + (size + 1) // 2
    return bounds


def _lanes_before(bounds, index: int) -> int:
    """Lanes the message has when batch `index` starts: as many as the widest batch before it."""
    return max([hi - lo for _, lo, hi in bounds[:index]], default=1)


def encode(model: MLPVAE, symbols: np.ndarray, settings: CodingSettings, on_batch=None) -> bytes:
    """symbols: (N, H, W) integers the model codes (0/1 for Bernoulli, 0..255 for logistic)."""
    n = len(symbols)
    flat = symbols.reshape(n, -1).astype(np.int64)
    message = Message.empty((1,), seed=settings.seed)
    for index, lo, hi in coding_batches(n, settings.batch_size):
        if hi - lo > message.shape[0]:
            message = message.grow(hi - lo - message.shape[0])
        codec = batch_codec(model, settings, index, hi - lo)
        message, _ = _on_first_lanes(message, hi - lo, lambda m: (codec.push(m, flat[lo:hi]), None))
        if on_batch:
            on_batch(hi - lo)
    return message.to_bytes()


def decode(model: MLPVAE, data: bytes, n_images: int, settings: CodingSettings, on_batch=None) -> np.ndarray:
    """The mirror of encode; raises bbans errors on corrupt input."""
    config = model.config
    bounds = coding_batches(n_images, settings.batch_size)
    message = Message.from_bytes(data, (_lanes_before(bounds, len(bounds)),), seed=settings.seed)
    out = np.empty((n_images, config.pixels), dtype=np.int64)
    for index, lo, hi in reversed(bounds):
        codec = batch_codec(model, settings, index, hi - lo)
        message, out[lo:hi] = _on_first_lanes(message, hi - lo, codec.pop)
        message = message.shrink(message.shape[0] - _lanes_before(bounds, index))
        if on_batch:
            on_batch(hi - lo)
    message.check_initial()
    return out.reshape(n_images, config.height, config.width)
