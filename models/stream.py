"""Coding a list of same-sized images with a VAE: bits-back over batches chained on one message.

The model's `batch_codec(settings, first_index, n)` gives the bits-back codec of one batch; the
K-step noise of an image depends on its index in the stream, not on its batch.
Each image is one lane of the message head; a batch of up to B images is coded at once (its
pixels one step at a time along each lane). Batches are pushed in order onto the same message,
so initial bits are paid once per archive, not per batch; a smaller batch uses the first lanes.
The message starts with one lane and grows a lane (from bits already on the stack) each time a
batch is wider than any before it, so wide batches cost no extra bytes.
"""
from __future__ import annotations

import numpy as np

from bbzip.bbans import Message

from .coding_settings import CodingSettings


def _on_first_lanes(message: Message, n: int, step):
    """Run `step` on a message made of the first n lanes; the other lanes are left as they are."""
    if n == message.shape[0]:
        return step(message)
    sub, result = step(Message(message.head[:n], message.tail))
    head = message.head.copy()
    head[:n] = sub.head
    return Message(head, sub.tail), result


def coding_batches(n_images: int, batch_size: int, ramp: bool = True):
    """(index, first, end) of each batch: 1, 2, 3, 5, 8, ... images (x1.5), then batch_size;
    without `ramp` (a model coded without bits back, which needs no bits on the stack to start
    a lane), batch_size images a batch from the first.

    The ramp is what keeps the initial bits small. A lane's first posterior pop needs bits; on
    an empty stack they come from the virtual bottom and are paid for in full. With the ramp,
    each new lane's first pop pulls words that earlier images already pushed (ordinary bits
    back), so only the very first images pay initial bits. The ramp grows by half, not double:
    a posterior pop can take nearly as many bits as an image adds, and a doubling batch would
    then run the stack dry and pull from the virtual bottom again.
    """
    bounds, start, size = [], 0, 1 if ramp else batch_size
    while start < n_images:
        end = min(start + min(size, batch_size), n_images)
        bounds.append((len(bounds), start, end))
        start, size = end, min(batch_size, size + (size + 1) // 2)
    return bounds


def _ramps(model) -> bool:
    return getattr(model, "has_latent", True)


def _lanes_before(bounds) -> list[int]:
    """lanes[i]: the lanes the message has when batch i starts (the widest batch before it, or
    1); lanes[len(bounds)]: when the last batch is done."""
    lanes = [1]
    for _, lo, hi in bounds:
        lanes.append(max(lanes[-1], hi - lo))
    return lanes


def encode(model, symbols: np.ndarray, settings: CodingSettings, on_batch=None) -> bytes:
    """symbols: (N, ...) integers the model codes (0/1 for Bernoulli, 0..255 for logistic);
    `model` is a frozen architecture (see architectures.py)."""
    n = len(symbols)
    flat = symbols.reshape(n, -1)  # each batch widened to int64 on its own: a block's would be 8x its images
    message = Message.empty((1,), seed=settings.seed)
    for index, lo, hi in coding_batches(n, settings.batch_size, _ramps(model)):
        if hi - lo > message.shape[0]:
            message = message.grow(hi - lo - message.shape[0])
        codec = model.batch_codec(settings, lo, hi - lo)
        batch = flat[lo:hi].astype(np.int64)
        message, _ = _on_first_lanes(message, hi - lo, lambda m: (codec.push(m, batch), None))
        if on_batch:
            on_batch(hi - lo)
    return message.to_bytes()


def decode(model, data: bytes, n_images: int, settings: CodingSettings, on_batch=None) -> np.ndarray:
    """The mirror of encode: symbols (N, pixels) as uint8; raises bbans errors on corrupt input.

    Batches are kept as they are decoded and joined at the end, so a damaged image count cannot
    make the decoder allocate more than the stream really holds: it runs out of words first.
    """
    bounds = coding_batches(n_images, settings.batch_size, _ramps(model))
    lanes = _lanes_before(bounds)
    message = Message.from_bytes(data, (lanes[-1],), seed=settings.seed)
    decoded = []
    for index, lo, hi in reversed(bounds):
        codec = model.batch_codec(settings, lo, hi - lo)
        message, symbols = _on_first_lanes(message, hi - lo, codec.pop)
        decoded.append(symbols.astype(np.uint8))
        message = message.shrink(message.shape[0] - lanes[index])
        if on_batch:
            on_batch(hi - lo)
    message.check_initial()
    return np.concatenate(decoded[::-1]) if decoded else np.zeros((0, model.config.pixels), dtype=np.uint8)
