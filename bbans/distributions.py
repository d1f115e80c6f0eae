"""Elementwise distributions: integer intervals for given symbols, and the search that decodes.

Each distribution holds parameter arrays of one shape (the symbols' shape). `interval(symbols)`
gives (start, freq) for all symbols at once. Decoding goes one step at a time along each lane:
`stepwise(head_shape, shape)` lays the parameters out as (steps, *head_shape) and returns an
object whose `search(cumulative, t)` gives (symbols, start, freq) for step t.
Parameters are rounded to a fixed grid at construction; see tables.py for the integer rule.
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidParameters
from .normal import bucket_edges, normal_cdf
from .tables import check_precision, freqs_from_probs, interval_at, round_to_grid, search_boundaries

def _as_symbols(symbols, n_symbols: int) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.dtype.kind not in "iub":
        raise InvalidParameters(f"symbols must be integers, got {symbols.dtype}")
    symbols = symbols.astype(np.int64)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= n_symbols):
        raise InvalidParameters(f"symbols must lie in 0..{n_symbols - 1}")
    return symbols


class _SharedSearch:
    """Stepwise view of a distribution whose search needs no per-step parameters."""

    def __init__(self, search):
        self.search = search


class Uniform:
    """Every value in 0..2^precision - 1 equally likely."""

    def __init__(self, precision: int, shape=()):
        check_precision(precision, 1)
        self.precision = precision
        self.shape = tuple(shape)

    def interval(self, symbols):
        symbols = _as_symbols(symbols, 1 << self.precision)
        return symbols.astype(np.uint64), np.ones(symbols.shape, dtype=np.uint64)

    def stepwise(self, head_shape, shape):
        one = np.ones(head_shape, dtype=np.uint64)
        return _SharedSearch(lambda cumulative, t: (cumulative.astype(np.int64), cumulative, one))


class Categorical:
    """A probability table per element: probs has shape symbols.shape + (K,), or one table (K,)
    shared by all symbols of `shape`."""

    def __init__(self, probs, precision: int, shape=None):
        self.precision = precision
        self.freqs = freqs_from_probs(probs, precision)
        zeros = np.zeros(self.freqs.shape[:-1] + (1,), dtype=np.uint64)
        self.cdf = np.concatenate([zeros, np.cumsum(self.freqs, axis=-1, dtype=np.uint64)], axis=-1)
        self.shape = self.freqs.shape[:-1] if shape is None else tuple(shape)

    def interval(self, symbols):
        symbols = _as_symbols(symbols, self.freqs.shape[-1])
        cdf = np.broadcast_to(self.cdf, symbols.shape + self.cdf.shape[-1:])
        start = np.take_along_axis(cdf, symbols[..., None], -1)[..., 0]
        end = np.take_along_axis(cdf, symbols[..., None] + 1, -1)[..., 0]
        return start, end - start

    def stepwise(self, head_shape, shape):
        if self.cdf.ndim == 1:
            tables = None
        else:
            tables = np.stack([_to_steps(self.cdf[..., j], head_shape, shape) for j in range(self.cdf.shape[-1])], -1)

        def search(cumulative, t):
            if tables is None:  # one shared table: a binary search in C per lane
                symbols = np.searchsorted(self.cdf, cumulative, side="right").astype(np.int64) - 1
                start = self.cdf[symbols]
                return symbols, start, self.cdf[symbols + 1] - start
            cdf = tables[t].reshape(-1, tables.shape[-1])  # (lanes, K + 1)
            symbols = (cdf[:, 1:] <= cumulative.reshape(-1, 1)).sum(axis=1)
            rows = np.arange(len(cdf))
            start = cdf[rows, symbols]
            freq = cdf[rows, symbols + 1] - start
            shape = cumulative.shape
            return symbols.reshape(shape).astype(np.int64), start.reshape(shape), freq.reshape(shape)

        return _SharedSearch(search)


class Bernoulli:
    """P(symbol = 1) = p, from probabilities or from logits (logits put on a 2^-8 grid first)."""

    def __init__(self, probs=None, *, logits=None, precision: int = 16):
        check_precision(precision, 2)
        if (probs is None) == (logits is None):
            raise InvalidParameters("give exactly one of probs and logits")
        if logits is not None:
            logits = np.clip(round_to_grid(logits, 8), -64.0, 64.0)
            zero_prob = 1.0 / (1.0 + np.exp(logits))
        else:
            zero_prob = 1.0 - np.asarray(probs, dtype=np.float64)
        if not np.all(np.isfinite(zero_prob)):
            raise InvalidParameters("Bernoulli probabilities must be finite")
        # The one rule of tables.py with n = 2: C(1) = floor(P(0) (2^p - 2)) + 1.
        spread = float((1 << precision) - 2)
        self.zero_freq = (np.floor(np.clip(zero_prob, 0.0, 1.0) * spread) + 1.0).astype(np.uint64)
        self.precision = precision
        self.shape = zero_prob.shape

    def _interval(self, symbols, zero):
        start = np.where(symbols, zero, np.uint64(0))
        freq = np.where(symbols, np.uint64(1 << self.precision) - zero, zero)
        return start, freq

    def interval(self, symbols):
        symbols = _as_symbols(symbols, 2).astype(bool)
        return self._interval(symbols, np.broadcast_to(self.zero_freq, symbols.shape))

    def stepwise(self, head_shape, shape):
        zeros = _to_steps(self.zero_freq, head_shape, shape)

        def search(cumulative, t):
            symbols = cumulative >= zeros[t]
            start, freq = self._interval(symbols, zeros[t])
            return symbols.astype(np.int64), start, freq

        return _SharedSearch(search)


class _BoundaryDistribution:
    """Shared machinery for distributions given by a CDF at symbol boundaries (tables.py rule).

    Subclasses hold their float parameters in `self.params` (a tuple of arrays of the symbols'
    shape) and define `_g(k, *params)`: G at boundary k for 0 < k < n_symbols.
    """

    n_symbols: int
    precision: int
    params: tuple

    def _g(self, k, *params):
        raise NotImplementedError

    def _cdf_inner(self, k, params):
        spread = float((1 << self.precision) - self.n_symbols)
        return np.floor(np.clip(self._g(k, *params), 0.0, 1.0) * spread) + k

    def interval(self, symbols):
        symbols = _as_symbols(symbols, self.n_symbols)
        params = np.broadcast_arrays(*self.params, symbols)[:-1]

        def cdf(k):  # C(k) for any 0 <= k <= n, on the full arrays
            inner = self._cdf_inner(np.clip(k, 1, self.n_symbols - 1).astype(np.float64), params)
            return np.where(k <= 0, 0.0, np.where(k >= self.n_symbols, float(1 << self.precision), inner))

        with np.errstate(over="ignore"):
            start = cdf(symbols)
            freq = cdf(symbols + 1) - start
        return start.astype(np.uint64), freq.astype(np.uint64)

    def stepwise(self, head_shape, shape):
        """Parameters as contiguous (steps, *head_shape) arrays, so that step t is a cheap view."""
        return _Stepwise(self, [_to_steps(p, head_shape, shape) for p in self.params])


class _Stepwise:
    def __init__(self, distribution, step_params):
        self.distribution = distribution
        self.step_params = step_params

    def search(self, cumulative, t):
        d = self.distribution
        params = [p[t] for p in self.step_params]
        guess = getattr(d, "_guess", None)
        if guess is None:
            return search_boundaries(lambda k: d._cdf_inner(k, params), cumulative, d.n_symbols, d.precision)
        return _search_from_guess(d, params, cumulative, guess(cumulative, params))


def _search_from_guess(d, params, cumulative, guess):
    """Check a guessed symbol against the exact integer CDF; binary-search only the misses.

    The guess is a float hint and nothing more: a symbol is accepted only if its integer
    interval [C(k), C(k+1)) holds the cumulative frequency, so the result is the same as a
    full search whatever the hint says.
    """
    n = d.n_symbols
    k = np.clip(guess, 0, n - 1).astype(np.float64)
    start, end = interval_at(lambda j: d._cdf_inner(j, params), k, n, d.precision)
    target = cumulative.astype(np.float64)
    miss = (target < start) | (target >= end)
    symbols, start, freq = k.astype(np.int64), start.astype(np.uint64), (end - start).astype(np.uint64)
    if miss.any():
        sub = [np.broadcast_to(p, miss.shape)[miss] for p in params]
        found = search_boundaries(lambda j: d._cdf_inner(j, sub), cumulative[miss], n, d.precision)
        symbols[miss], start[miss], freq[miss] = found
    return symbols, start, freq


def _to_steps(array, head_shape, shape):
    array = np.broadcast_to(array, shape)
    n_steps = int(np.prod(shape[len(head_shape):], dtype=np.int64))
    array = array.reshape(tuple(head_shape) + (n_steps,))
    return np.ascontiguousarray(np.moveaxis(array, -1, 0))


class DiscretisedLogistic(_BoundaryDistribution):
    """A logistic(mean, exp(log_scale)) rounded to levels 0..n-1, the end bins open.

    `mean` and `log_scale` are in level units (0..255 for 8-bit pixels), put on a 2^-12 grid
    and clipped to [-2^16, 2^16] and [-9, 9]: the latter covers scales from 1e-4 to 8e3.
    """

    def __init__(self, mean, log_scale, precision: int = 24, levels: int = 256):
        check_precision(precision, levels)
        mean, log_scale = np.broadcast_arrays(
            np.clip(round_to_grid(mean, 12), -65536.0, 65536.0), np.clip(round_to_grid(log_scale, 12), -9.0, 9.0)
        )
        # Stored as (mean + 0.5, 1 / scale): G(k) = sigmoid((k - 0.5 - mean) / scale).
        self.params = (mean + 0.5, np.exp(-log_scale))
        self.precision = precision
        self.n_symbols = levels
        self.shape = mean.shape

    def _cdf_inner(self, k, params):
        # floor(spread * sigmoid((k - 0.5 - mean) / scale)) + k, fused into in-place ufuncs
        # because this runs ceil(log2(levels)) times per decoded pixel. exp may overflow to inf,
        # which correctly gives G = 0 (callers silence the warning).
        shifted_mean, inv_scale = params
        t = np.subtract(shifted_mean, k)
        t *= inv_scale
        np.exp(t, out=t)
        t += 1.0
        np.divide(float((1 << self.precision) - self.n_symbols), t, out=t)
        np.floor(t, out=t)
        t += k
        return t

    def _guess(self, cumulative, params):
        # The logistic quantile at the cumulative frequency: G(k) = u at k = mean + 0.5 + scale * logit(u).
        # u lies strictly inside (0, 1) and the scale is clipped, so the hint is always finite.
        shifted_mean, inv_scale = params
        u = (cumulative.astype(np.float64) + 0.5) * (1.0 / float(1 << self.precision))
        k = np.log(u / (1.0 - u))
        k /= inv_scale
        k += shifted_mean
        return np.floor(k, out=k)


class DiscretisedLogisticRGB:
    """PixelCNN++'s channel-wise linear autoregressive coupling over the last axis (R, G, B).

    The mean of G is shifted by coeffs[..., 0] * R, the mean of B by coeffs[..., 1] * R +
    coeffs[..., 2] * G (values in level units). Symbols have shape (..., 3).
    Used through the `rgb_logistic` codec, which decodes R, then G, then B.
    """

    def __init__(self, mean, log_scale, coeffs, precision: int = 24, levels: int = 256):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.log_scale = np.asarray(log_scale, dtype=np.float64)
        self.coeffs = round_to_grid(coeffs, 12)
        if self.mean.shape[-1:] != (3,) or self.coeffs.shape[-1:] != (3,):
            raise InvalidParameters("RGB logistic parameters need a last axis of 3")
        self.precision = precision
        self.levels = levels

    def channel(self, c: int, decoded):
        """The distribution of channel c given the decoded (..., 3) values of earlier channels."""
        mean = self.mean[..., c].copy()
        if c == 1:
            mean += self.coeffs[..., 0] * decoded[..., 0]
        elif c == 2:
            mean += self.coeffs[..., 1] * decoded[..., 0] + self.coeffs[..., 2] * decoded[..., 1]
        return DiscretisedLogistic(mean, self.log_scale[..., c], self.precision, self.levels)


class BucketedGaussian(_BoundaryDistribution):
    """N(mean, std) restricted to the 2^bucket_bits equal-mass buckets of N(0, 1).

    mean and std go on a 2^-16 grid; std is clipped to [2^-16, 2^8].
    """

    def __init__(self, mean, std, bucket_bits: int, precision: int):
        if precision < bucket_bits + 2:
            raise InvalidParameters("the posterior precision must exceed the bucket bits by at least 2")
        check_precision(precision, 1 << bucket_bits)
        mean, std = np.broadcast_arrays(
            np.clip(round_to_grid(mean, 16), -64.0, 64.0), np.clip(round_to_grid(std, 16), 2.0**-16, 256.0)
        )
        self.params = (mean, std)
        self.edges = bucket_edges(bucket_bits)
        self.precision = precision
        self.n_symbols = 1 << bucket_bits
        self.shape = mean.shape

    def _g(self, k, mean, std):
        return normal_cdf((self.edges[k.astype(np.int64)] - mean) / std)
