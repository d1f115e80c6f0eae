"""The one rule that turns float parameters into integer frequencies.

Both coder and decoder must build bit-identical integer intervals. Every distribution here is
described by a non-decreasing function G over its symbol boundaries, G(0) = 0 and G(n) = 1, with
parameters already rounded to a fixed grid (see `round_to_grid`). The integer CDF is

    C(k) = floor(G(k) * (2^precision - n)) + k,   k = 0..n

so C(0) = 0, C(n) = 2^precision exactly, and every symbol gets frequency C(k+1) - C(k) >= 1.
The CDF is evaluated only where needed: at the symbol when encoding, and along a binary search
over k when decoding (never a float inverse CDF, never a full table per lane).
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidParameters
from .message import MAX_PRECISION


def round_to_grid(values, grid_bits: int) -> np.ndarray:
    """Round to multiples of 2^-grid_bits in float64: the first step of every codec parameter."""
    scale = float(1 << grid_bits)
    return np.round(np.asarray(values, dtype=np.float64) * scale) / scale


def check_precision(precision: int, n_symbols: int) -> None:
    if not 1 <= precision <= MAX_PRECISION:
        raise InvalidParameters(f"precision must be in 1..{MAX_PRECISION}, got {precision}")
    if n_symbols > (1 << precision):
        raise InvalidParameters(
            f"{n_symbols} symbols need precision >= {int(np.ceil(np.log2(n_symbols)))}, got {precision}"
        )


def search_boundaries(cdf_inner, cumulative: np.ndarray, n_symbols: int, precision: int):
    """Binary search: the symbol k with C(k) <= cumulative < C(k+1), for every lane.

    `cdf_inner(k)` returns C(k) as float64 (exact: values stay below 2^53) for float64 arrays of
    integers k with 0 < k < n_symbols; the ends C(0) = 0 and C(n) = 2^precision are known by the
    rule and never evaluated. Returns (symbol, start, freq) as arrays.
    """
    target = cumulative.astype(np.float64)
    low = np.zeros(cumulative.shape, dtype=np.float64)
    step = 1 << max(0, int(n_symbols - 1).bit_length() - 1)
    while step:
        probe = low + step
        inside = probe < n_symbols
        if inside.all():
            below = cdf_inner(probe) <= target
        else:
            below = inside & (cdf_inner(np.where(inside, probe, 1.0)) <= target)
        low += below * float(step)
        step >>= 1
    start, end = interval_at(cdf_inner, low, n_symbols, precision)
    return low.astype(np.int64), start.astype(np.uint64), (end - start).astype(np.uint64)


def interval_at(cdf_inner, k: np.ndarray, n_symbols: int, precision: int):
    """C(k) and C(k + 1) as float64 for float64 symbols 0 <= k < n_symbols, the ends by the rule."""
    start = np.where(k > 0, cdf_inner(np.maximum(k, 1.0)), 0.0)
    end = np.where(k + 1 < n_symbols, cdf_inner(np.minimum(k + 1, n_symbols - 1.0)), float(1 << precision))
    return start, end


def freqs_from_probs(probs, precision: int) -> np.ndarray:
    """Integer frequencies (..., K), each >= 1 and summing to 2^precision, from probabilities.

    Probabilities are put on a 2^-24 grid as integers first, so the rest is integer arithmetic:
    f = floor(q * (2^precision - K) / sum(q)) + 1, and the rounding remainder goes to the most
    probable symbol (the first one on ties).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 0 or probs.shape[-1] < 1:
        raise InvalidParameters("a probability table needs a last axis of symbols")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise InvalidParameters("probabilities must be finite and non-negative")
    n = probs.shape[-1]
    check_precision(precision, n)
    q = np.round(probs * (1 << 24)).astype(np.int64)
    total = q.sum(axis=-1, keepdims=True)
    q = np.where(total == 0, 1, q)  # an all-zero row becomes uniform
    total = q.sum(axis=-1, keepdims=True)
    spread = (1 << precision) - n
    freqs = (q * spread) // total + 1 if spread < (1 << 38) else _wide_freqs(q, total, spread)
    remainder = (1 << precision) - freqs.sum(axis=-1)
    top = np.argmax(q, axis=-1)
    np.put_along_axis(freqs, top[..., None], np.take_along_axis(freqs, top[..., None], -1) + remainder[..., None], -1)
    return freqs.astype(np.uint64)


def _wide_freqs(q, total, spread):
    # q < 2^24 * K and spread < 2^31, so the product can pass 2^63: use Python integers.
    return np.vectorize(lambda a, b: a * spread // b + 1, otypes=[np.int64])(q, total)
