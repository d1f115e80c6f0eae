"""The one rule that turns integer distribution parameters into integer frequencies.

Coder and decoder must build bit-identical integer intervals on every machine, so nothing here
touches a float. Every distribution is described by a non-decreasing function G over its symbol
boundaries with G(0) = 0 and G(n) = 1, given as integers G_int = G * 2^G_BITS (from the tables in
lookup.py). The integer CDF is

    C(k) = floor(G_int(k) * (2^precision - n) / 2^G_BITS) + k,   k = 0..n

so C(0) = 0, C(n) = 2^precision exactly, and every symbol gets frequency C(k+1) - C(k) >= 1.
The CDF is evaluated only where needed: at the symbol when encoding, and along a search over k
(in halves, or wider for few lanes) when decoding (never a float inverse CDF, never a full
table per lane).
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidParameters
from .message import MAX_PRECISION

G_BITS = 32
# G_int * spread must stay below 2^63: spread < 2^precision, G_int <= 2^32.
MAX_TABLE_PRECISION = 30


def to_fixed(values, fraction_bits: int) -> np.ndarray:
    """Float values as int64 fixed-point numbers (2^-fraction_bits units), rounded half up.

    For callers that start from floats (tests, benchmarks). IEEE multiplication by a power of two,
    addition and floor are exact or correctly rounded, so this too gives the same bits everywhere.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InvalidParameters("parameters must be finite")
    scaled = np.floor(values * float(1 << fraction_bits) + 0.5)
    return np.clip(scaled, -(2.0**62), 2.0**62).astype(np.int64)


def as_fixed(values, name: str) -> np.ndarray:
    """Integer parameters as int64; floats are refused, since only integers are exact everywhere."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise InvalidParameters(f"{name} must be integers in fixed point (see bbans.to_fixed), got {values.dtype}")
    return values.astype(np.int64)


def check_precision(precision: int, n_symbols: int, maximum: int = MAX_PRECISION) -> None:
    if not 1 <= precision <= maximum:
        raise InvalidParameters(f"precision must be in 1..{maximum}, got {precision}")
    if n_symbols > (1 << precision):
        raise InvalidParameters(
            f"{n_symbols} symbols need precision >= {int(np.ceil(np.log2(n_symbols)))}, got {precision}"
        )


def cdf_from_g(g_int: np.ndarray, k: np.ndarray, n_symbols: int, precision: int) -> np.ndarray:
    """C(k) by the rule, for G_int in 0..2^G_BITS (int64)."""
    return ((g_int * ((1 << precision) - n_symbols)) >> G_BITS) + k


def search_boundaries(cdf_inner, cumulative: np.ndarray, n_symbols: int, precision: int, radix: int = 2):
    """Search: the symbol k with C(k) <= cumulative < C(k+1), for every lane.

    `cdf_inner(k)` returns C(k) (int64) for int64 arrays k with 0 < k < n_symbols; the ends
    C(0) = 0 and C(n) = 2^precision are known by the rule and never evaluated.
    Returns (symbol, start, freq) as arrays.

    Each round splits every lane's range into `radix` parts and evaluates the radix - 1
    boundaries between them in one call (on a stack of probes): binary for many lanes, where
    the arithmetic costs most, wider for a few, where each call's overhead does (256 symbols
    take 8 calls in halves, 2 in sixteenths).
    """
    target = cumulative.astype(np.int64)
    low = np.zeros(cumulative.shape, dtype=np.int64)
    width = 1
    while width * radix < n_symbols:
        width *= radix
    parts = np.arange(1, radix, dtype=np.int64).reshape((-1,) + (1,) * target.ndim)
    while True:  # the symbol lies in [low, low + width * radix), and below n_symbols
        probe = low + parts * width
        inside = probe < n_symbols
        if inside.all():
            below = cdf_inner(probe) <= target
        else:
            below = inside & (cdf_inner(np.where(inside, probe, 1)) <= target)
        low += below.sum(axis=0) * width
        if width == 1:
            break
        width //= radix
    start, end = interval_at(cdf_inner, low, n_symbols, precision)
    return low, start.astype(np.uint64), (end - start).astype(np.uint64)


def interval_at(cdf_inner, k: np.ndarray, n_symbols: int, precision: int):
    """C(k) and C(k + 1) (int64) for symbols 0 <= k < n_symbols, the ends by the rule.

    Both come from one call of `cdf_inner` on a (2, ...) stack of boundaries (parameters
    broadcast over the first axis): half the per-call overhead on the decoder's hot path.
    """
    boundaries = np.empty((2,) + np.shape(k), dtype=np.int64)  # (filled in place: np.stack costs more on a few hundred lanes)
    np.maximum(k, 1, out=boundaries[0])
    np.add(k, 1, out=boundaries[1])
    np.minimum(boundaries[1], n_symbols - 1, out=boundaries[1])
    values = cdf_inner(boundaries)
    start = np.where(k > 0, values[0], 0)
    end = np.where(k + 1 < n_symbols, values[1], 1 << precision)
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
    # q * spread must stay below 2^63; unnormalised weights (q up to 2^24 x their sum) at high
    # precision do not, so those rows take Python's unbounded integers.
    fits = int(q.max(initial=0)) * spread < (1 << 63)
    freqs = (q * spread) // total + 1 if fits else _wide_freqs(q, total, spread)
    remainder = (1 << precision) - freqs.sum(axis=-1)
    top = np.argmax(q, axis=-1)
    np.put_along_axis(freqs, top[..., None], np.take_along_axis(freqs, top[..., None], -1) + remainder[..., None], -1)
    return freqs.astype(np.uint64)


def _wide_freqs(q, total, spread):
    return np.vectorize(lambda a, b: a * spread // b + 1, otypes=[np.int64])(q, total)
