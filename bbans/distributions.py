"""Elementwise distributions: integer intervals for given symbols, and the search that decodes.

Each distribution holds parameter arrays of one shape (the symbols' shape). `interval(symbols)`
gives (start, freq) for all symbols at once. Decoding goes one step at a time along each lane:
`stepwise(head_shape, shape)` lays the parameters out as (steps, *head_shape) and returns an
object whose `search(cumulative, t)` gives (symbols, start, freq) for step t.
Parameters are integers in fixed point (see tables.to_fixed); tables.py has the integer rule.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import InvalidParameters
from .lookup import EXP_BITS, QUANTILE_BITS, bucket_edges, exp_table, interpolate, normal_cdf_table, sigmoid_table
from .tables import (
    G_BITS,
    MAX_TABLE_PRECISION,
    as_fixed,
    cdf_from_g,
    check_precision,
    freqs_from_probs,
    interval_at,
    search_boundaries,
)

PARAM_BITS = 12  # fraction bits of logits, logistic means and log-scales

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
    """P(symbol = 1), from probabilities in 2^-32 units (int64), or from logits in fixed point
    (int64, 2^-logit_bits units) through the integer sigmoid table."""

    def __init__(self, probs=None, *, logits=None, precision: int = 16, logit_bits: int = PARAM_BITS):
        check_precision(precision, 2, MAX_TABLE_PRECISION)
        if (probs is None) == (logits is None):
            raise InvalidParameters("give exactly one of probs and logits")
        if logits is not None:
            logits = as_fixed(logits, "Bernoulli logits")
            zero_prob = interpolate(sigmoid_table(), -logits, logit_bits)
        else:
            zero_prob = (1 << G_BITS) - np.clip(as_fixed(probs, "Bernoulli probabilities"), 0, 1 << G_BITS)
        # The one rule of tables.py with n = 2: C(1) = floor(P(0) (2^p - 2)) + 1.
        self.zero_freq = cdf_from_g(zero_prob, 1, 2, precision).astype(np.uint64)
        self.precision = precision
        self.shape = zero_prob.shape

    @classmethod
    def of_zero_frequencies(cls, zero_freq: np.ndarray, precision: int) -> "Bernoulli":
        """The distribution whose frequency of 0 is zero_freq (uint64, as `zero_freq` holds it)."""
        distribution = object.__new__(cls)
        distribution.zero_freq, distribution.precision, distribution.shape = zero_freq, precision, zero_freq.shape
        return distribution

    def _interval(self, symbols, zero):
        start = np.where(symbols, zero, np.uint64(0))
        freq = np.where(symbols, np.uint64(1 << self.precision) - zero, zero)
        return start, freq

    def interval(self, symbols):
        symbols = _as_symbols(symbols, 2).astype(bool)
        return self._interval(symbols, np.broadcast_to(self.zero_freq, symbols.shape))

    def search(self, cumulative):
        """(symbols, start, freq) of the intervals that hold the cumulative frequencies (one per
        symbol of this distribution's shape)."""
        symbols = cumulative >= self.zero_freq
        start, freq = self._interval(symbols, self.zero_freq)
        return symbols.astype(np.int64), start, freq

    def stepwise(self, head_shape, shape):
        zeros = _to_steps(self.zero_freq, head_shape, shape)

        def search(cumulative, t):
            symbols = cumulative >= zeros[t]
            start, freq = self._interval(symbols, zeros[t])
            return symbols.astype(np.int64), start, freq

        return _SharedSearch(search)


class BernoulliLogits:
    """Bernoulli(logits=..., precision, logit_bits), looked up: one table of every logit's
    frequency of 0, made by Bernoulli itself, so each distribution is the one it would make. An
    autoregressive decoder makes a distribution a pixel step for a few hundred lanes, where the
    sigmoid's interpolation is most of that step's arithmetic and its numpy calls. The sigmoid
    table is constant beyond its ends, and so are the entries here: a logit past them takes the
    last entry on its side."""

    def __init__(self, precision: int, logit_bits: int = PARAM_BITS):
        table = sigmoid_table()
        if logit_bits < table.step_bits:
            raise ValueError("logits need at least as many fraction bits as the sigmoid table's step")
        reach = max(abs(table.lo), abs(table.lo + ((len(table.values) - 1) >> table.step_bits))) << logit_bits
        self._first, self.precision = -reach, precision
        self._zero_freq = Bernoulli(logits=np.arange(-reach, reach + 1, dtype=np.int64), precision=precision,
                                    logit_bits=logit_bits).zero_freq

    def __call__(self, logits: np.ndarray) -> Bernoulli:
        index = as_fixed(logits, "Bernoulli logits") - self._first
        return Bernoulli.of_zero_frequencies(np.take(self._zero_freq, index, mode="clip"), self.precision)

    @staticmethod
    @lru_cache(maxsize=None)
    def shared(precision: int) -> "BernoulliLogits":
        """One table a precision a process (2 MB at PARAM_BITS, made in about 25 ms)."""
        return BernoulliLogits(precision)


class _BoundaryDistribution:
    """Shared machinery for distributions given by their integer CDF at symbol boundaries.

    Subclasses hold their int64 parameters in `self.params` (a tuple of arrays of the symbols'
    shape) and define `_cdf_inner(k, params)`: C(k) (tables.py rule) for 0 < k < n_symbols.
    """

    n_symbols: int
    precision: int
    params: tuple
    shape: tuple  # the symbols' shape (a mixture's parameters have one more axis)
    guess_misses_often = False  # (_search_from_guess)

    def _cdf_inner(self, k, params):
        raise NotImplementedError

    def interval(self, symbols):
        symbols = _as_symbols(symbols, self.n_symbols)
        params = np.broadcast_arrays(*self.params, symbols)[:-1]
        start, end = interval_at(lambda k: self._cdf_inner(k, params), symbols, self.n_symbols, self.precision)
        return start.astype(np.uint64), (end - start).astype(np.uint64)

    def stepwise(self, head_shape, shape):
        """Parameters as contiguous (steps, *head_shape) arrays, so that step t is a cheap view."""
        return _Stepwise(self, [_to_steps(p, head_shape, shape) for p in self.params])

    def search(self, cumulative):
        """(symbols, start, freq) of the intervals that hold the cumulative frequencies (one per
        symbol of this distribution's shape)."""
        return _search(self, self.params, cumulative)

    def symbol_at(self, cumulative):
        """(symbols, start, freq) of the symbols whose intervals hold the cumulative frequencies
        (an int array of the parameters' shape): a sample, given uniform cumulative values."""
        cumulative = np.broadcast_to(np.asarray(cumulative, dtype=np.int64), self.shape)
        return search_boundaries(lambda k: self._cdf_inner(k, self.params), cumulative, self.n_symbols, self.precision)


class _Stepwise:
    def __init__(self, distribution, step_params):
        self.distribution = distribution
        self.step_params = step_params

    def search(self, cumulative, t):
        return _search(self.distribution, [p[t] for p in self.step_params], cumulative)


def _search(d, params, cumulative):
    guess = getattr(d, "_guess", None)
    if guess is None:
        return search_boundaries(lambda k: d._cdf_inner(k, params), cumulative, d.n_symbols, d.precision)
    return _search_from_guess(d, params, cumulative, guess(cumulative, params))


def _search_from_guess(d, params, cumulative, guess):
    """Check a guessed symbol against the exact integer CDF; where it misses, its neighbour on
    the target's side; search only the lanes both miss (in sixteenths: they are few).

    The guess is a float hint and nothing more: a symbol is accepted only if its integer
    interval [C(k), C(k+1)) holds the cumulative frequency, so the result is the same as a
    full search whatever the hint says (and on whatever machine the hint was computed).
    A distribution whose guess often misses by one (`guess_misses_often`: a mixture's) has
    the guess and both neighbours checked at once.
    """
    n = d.n_symbols
    k = np.minimum(np.maximum(guess, 0), n - 1).astype(np.int64)
    target = cumulative.astype(np.int64)
    if d.guess_misses_often:
        return _search_around(d, params, target, k)
    start, end = interval_at(lambda j: d._cdf_inner(j, params), k, n, d.precision)
    miss = (target < start) | (target >= end)
    if miss.any():
        # A hint that misses is mostly one level off (a mixture's, for about a quarter of its
        # values). The neighbour stays within 0..n-1: a guess of 0 cannot be above its target,
        # nor one of n-1 below it.
        lanes = np.flatnonzero(miss)
        sub = [_lanes_of(p, miss.shape, lanes) for p in params]
        k, start, end = k.ravel(), start.ravel(), end.ravel()
        neighbour = k[lanes] + np.where(target.ravel()[lanes] >= end[lanes], 1, -1)
        near_start, near_end = interval_at(lambda j: d._cdf_inner(j, sub), neighbour, n, d.precision)
        lane_target = target.ravel()[lanes]
        far = (lane_target < near_start) | (lane_target >= near_end)
        k[lanes], start[lanes], end[lanes] = neighbour, near_start, near_end
        if far.any():
            far_lanes = lanes[far]
            # few lanes (a mixture's, a few in a hundred): a wide search, for fewer calls
            found = search_boundaries(lambda j: d._cdf_inner(j, [p[far] for p in sub]), lane_target[far], n, d.precision,
                                      radix=16)
            k[far_lanes], start[far_lanes] = found[0], found[1].astype(np.int64)
            end[far_lanes] = start[far_lanes] + found[2].astype(np.int64)
        k, start, end = k.reshape(miss.shape), start.reshape(miss.shape), end.reshape(miss.shape)
    return k, start.astype(np.uint64), (end - start).astype(np.uint64)


def _search_around(d, params, target, k):
    """_search_from_guess with C(k - 1) .. C(k + 2) from one call: the interval of k or of a
    neighbour holds the target on most lanes, whichever it is; the others are searched."""
    n, precision = d.n_symbols, d.precision
    boundaries = k + np.arange(-1, 3).reshape((4,) + (1,) * k.ndim)
    inner = d._cdf_inner(np.minimum(np.maximum(boundaries, 1), n - 1), params)
    cdf = np.where(boundaries <= 0, 0, np.where(boundaries >= n, 1 << precision, inner))  # the ends by the rule
    below, past = target < cdf[1], target >= cdf[2]  # the target below k's interval, or past it
    symbol = k - below + past
    start = np.where(below, cdf[0], np.where(past, cdf[2], cdf[1]))
    end = np.where(below, cdf[1], np.where(past, cdf[3], cdf[2]))
    far = (target < start) | (target >= end)
    if far.any():
        # (a guess of 0 is never above its target, nor one of n - 1 below it: symbol stays in 0..n-1
        # wherever its interval holds the target)
        lanes = np.flatnonzero(far)
        sub = [_lanes_of(p, far.shape, lanes) for p in params]
        found = search_boundaries(lambda j: d._cdf_inner(j, sub), target.ravel()[lanes], n, precision, radix=16)
        symbol, start, end = symbol.ravel(), start.ravel(), end.ravel()
        symbol[lanes], start[lanes] = found[0], found[1].astype(np.int64)
        end[lanes] = start[lanes] + found[2].astype(np.int64)
        symbol, start, end = symbol.reshape(far.shape), start.reshape(far.shape), end.reshape(far.shape)
    return symbol, start.astype(np.uint64), (end - start).astype(np.uint64)


def _lanes_of(param: np.ndarray, shape: tuple, lanes: np.ndarray) -> np.ndarray:
    """The values of a parameter (of `shape`, or broadcast to it, with a mixture's trailing
    axis) at these flat lanes."""
    tail = param.shape[len(shape):]
    if param.shape[: len(shape)] != shape:
        param = np.broadcast_to(param, shape + tail)
    return param.reshape((-1,) + tail)[lanes]


def _reduce_components(ufunc, array: np.ndarray) -> np.ndarray:
    """ufunc over the last axis (a mixture's few components) as one elementwise call per
    component: numpy's reduction along a short last axis costs several times that."""
    total = ufunc(array[..., 0], array[..., 1]) if array.shape[-1] > 1 else array[..., 0].copy()
    for component in range(2, array.shape[-1]):
        ufunc(total, array[..., component], out=total)
    return total


def _to_steps(array, head_shape, shape):
    array = np.broadcast_to(array, shape)
    n_steps = int(np.prod(shape[len(head_shape):], dtype=np.int64))
    array = array.reshape(tuple(head_shape) + (n_steps,))
    return np.ascontiguousarray(np.moveaxis(array, -1, 0))


class DiscretisedLogistic(_BoundaryDistribution):
    """A logistic(mean, exp(log_scale)) rounded to levels 0..n-1, the end bins open.

    `mean` and `log_scale` are int64 in level units, fixed point with 2^-12 resolution (so a mean
    of 127.5 is 522240), clipped to [-2^10, 2^10 + levels] and [-4, 8]. The inverse scale comes
    from the integer exp table, G from the integer sigmoid table.
    """

    def __init__(self, mean, log_scale, precision: int = 24, levels: int = 256):
        check_precision(precision, levels, MAX_TABLE_PRECISION)
        mean, log_scale = np.broadcast_arrays(as_fixed(mean, "logistic mean"), as_fixed(log_scale, "logistic log-scale"))
        self._set(mean, self.inverse_scales(log_scale), precision, levels)

    LOG_SCALES = (-4 << PARAM_BITS, 8 << PARAM_BITS)  # log-scales are clipped to these (2^-12 units)

    @classmethod
    def inverse_scales(cls, log_scale: np.ndarray) -> np.ndarray:
        """1 / scale (2^-EXP_BITS units) of int64 log-scales, as the constructor computes it."""
        # maximum/minimum, not np.clip, whose Python wrapper costs more than the arithmetic on
        # the few hundred lanes a decoder pops at a time
        log_scale = np.minimum(np.maximum(log_scale, cls.LOG_SCALES[0]), cls.LOG_SCALES[1])
        return interpolate(exp_table(), -log_scale, PARAM_BITS)

    @classmethod
    def with_inverse_scales(cls, mean: np.ndarray, inverse_scale: np.ndarray, precision: int,
                            levels: int = 256) -> "DiscretisedLogistic":
        """DiscretisedLogistic(mean, log_scale) given `inverse_scales(log_scale)` instead of
        log_scale (int64 arrays of one shape, precision checked by the caller): a decoder that
        pops a pixel's channels one by one computes their scales once."""
        distribution = cls.__new__(cls)
        distribution._set(mean, inverse_scale, precision, levels)
        return distribution

    def _set(self, mean, inverse_scale, precision: int, levels: int) -> None:
        mean = np.minimum(np.maximum(mean, -(1 << (10 + PARAM_BITS))), (1024 + levels) << PARAM_BITS)
        # Stored as (mean + 0.5, 1 / scale): G(k) = sigmoid((k - 0.5 - mean) / scale).
        self.params = (mean + (1 << (PARAM_BITS - 1)), inverse_scale)
        self.precision = precision
        self.n_symbols = levels
        self.shape = mean.shape

    def _cdf_inner(self, k, params):
        # |k - mean - 0.5| < 2^23 (2^-12 units) and 1/scale < 2^34 (2^-EXP_BITS units): the product,
        # the sigmoid's argument in 2^-40 units, stays below 2^57.
        shifted_mean, inverse_scale = params
        argument = ((k << PARAM_BITS) - shifted_mean) * inverse_scale
        g = interpolate(sigmoid_table(), argument, PARAM_BITS + EXP_BITS)
        return cdf_from_g(g, k, self.n_symbols, self.precision)

    def _guess(self, cumulative, params):
        # The logistic quantile at the cumulative frequency: G(k) = u at k = mean + 0.5 + scale * logit(u).
        # A float hint only (see _search_from_guess); u lies strictly inside (0, 1), so it is finite.
        shifted_mean, inverse_scale = params
        u = (cumulative.astype(np.float64) + 0.5) * (1.0 / float(1 << self.precision))
        k = np.log(u / (1.0 - u))
        k /= inverse_scale * (1.0 / (1 << EXP_BITS))
        k += shifted_mean * (1.0 / (1 << PARAM_BITS))
        return np.floor(k, out=k)


class LogisticScales:
    """DiscretisedLogistic.inverse_scales, looked up: one table of the inverse scale of every
    log-scale it distinguishes, made by inverse_scales itself (a log-scale past either clip
    takes the entry at it). A decoder that pops a pixel position at a time makes a logistic a
    step, where the exp table's interpolation is a good part of that step's numpy calls."""

    def __init__(self):
        low, high = DiscretisedLogistic.LOG_SCALES
        self._first = low
        self._inverse_scales = DiscretisedLogistic.inverse_scales(np.arange(low, high + 1, dtype=np.int64))

    def __call__(self, log_scale: np.ndarray) -> np.ndarray:
        return np.take(self._inverse_scales, as_fixed(log_scale, "logistic log-scale") - self._first, mode="clip")

    @staticmethod
    @lru_cache(maxsize=None)
    def shared() -> "LogisticScales":
        """One table a process (400 KB, made in about 6 ms)."""
        return LogisticScales()


class DiscretisedLogisticMixture(DiscretisedLogistic):
    """A mixture of M logistics rounded to levels 0..n-1: `mean`, `log_scale` and `logits` are
    int64 (..., M) in 2^-12 units, as DiscretisedLogistic's.

    The weights are integers summing to 2^WEIGHT_BITS: each component's exp(logit - the
    largest), from the integer exp table (a component more than 8 below the largest counts as
    8 below), in proportion, floored, the remainder to the first largest. G is the weighted sum
    of the components' integer G, shifted down by WEIGHT_BITS: non-decreasing, 0 and 2^32 at the
    ends, so the CDF rule of tables.py applies unchanged.
    """

    WEIGHT_BITS = 16
    guess_misses_often = True  # by a level, for about a quarter of the values (_guess)

    def __init__(self, mean, log_scale, logits, precision: int = 24, levels: int = 256):
        check_precision(precision, levels, MAX_TABLE_PRECISION)
        mean, log_scale, logits = np.broadcast_arrays(as_fixed(mean, "mixture mean"), as_fixed(log_scale, "mixture log-scale"),
                                                      as_fixed(logits, "mixture logits"))
        self._set_mixture(mean, self.inverse_scales(log_scale), self.weights(logits), precision, levels)

    @classmethod
    def weights(cls, logits: np.ndarray) -> np.ndarray:
        """The integer weights (..., M) of int64 logits (..., M), as the constructor computes them."""
        largest = _reduce_components(np.maximum, logits)
        relative = np.maximum(logits - largest[..., None], -8 << PARAM_BITS)
        unnormalised = interpolate(exp_table(), relative, PARAM_BITS)
        weights = (unnormalised << cls.WEIGHT_BITS) // _reduce_components(np.add, unnormalised)[..., None]
        remainder = (1 << cls.WEIGHT_BITS) - _reduce_components(np.add, weights)
        # the remainder to the first largest component (argmax's choice; some component is the
        # largest, so the last stands where no earlier one is)
        components = logits.shape[-1]
        first = np.full(largest.shape, components - 1, dtype=np.intp)
        for component in range(components - 2, -1, -1):
            first = np.where(logits[..., component] == largest, component, first)
        flat = weights.reshape(-1, components)
        flat[np.arange(len(flat)), first.ravel()] += remainder.ravel()
        return weights

    @classmethod
    def with_weights(cls, mean, inverse_scale, weights, precision: int, levels: int = 256) -> "DiscretisedLogisticMixture":
        """The mixture given `inverse_scales(log_scale)` and `weights(logits)` (int64 (..., M)
        arrays of one shape, precision checked by the caller)."""
        distribution = cls.__new__(cls)
        distribution._set_mixture(mean, inverse_scale, weights, precision, levels)
        return distribution

    def _set_mixture(self, mean, inverse_scale, weights, precision: int, levels: int) -> None:
        self._set(mean, inverse_scale, precision, levels)
        self.params = self.params + (weights,)
        self.shape = mean.shape[:-1]

    def _cdf_inner(self, k, params):
        # Each component's G (at most 2^32) times its weight (at most 2^16), summed: below 2^51.
        shifted_mean, inverse_scale, weights = params
        argument = (((k << PARAM_BITS)[..., None]) - shifted_mean) * inverse_scale
        g = interpolate(sigmoid_table(), argument, PARAM_BITS + EXP_BITS)
        g *= weights
        return cdf_from_g(_reduce_components(np.add, g) >> self.WEIGHT_BITS, k, self.n_symbols, self.precision)

    def _guess(self, cumulative, params):
        # The heaviest component's quantile: a float hint only (see _search_from_guess). Newton
        # steps on the mixture's own CDF miss less often, but cost more than the searches they
        # save: a decoder's search costs per call, over a few hundred lanes, not per lane.
        shifted_mean, inverse_scale, weights = params
        heaviest, mean, scale = weights[..., 0], shifted_mean[..., 0], inverse_scale[..., 0]
        for component in range(1, weights.shape[-1]):
            heavier = weights[..., component] > heaviest
            heaviest = np.where(heavier, weights[..., component], heaviest)
            mean = np.where(heavier, shifted_mean[..., component], mean)
            scale = np.where(heavier, inverse_scale[..., component], scale)
        return DiscretisedLogistic._guess(self, cumulative, (mean, scale))

    def interval(self, symbols):
        symbols = _as_symbols(symbols, self.n_symbols)
        params = [np.broadcast_to(p, symbols.shape + p.shape[-1:]) for p in self.params]
        start, end = interval_at(lambda k: self._cdf_inner(k, params), symbols, self.n_symbols, self.precision)
        return start.astype(np.uint64), (end - start).astype(np.uint64)

    def stepwise(self, head_shape, shape):
        raise NotImplementedError("a mixture is popped a step at a time by its model (bbans.pop_symbol)")


class DiscretisedLogisticRGB:
    """PixelCNN++'s channel-wise linear autoregressive coupling over the last axis (R, G, B).

    The mean of G is shifted by coeffs[..., 0] * R, the mean of B by coeffs[..., 1] * R +
    coeffs[..., 2] * G. Means, log-scales and coefficients are int64 with 2^-12 resolution.
    Symbols have shape (..., 3). Used through the `DiscretisedLogisticRGB` codec, which decodes
    R, then G, then B.
    """

    def __init__(self, mean, log_scale, coeffs, precision: int = 24, levels: int = 256):
        self.mean = as_fixed(mean, "RGB logistic mean")
        self.log_scale = as_fixed(log_scale, "RGB logistic log-scale")
        self.coeffs = np.clip(as_fixed(coeffs, "RGB coefficients"), -(4 << PARAM_BITS), 4 << PARAM_BITS)
        if self.mean.shape[-1:] != (3,) or self.coeffs.shape[-1:] != (3,):
            raise InvalidParameters("RGB logistic parameters need a last axis of 3")
        self.precision = precision
        self.levels = levels

    def channel(self, c: int, decoded):
        """The distribution of channel c given the decoded (..., 3) values of earlier channels."""
        mean = self.mean[..., c].copy()
        decoded = np.asarray(decoded, dtype=np.int64)
        if c == 1:
            mean += self.coeffs[..., 0] * decoded[..., 0]
        elif c == 2:
            mean += self.coeffs[..., 1] * decoded[..., 0] + self.coeffs[..., 2] * decoded[..., 1]
        return DiscretisedLogistic(mean, self.log_scale[..., c], self.precision, self.levels)


class BucketedGaussian(_BoundaryDistribution):
    """N(mean, std) restricted to the 2^bucket_bits equal-mass buckets of N(0, 1).

    mean and std are int64 with 2^-16 resolution, clipped to [-64, 64] and [2^-14, 64]. Bucket
    edges and G come from the integer normal-CDF table (lookup.py).
    """

    def __init__(self, mean, std, bucket_bits: int, precision: int):
        if precision < bucket_bits + 2:
            raise InvalidParameters("the posterior precision must exceed the bucket bits by at least 2")
        check_precision(precision, 1 << bucket_bits, MAX_TABLE_PRECISION)
        mean = np.clip(as_fixed(mean, "posterior mean"), -(64 << QUANTILE_BITS), 64 << QUANTILE_BITS)
        std = np.clip(as_fixed(std, "posterior std"), 1 << (QUANTILE_BITS - 14), 64 << QUANTILE_BITS)
        self.params = np.broadcast_arrays(mean, std)
        self.edges = bucket_edges(bucket_bits)
        self.precision = precision
        self.n_symbols = 1 << bucket_bits
        self.shape = self.params[0].shape

    def _cdf_inner(self, k, params):
        # (edge - mean) < 2^23 and std >= 2^2 (2^-16 units): the standardised edge, in 2^-16
        # units, is an exact integer quotient (floor) below 2^37.
        mean, std = params
        standardised = ((self.edges[k - 1] - mean) << QUANTILE_BITS) // std
        g = interpolate(normal_cdf_table(), standardised, QUANTILE_BITS)
        return cdf_from_g(g, k, self.n_symbols, self.precision)
