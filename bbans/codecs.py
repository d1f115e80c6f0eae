"""Codecs: pairs of pure functions push(message, symbols) -> message and
pop(message) -> (message, symbols), in the style of craystack.

Constructors are nouns (`Uniform`, `Bernoulli`, ...), combinators are verbs (`serial`,
`parallel`, `repeat`, `bits_back`).

Symbols of an elementwise codec have the message head's shape, optionally followed by extra
"step" axes: each lane then codes its steps one after another (the first step is decoded
first). Intervals for all steps are computed in one vectorised call when encoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import distributions as dist
from .errors import CorruptStream, InvalidParameters
from .message import Message


@dataclass(frozen=True)
class Codec:
    push: Callable[[Message, object], Message]
    pop: Callable[[Message], tuple[Message, object]]
    # check(message, symbols): what pop gives, for a message known to hold `symbols` (or
    # CorruptStream); a codec may offer it where it is cheaper than pop (no search).
    check: Callable[[Message, object], tuple[Message, object]] | None = None


def _steps(head_shape, shape) -> int:
    shape = tuple(shape)
    if shape[: len(head_shape)] != tuple(head_shape):
        raise InvalidParameters(f"symbols of shape {shape} do not fit a head of shape {tuple(head_shape)}")
    return int(np.prod(shape[len(head_shape):], dtype=np.int64))


def from_distribution(distribution) -> Codec:
    """An elementwise codec for a distribution from distributions.py (shape = its parameters')."""
    precision = distribution.precision

    def step_intervals(message, symbols):
        """(start, freq) of the symbols as (steps, *head): each step is a contiguous row."""
        n_steps = _steps(message.shape, symbols.shape)
        start, freq = distribution.interval(symbols)
        return tuple(np.ascontiguousarray(np.moveaxis(part.reshape(message.shape + (n_steps,)), -1, 0))
                     for part in (start, freq))

    def push(message, symbols):
        return push_intervals(message, *step_intervals(message, np.asarray(symbols)), precision)

    def pop(message):
        shape = tuple(distribution.shape) or message.shape
        n_steps = _steps(message.shape, shape)
        steps = distribution.stepwise(message.shape, shape)
        symbols = np.empty((n_steps,) + message.shape, dtype=np.int64)
        with np.errstate(over="ignore"):
            message = _pop_steps(message, steps, symbols, precision)
        return message, np.moveaxis(symbols, 0, -1).reshape(shape)

    def check(message, symbols):
        symbols = np.asarray(symbols)
        return pop_intervals(message, *step_intervals(message, symbols), precision), symbols.astype(np.int64)

    return Codec(push, pop, check)


def pop_symbol(message, distribution):
    """Pop one symbol per lane from a distribution of the head's shape: what
    from_distribution(distribution).pop does for a single step, without its step machinery
    (an autoregressive codec pops one step at a time, and this is its inner loop)."""
    cumulative = message.peek(distribution.precision)
    with np.errstate(over="ignore"):
        symbols, start, freq = distribution.search(cumulative)
        return message.pop(cumulative, start, freq, distribution.precision), symbols


def pop_interval(message, start, freq, precision: int):
    """Pop the symbols of these intervals (one per lane), which the message must hold (else
    CorruptStream): a check that the message decodes to known symbols, with no search.
    Intervals are disjoint and `search` finds the symbol whose interval holds the cumulative
    frequency, so where this succeeds pop_symbol would have popped the same symbols and left
    the same message."""
    start, freq = np.asarray(start, dtype=np.uint64), np.asarray(freq, dtype=np.uint64)
    cumulative = message.peek(precision)
    if not np.all((cumulative >= start) & (cumulative < start + freq)):
        raise CorruptStream("the message does not hold the symbols it was checked against")
    return message.pop(cumulative, start, freq, precision)


def push_intervals(message, start, freq, precision: int):
    """Push a symbol per lane and step given their intervals, start and freq (steps, *head): the
    last step first, so that pop_intervals (or a search) pops the first step first."""
    for t in reversed(range(len(start))):
        message = message.push(start[t], freq[t], precision)
    return message


def pop_intervals(message, start, freq, precision: int):
    """pop_interval of each step in turn: start and freq (steps, *head), as push_intervals took them."""
    for t in range(len(start)):
        message = pop_interval(message, start[t], freq[t], precision)
    return message


def _pop_steps(message, steps, symbols, precision):
    """Decode step after step along each lane, filling symbols[t]."""
    for t in range(len(symbols)):
        cumulative = message.peek(precision)
        symbols[t], start, freq = steps.search(cumulative, t)
        message = message.pop(cumulative, start, freq, precision)
    return message


def Uniform(precision: int, shape=()) -> Codec:
    return from_distribution(dist.Uniform(precision, shape))


def Categorical(probs, precision: int, shape=None) -> Codec:
    """probs (..., K) per symbol, or one table (K,) shared by symbols of `shape`."""
    return from_distribution(dist.Categorical(probs, precision, shape))


def Bernoulli(probs=None, *, logits=None, precision: int = 16) -> Codec:
    """probs: int64 P(1) in 2^-32 units; or logits: int64 in 2^-12 units."""
    return from_distribution(dist.Bernoulli(probs, logits=logits, precision=precision))


def DiscretisedLogistic(mean, log_scale, precision: int = 24, levels: int = 256) -> Codec:
    """mean and log_scale: int64 in level units with 2^-12 resolution."""
    return from_distribution(dist.DiscretisedLogistic(mean, log_scale, precision, levels))


def BucketedGaussian(mean, std, bucket_bits: int, precision: int) -> Codec:
    """mean and std: int64 with 2^-16 resolution."""
    return from_distribution(dist.BucketedGaussian(mean, std, bucket_bits, precision))


def BucketPrior(bucket_bits: int, shape=()) -> Codec:
    """The prior over bucket indices: uniform, since the buckets have equal mass under N(0, 1)."""
    return Uniform(bucket_bits, shape)


def DiscretisedLogisticRGB(mean, log_scale, coeffs, precision: int = 24, levels: int = 256) -> Codec:
    """Symbols (..., 3): R is decoded first, then G given R, then B given R and G."""
    rgb = dist.DiscretisedLogisticRGB(mean, log_scale, coeffs, precision, levels)

    def push(message, symbols):
        symbols = np.asarray(symbols)
        for c in (2, 1, 0):
            message = from_distribution(rgb.channel(c, symbols)).push(message, symbols[..., c])
        return message

    def pop(message):
        decoded = np.zeros(rgb.mean.shape, dtype=np.int64)
        for c in (0, 1, 2):
            message, decoded[..., c] = from_distribution(rgb.channel(c, decoded)).pop(message)
        return message, decoded

    return Codec(push, pop)


# -- combinators -------------------------------------------------------------------------------
def serial(codecs) -> Codec:
    """Code a tuple of symbols, one codec each; the first is decoded first."""
    codecs = list(codecs)

    def push(message, symbols):
        for codec, symbol in reversed(list(zip(codecs, symbols, strict=True))):
            message = codec.push(message, symbol)
        return message

    def pop(message):
        symbols = []
        for codec in codecs:
            message, symbol = codec.pop(message)
            symbols.append(symbol)
        return message, tuple(symbols)

    return Codec(push, pop)


def repeat(codec: Codec, times: int) -> Codec:
    """The same codec `times` times in a row: a list of symbols."""

    def push(message, symbols):
        if len(symbols) != times:
            raise InvalidParameters(f"repeat expects {times} symbols, got {len(symbols)}")
        for symbol in reversed(symbols):
            message = codec.push(message, symbol)
        return message

    def pop(message):
        symbols = []
        for _ in range(times):
            message, symbol = codec.pop(message)
            symbols.append(symbol)
        return message, symbols

    return Codec(push, pop)


def parallel(codecs, parts) -> Codec:
    """Each codec on its own part of the head (`parts`: index expressions into the head)."""
    codecs = list(codecs)
    parts = list(parts)

    def run_on_part(message, part, step):
        sub = Message(message.head[part], message.tail)
        sub, result = step(sub)
        head = message.head.copy()
        head[part] = sub.head
        return Message(head, sub.tail), result

    def push(message, symbols):
        for codec, part, symbol in reversed(list(zip(codecs, parts, symbols, strict=True))):
            message, _ = run_on_part(message, part, lambda m: (codec.push(m, symbol), None))
        return message

    def pop(message):
        symbols = []
        for codec, part in zip(codecs, parts):
            message, symbol = run_on_part(message, part, codec.pop)
            symbols.append(symbol)
        return message, tuple(symbols)

    return Codec(push, pop)


def bits_back(prior: Codec, likelihood: Callable[[object], Codec], posterior: Callable[[object], Codec]) -> Codec:
    """The bits-back codec of a latent variable model (Townsend et al. 2019).

    push: pop z from the posterior q(z|x), push x under p(x|z), push z under p(z).
    pop:  the exact mirror. `likelihood(z)` and `posterior(x)` return codecs.
    """

    def push(message, x):
        message, z = posterior(x).pop(message)
        message = likelihood(z).push(message, x)
        return prior.push(message, z)

    def pop(message):
        message, z = prior.pop(message)
        message, x = likelihood(z).pop(message)
        return posterior(x).push(message, z), x

    def check(message, x):
        message, z = prior.pop(message)
        of_z = likelihood(z)
        message, x = of_z.pop(message) if of_z.check is None else of_z.check(message, x)
        return posterior(x).push(message, z), x

    return Codec(push, pop, check)
