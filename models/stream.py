"""Coding a list of same-sized images with a VAE: bits-back over batches chained on one message.

The model's `batch_codec(settings, first_index, n, extents)` gives the codec of one batch; the
K-step noise of an image depends on its index in the stream, not on its batch. `extents` (a
tiled model's: which rows and columns of each tile lie inside its image, models/wavefront.py)
are handed on a batch's share at a time.
Each image codes on `lanes_per_unit` lanes of the message head (one, but a tiled model's
wavefront takes several, and the convolutional VAE cuts each image into runs); a batch of up
to B images is coded at once (its pixels one step at a time along each lane). Batches are
pushed in order onto the same message, so initial bits are
paid once per archive, not per batch; a smaller batch uses the first lanes. The message starts
with one lane and grows lanes (from bits already on the stack) each time a batch is wider than
any before it, so wide batches cost no extra bytes.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from bbzip.bbans import CorruptStream, Message

from .coding_settings import CodingSettings


def _on_first_lanes(message: Message, n: int, step):
    """Run `step` on a message made of the first n lanes; the other lanes are left as they are."""
    if n == message.shape[0]:
        return step(message)
    sub, result = step(Message(message.head[:n], message.tail))
    head = message.head.copy()
    head[:n] = sub.head
    return Message(head, sub.tail), result


BITS_BACK_GROWTH = 1.5


def coding_batches(n_images: int, batch_size: int, growth: float | None = BITS_BACK_GROWTH):
    """(index, first, end) of each batch: 1 image, then `growth` times as many each batch
    (rounded up), up to batch_size; without `growth`, batch_size images a batch from the first.

    The ramp is what keeps the initial bits small. Every lane starts on a word from the stack; a
    lane's first posterior pop needs bits too. On an empty stack they come from the virtual
    bottom and are paid for in full. With the ramp, each new lane's words are what earlier
    images already pushed (ordinary bits back), so only the very first images pay initial bits.
    A bits-back model's ramp grows by half, not double: a posterior pop can take nearly as many
    bits as an image adds, and a doubling batch would then run the stack dry and pull from the
    virtual bottom again. A model coded without bits back on one lane per image needs no ramp
    (a lane's start costs its one word); one on several lanes per image needs a word per lane,
    a small share of what an image pushes, so its ramp can grow fast (models/frozen_tiled_ar.py).
    """
    bounds, start, size = [], 0, 1 if growth else batch_size
    while start < n_images:
        end = min(start + min(size, batch_size), n_images)
        bounds.append((len(bounds), start, end))
        start, size = end, min(batch_size, math.ceil(size * growth)) if growth else batch_size
    return bounds


def _lanes_per_unit(model) -> int:
    return getattr(model, "lanes_per_unit", 1)


def _growth(model) -> float | None:
    """The model's ramp (`ramp_growth`), or bits back's."""
    return getattr(model, "ramp_growth", BITS_BACK_GROWTH)


def _lanes_before(bounds, per_unit: int = 1) -> list[int]:
    """lanes[i]: the lanes the message has when batch i starts (the widest batch before it, or
    1); lanes[len(bounds)]: when the last batch is done."""
    lanes = [1]
    for _, lo, hi in bounds:
        lanes.append(max(lanes[-1], (hi - lo) * per_unit))
    return lanes


class _Kept:
    """What a block's pushes leave for its check (encode_checked): a dict a batch (`batch(lo)`,
    the batch from image lo), which the model's push fills and its check of that batch takes;
    and in each, under "later", the block's one list of what the checks leave to be done once
    for the whole block (the model's finish_check)."""

    def __init__(self):
        self.batches, self.later = {}, []

    def batch(self, lo: int) -> dict:
        return self.batches.setdefault(lo, {"later": self.later})

    def checked(self, lo: int) -> None:
        self.batches.pop(lo, None)  # (a batch is checked once: what its push left goes)


def _codec(model, settings, lo: int, hi: int, extents, known=None, kept=None):
    if extents is None:
        if kept is not None:
            return model.batch_codec(settings, lo, hi - lo, kept=kept.batch(lo))
        return model.batch_codec(settings, lo, hi - lo)
    if known is None:
        return model.batch_codec(settings, lo, hi - lo, extents[lo:hi])
    return model.batch_codec(settings, lo, hi - lo, extents[lo:hi], known=known.tiles(lo, hi))


def _square(model, extents, squares: bool):
    """With `squares` (records since archive format 7), a tiled model's block whose coded pixels
    all lie in a smaller top-left square of its tiles (images smaller than a tile) codes as tiles
    of that square (models/frozen_tiled_ar.py: TileSquare); None: as whole tiles."""
    in_square = getattr(model, "block_square", None) if squares and extents is not None else None
    return in_square(extents) if in_square else None


def encode_checked(model, symbols: np.ndarray, settings: CodingSettings, extents=None, known=None, on_batch=None,
                   squares: bool = False) -> bytes:
    """encode, then decode the message it gave as decompress will, knowing the symbols it
    should hold (decode's `expected`): CorruptStream unless it gives them back exactly. A model
    that keeps what its push computed (`keeps_for_check`: models/frozen_mlp.py) hands it to the
    check of the same batch, which takes it instead of computing it again, and once every
    batch is checked, does what those checks left for the whole block (`finish_check`)."""
    kept = _Kept() if getattr(model, "keeps_for_check", False) else None
    message = encode(model, symbols, settings, extents, known, on_batch, squares, kept)
    decoded = decode(model, message, len(symbols), settings, extents, None, squares, symbols, known, kept)
    if not np.array_equal(decoded.reshape(len(symbols), -1), symbols.reshape(len(symbols), -1)):
        raise CorruptStream("the message does not decode to the images it was coded from")
    if kept is not None:
        model.finish_check(kept.later)
    return message


def encode(model, symbols: np.ndarray, settings: CodingSettings, extents=None, known=None, on_batch=None,
           squares: bool = False, kept: _Kept | None = None) -> bytes:
    """symbols: (N, ...) integers the model codes (0/1 for Bernoulli, 0..255 for logistic);
    `model` is a frozen architecture (see architectures.py); `extents` (N, 2) for a tiled
    model's tiles, or None (whole); `known`, for a tiled model without a latent, the tiles'
    intervals if they were already computed (its `intervals`: models/tile_intervals.py), or
    None; `squares`: see _square; `kept`: encode_checked's (what each batch's push leaves for
    its check: _Kept), or None."""
    n = len(symbols)
    flat = symbols.reshape(n, -1)  # each batch widened to int64 on its own: a block's would be 8x its images
    square = _square(model, extents, squares)
    if square is not None:
        model, flat, known = square.model, square.cut(flat), square.cut_known(known)
    message = Message.empty((1,), seed=settings.seed)
    per_unit = _lanes_per_unit(model)
    for index, lo, hi in coding_batches(n, settings.batch_size, _growth(model)):
        lanes = (hi - lo) * per_unit
        if lanes > message.shape[0]:
            message = message.grow(lanes - message.shape[0])
        codec = _codec(model, settings, lo, hi, extents, known, kept)
        batch = flat[lo:hi].astype(np.int64)
        message, _ = _on_first_lanes(message, lanes, lambda m: (codec.push(m, batch), None))
        if on_batch:
            on_batch(hi - lo)
    return message.to_bytes()


def decode(model, data: bytes, n_images: int, settings: CodingSettings, extents=None, on_batch=None,
           squares: bool = False, expected: np.ndarray | None = None, known=None, kept: _Kept | None = None) -> np.ndarray:
    """The mirror of encode: symbols (N, pixels) as uint8; raises bbans errors on corrupt input.

    Batches are kept as they are decoded and joined at the end, so a damaged image count cannot
    make the decoder allocate more than the stream really holds: it runs out of words first.

    `expected` (N, pixels): the symbols the message should hold (compress's check). A codec
    that offers `check` then pops them without searching, CorruptStream where the message holds
    others; what passes is what decoding gives. Other codecs decode as usual. `known`, with
    `expected`: their intervals as encode was given them, which a tiled model's check pops
    without running its network (models/tile_intervals.py), or None. `kept`, with `expected`:
    what encode left for the check (encode_checked), or None.
    """
    square = _square(model, extents, squares)
    if square is not None:  # (intervals cut to a square are not what its model computed: checked by the network)
        expected = None if expected is None else square.cut(expected.reshape(len(expected), -1))
        return square.whole(_decode(square.model, data, n_images, settings, extents, on_batch, expected), extents)
    if expected is None:
        known = kept = None
    return _decode(model, data, n_images, settings, extents, on_batch, expected, known, kept)


def _checked(check, symbols, message):
    return check(message, symbols)


def _decode(model, data: bytes, n_images: int, settings: CodingSettings, extents, on_batch, expected,
            known=None, kept=None) -> np.ndarray:
    per_unit = _lanes_per_unit(model)
    bounds = coding_batches(n_images, settings.batch_size, _growth(model))
    lanes = _lanes_before(bounds, per_unit)
    message = Message.from_bytes(data, (lanes[-1],), seed=settings.seed)
    if expected is not None and len(expected) != n_images:
        raise CorruptStream(f"{n_images} images to decode, {len(expected)} expected")
    decoded = []
    for index, lo, hi in reversed(bounds):
        codec = _codec(model, settings, lo, hi, extents, known, kept)
        if expected is None or codec.check is None:
            pop = codec.pop
        else:
            pop = partial(_checked, codec.check, expected[lo:hi].reshape(hi - lo, -1).astype(np.int64))
        message, symbols = _on_first_lanes(message, (hi - lo) * per_unit, pop)
        decoded.append(symbols.astype(np.uint8))
        if kept is not None:
            kept.checked(lo)
        message = message.shrink(message.shape[0] - lanes[index])
        if on_batch:
            on_batch(hi - lo)
    message.check_initial()
    return np.concatenate(decoded[::-1]) if decoded else np.zeros((0, model.config.pixels), dtype=np.uint8)
