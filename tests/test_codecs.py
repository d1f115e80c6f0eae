import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbzip import bbans
from bbzip.bbans import Message

from .roundtrip import check_roundtrip

lanes = st.integers(1, 12)
steps = st.integers(0, 6)
seeds = st.integers(0, 2**32 - 1)
SETTINGS = settings(max_examples=30, deadline=None)


def _prefilled(n_lanes: int, rng) -> Message:
    """A message that already holds words, so round trips also exercise tail pulls."""
    message = Message.empty((n_lanes,))
    return bbans.Uniform(20, (n_lanes, 8)).push(message, rng.integers(0, 1 << 20, size=(n_lanes, 8)))


@SETTINGS
@given(lanes, steps, st.integers(1, 31), seeds)
def test_uniform(n, t, precision, seed):
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, 1 << precision, size=(n, t) if t else (n,))
    codec = bbans.Uniform(precision, symbols.shape)
    check_roundtrip(codec, symbols, Message.empty((n,)))
    check_roundtrip(codec, symbols, _prefilled(n, rng), through_bytes=False)


@SETTINGS
@given(lanes, steps, st.integers(2, 40), st.integers(6, 31), seeds, st.booleans())
def test_categorical(n, t, k, precision, seed, shared):
    rng = np.random.default_rng(seed)
    precision = max(precision, int(np.ceil(np.log2(k))))
    shape = (n, t) if t else (n,)
    probs = rng.dirichlet(np.full(k, 0.2), size=None if shared else shape)
    probs[..., 0] = 0.0  # a symbol of probability zero must still be codable (freq 1)
    symbols = rng.integers(0, k, size=shape)
    codec = bbans.Categorical(probs, precision, shape if shared else None)
    check_roundtrip(codec, symbols, Message.empty((n,)))
    check_roundtrip(codec, symbols, _prefilled(n, rng), through_bytes=False)


@SETTINGS
@given(lanes, steps, st.integers(2, 31), seeds, st.booleans())
def test_bernoulli(n, t, precision, seed, use_logits):
    rng = np.random.default_rng(seed)
    shape = (n, t) if t else (n,)
    probs = rng.choice([0.0, 1.0, 0.5, 1e-9, 1 - 1e-9], size=shape) if seed % 2 else rng.random(shape)
    symbols = rng.integers(0, 2, size=shape)
    precision = min(precision, 30)
    if use_logits:
        codec = bbans.Bernoulli(logits=bbans.to_fixed(rng.normal(0, 30, size=shape), 12), precision=precision)
    else:
        codec = bbans.Bernoulli(bbans.to_fixed(probs, 32), precision=precision)
    check_roundtrip(codec, symbols, Message.empty((n,)))
    check_roundtrip(codec, symbols, _prefilled(n, rng), through_bytes=False)


@pytest.mark.parametrize("precision", [2, 16, 30])
def test_bernoulli_logits_looked_up_are_the_distributions_bernoulli_makes(precision):
    """Every logit the sigmoid table reaches, one step either side of its ends, and far past
    them (the local models' logits reach +-64, the table +-32) gives Bernoulli's own
    frequencies. (Checked to fail with the lookup a logit off.)"""
    from bbzip.bbans.distributions import Bernoulli, BernoulliLogits

    reach = 32 << 12
    logits = np.concatenate([np.arange(-reach - 2, reach + 3), [-(64 << 12), 64 << 12, -(1 << 40), 1 << 40]]).astype(np.int64)
    looked_up = BernoulliLogits(precision)(logits)
    made = Bernoulli(logits=logits, precision=precision)
    assert looked_up.precision == made.precision and looked_up.shape == made.shape
    np.testing.assert_array_equal(looked_up.zero_freq, made.zero_freq)
    assert looked_up.zero_freq.dtype == made.zero_freq.dtype


def test_logistic_inverse_scales_looked_up_are_those_the_logistic_computes():
    """Every log-scale between the clips, a step past each, and far past them gives
    DiscretisedLogistic.inverse_scales' own value. (Checked to fail with the lookup a step off.)"""
    from bbzip.bbans.distributions import DiscretisedLogistic, LogisticScales

    low, high = DiscretisedLogistic.LOG_SCALES
    log_scales = np.concatenate([np.arange(low - 2, high + 3), [low - (1 << 40), high + (1 << 40)]]).astype(np.int64)
    looked_up = LogisticScales()(log_scales)
    np.testing.assert_array_equal(looked_up, DiscretisedLogistic.inverse_scales(log_scales))
    assert looked_up.dtype == DiscretisedLogistic.inverse_scales(log_scales).dtype


@SETTINGS
@given(lanes, steps, st.integers(9, 31), seeds)
def test_discretised_logistic_extremes(n, t, precision, seed):
    rng = np.random.default_rng(seed)
    shape = (n, t) if t else (n,)
    mean = rng.choice([-1e6, -300.0, 0.0, 127.3, 255.0, 600.0, 1e6], size=shape) + rng.normal(0, 5, shape)
    log_scale = np.log(rng.choice([1e-3, 1e-1, 1.0, 30.0, 1e3], size=shape))
    symbols = rng.integers(0, 256, size=shape)
    codec = bbans.DiscretisedLogistic(bbans.to_fixed(mean, 12), bbans.to_fixed(log_scale, 12), min(precision, 30))
    check_roundtrip(codec, symbols, Message.empty((n,)))
    check_roundtrip(codec, symbols, _prefilled(n, rng), through_bytes=False)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 4), seeds)
def test_discretised_logistic_rgb(n, t, seed):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-20, 280, (n, t, 3))
    log_scale = rng.uniform(-3, 4, (n, t, 3))
    coeffs = rng.uniform(-1, 1, (n, t, 3))
    symbols = rng.integers(0, 256, (n, t, 3))
    check_roundtrip(bbans.DiscretisedLogisticRGB(*(bbans.to_fixed(p, 12) for p in (mean, log_scale, coeffs))), symbols, Message.empty((n,)))


@SETTINGS
@given(lanes, steps, st.integers(1, 12), st.integers(0, 8), seeds)
def test_bucketed_gaussian(n, t, bucket_bits, extra_precision, seed):
    rng = np.random.default_rng(seed)
    precision = min(30, bucket_bits + 2 + extra_precision + 6)
    shape = (n, t) if t else (n,)
    mean = rng.choice([-50.0, -3.0, 0.0, 0.7, 3.0, 50.0], size=shape)
    std = rng.choice([1e-6, 1e-3, 0.1, 1.0, 5.0, 1e3], size=shape)
    symbols = rng.integers(0, 1 << bucket_bits, size=shape)
    codec = bbans.BucketedGaussian(bbans.to_fixed(mean, 16), bbans.to_fixed(std, 16), bucket_bits, precision)
    check_roundtrip(codec, symbols, Message.empty((n,)))
    check_roundtrip(codec, symbols, _prefilled(n, rng), through_bytes=False)


@SETTINGS
@given(lanes, seeds)
def test_serial_repeat_parallel(n, seed):
    rng = np.random.default_rng(seed)
    a = bbans.Bernoulli(bbans.to_fixed(rng.random((n, 3)), 32), precision=12)
    b = bbans.Categorical(rng.dirichlet(np.ones(5)), 10, (n,))
    symbols = (rng.integers(0, 2, (n, 3)), rng.integers(0, 5, (n,)))
    check_roundtrip(bbans.serial([a, b]), symbols, Message.empty((n,)))
    check_roundtrip(bbans.repeat(b, 4), [rng.integers(0, 5, (n,)) for _ in range(4)], Message.empty((n,)))
    # Two codecs on the two halves of a (2, n) head.
    left, right = bbans.Uniform(7, (n,)), bbans.Bernoulli(np.full(n, 3 << 30), precision=8)
    check_roundtrip(bbans.parallel([left, right], [0, 1]), (rng.integers(0, 128, n), rng.integers(0, 2, n)),
                    Message.empty((2, n)))


def test_every_symbol_has_positive_frequency():
    mean = np.linspace(-1e4, 1e4, 41)[:, None].repeat(256, 1)
    log_scale = np.full_like(mean, np.log(1e-3))
    distribution = bbans.distributions.DiscretisedLogistic(bbans.to_fixed(mean, 12), bbans.to_fixed(log_scale, 12), precision=16)
    _, freq = distribution.interval(np.tile(np.arange(256), (41, 1)))
    assert freq.min() >= 1 and np.all(freq.sum(axis=1) == 1 << 16)


def test_frequencies_sum_to_two_to_the_precision():
    rng = np.random.default_rng(0)
    freqs = bbans.tables.freqs_from_probs(rng.dirichlet(np.ones(7), size=100), 20)
    assert np.all(freqs.sum(axis=1) == 1 << 20) and freqs.min() >= 1


def test_wrong_symbol_shape_is_refused():
    with pytest.raises(bbans.InvalidParameters):
        bbans.Uniform(8).push(Message.empty((3,)), np.zeros((4,), dtype=int))


def _search_inverts_every_cumulative(distribution, n_symbols: int, precision: int, lanes: int) -> None:
    """For every cumulative frequency c in 0..2^p - 1 on every lane, the decoder's search finds
    the one symbol whose integer interval [start, start + freq) holds c, with that interval."""
    starts, freqs = distribution.interval(np.tile(np.arange(n_symbols), (lanes, 1)).T.copy())  # (symbols, lanes)
    starts, freqs = starts.astype(np.int64), freqs.astype(np.int64)
    assert np.all(freqs >= 1) and np.all(freqs.sum(axis=0) == 1 << precision)
    search = distribution.stepwise((lanes,), (lanes,)).search
    for c in range(1 << precision):
        cumulative = np.full(lanes, c, dtype=np.uint64)
        symbols, start, freq = search(cumulative, 0)
        lane = np.arange(lanes)
        assert np.all((starts[symbols, lane] <= c) & (c < starts[symbols, lane] + freqs[symbols, lane])), c
        assert np.array_equal(np.asarray(start, dtype=np.int64), starts[symbols, lane])
        assert np.array_equal(np.asarray(freq, dtype=np.int64), freqs[symbols, lane])


def test_every_search_inverts_its_integer_cdf_exhaustively():
    """Small precisions, every codec's distribution, every cumulative frequency, lanes with
    different parameters (extreme ones included)."""
    lanes = 7
    fixed = bbans.to_fixed
    rng = np.random.default_rng(3)
    cases = [
        (bbans.distributions.Uniform(6, (lanes,)), 64, 6),
        (bbans.distributions.Categorical(rng.dirichlet(np.ones(9), size=lanes), 8), 9, 8),
        (bbans.distributions.Categorical(np.array([5.0, 0.0, 1e-9, 3.0]), 6, (lanes,)), 4, 6),  # one shared table
        (bbans.distributions.Bernoulli(logits=fixed(np.array([-40, -5, -0.5, 0, 0.5, 5, 40.0]), 12), precision=6), 2, 6),
        (bbans.distributions.DiscretisedLogistic(fixed(np.array([-50, 0, 3.2, 127.5, 200, 255, 400.0]), 12),
                                                 fixed(np.array([-6, -1, 0, 1, 2, 4, 6.0]), 12), precision=10), 256, 10),
        (bbans.distributions.BucketedGaussian(fixed(np.array([-70, -3, -0.1, 0, 0.7, 3, 70.0]), 16),
                                              fixed(np.array([1e-4, 0.01, 0.5, 1, 2, 10, 80.0]), 16), 4, 6), 16, 6),
    ]
    for distribution, n_symbols, precision in cases:
        _search_inverts_every_cumulative(distribution, n_symbols, precision, lanes)


@pytest.mark.parametrize("radix", [3, 16, 256])
def test_a_wider_search_finds_what_a_binary_one_finds(radix):
    """search_boundaries in thirds, sixteenths or all at once (the mixture's few far lanes)
    gives every cumulative frequency the symbol and interval the binary search gives, for
    symbol counts that are and are not powers of the radix."""
    fixed = bbans.to_fixed
    lanes, precision = 5, 10
    logistic = bbans.distributions.DiscretisedLogistic(fixed(np.array([-50, 3.2, 127.5, 255, 400.0]), 12),
                                                       fixed(np.array([-6, 0, 1, 4, 6.0]), 12), precision=precision)
    rng = np.random.default_rng(6)
    for n_symbols in (2, 9, 16, 100, 256):
        table = bbans.distributions.Categorical(rng.dirichlet(np.ones(n_symbols), size=lanes), precision)
        cases = [(lambda k: logistic._cdf_inner(k, logistic.params), 256)] if n_symbols == 256 else []
        cases.append((lambda k: table.cdf[np.arange(lanes), k].astype(np.int64), n_symbols))
        for cdf_inner, n in cases:
            cumulative = np.repeat(np.arange(1 << precision)[:, None], lanes, axis=1)
            binary = bbans.tables.search_boundaries(cdf_inner, cumulative, n, precision)
            wider = bbans.tables.search_boundaries(cdf_inner, cumulative, n, precision, radix=radix)
            assert all(np.array_equal(a, b) for a, b in zip(binary, wider)), (n, radix)


def test_unnormalised_weights_at_high_precision_keep_their_proportions():
    """Weights that do not sum to 1, at 31 bits: the frequencies once wrapped around 2^64
    ([1000, 500, 1] gave 2^64 - 1.7e10 for the second symbol) and decoded wrong symbols."""
    freqs = bbans.tables.freqs_from_probs([1000.0, 500.0, 1.0], 31).astype(np.int64)
    assert freqs.sum() == 1 << 31 and np.all(freqs >= 1)
    np.testing.assert_allclose(freqs / (1 << 31), np.array([1000, 500, 1]) / 1501, rtol=1e-6)
    codec = bbans.Categorical(np.array([1000.0, 500.0, 1.0]), 31, (5,))
    check_roundtrip(codec, np.array([0, 1, 2, 1, 0]), Message.empty((5,)))


def _mixture(lanes: int, precision: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    fixed = bbans.to_fixed
    mean = rng.uniform(-60, 320, (lanes, 3))
    log_scale = rng.uniform(-6, 6, (lanes, 3))
    logits = rng.uniform(-20, 20, (lanes, 3))
    logits[0] = [3.0, 3.0, 3.0]  # ties: the remainder goes to the first
    return bbans.distributions.DiscretisedLogisticMixture(fixed(mean, 12), fixed(log_scale, 12), fixed(logits, 12),
                                                          precision), (mean, log_scale, logits)


def test_a_mixture_search_inverts_its_integer_cdf_exhaustively():
    lanes, precision = 9, 10
    distribution, floats = _mixture(lanes, precision)
    wide = bbans.distributions.DiscretisedLogisticMixture(*(np.repeat(bbans.to_fixed(p, 12)[None], 256, axis=0) for p in floats),
                                                          precision)
    starts, freqs = (a.astype(np.int64) for a in wide.interval(np.tile(np.arange(256), (lanes, 1)).T.copy()))
    assert np.all(freqs >= 1) and np.all(freqs.sum(axis=0) == 1 << precision)
    lane = np.arange(lanes)
    for c in range(1 << precision):
        symbols, start, freq = distribution.search(np.full(lanes, c, dtype=np.uint64))
        assert np.all((starts[symbols, lane] <= c) & (c < starts[symbols, lane] + freqs[symbols, lane])), c
        assert np.array_equal(start.astype(np.int64), starts[symbols, lane]) and np.array_equal(freq.astype(np.int64), freqs[symbols, lane])


def test_a_mixture_s_weights_give_their_remainder_to_the_first_largest_component():
    """Floored weights leave a remainder below the component count; it goes to the first of
    the largest logits (argmax's choice), wherever that stands: of tied largest components the
    first is heavier by it, the others equal."""
    logits = bbans.to_fixed(np.array([[0.0, 0.0, 0.0], [-1.0, 2.0, 2.0], [1.0, -3.0, 1.0]]), 12)
    weights = bbans.distributions.DiscretisedLogisticMixture.weights(logits)
    assert np.all(weights.sum(axis=1) == 1 << 16)
    assert weights[0].tolist() == [21846, 21845, 21845]
    assert weights[1, 1] > weights[1, 2] and weights[2, 0] > weights[2, 2]


def test_a_mixture_is_its_weighted_logistics_and_its_guess_only_a_hint(monkeypatch):
    """The integer weights sum to 2^16 in the softmax's proportions; the frequencies are the
    float mixture's probabilities to within the coder's rule; and a wrong guess (every symbol
    guessed 0) still decodes every symbol."""
    lanes, precision = 200, 16
    distribution, (mean, log_scale, logits) = _mixture(lanes, precision)
    weights = distribution.params[2]
    assert np.all(weights.sum(axis=1) == 1 << 16) and weights[0].tolist() == [21846, 21845, 21845]
    relative = np.maximum(logits - logits.max(axis=1, keepdims=True), -8)
    softmax = np.exp(relative) / np.exp(relative).sum(axis=1, keepdims=True)
    assert np.abs(weights / 65536 - softmax).max() < 1e-3
    levels = np.arange(257)[None, :, None] - 0.5
    with np.errstate(over="ignore"):
        scale = np.exp(np.clip(log_scale, -4, 8))  # the coder's range of log-scales
        cdf = (softmax[:, None] / (1 + np.exp(-(levels - mean[:, None]) / scale[:, None]))).sum(axis=2)
    cdf[:, 0], cdf[:, -1] = 0, 1
    symbols = np.tile(np.arange(256), (lanes, 1))
    wide = bbans.distributions.DiscretisedLogisticMixture(*(np.repeat(bbans.to_fixed(p, 12)[:, None], 256, axis=1)
                                                            for p in (mean, log_scale, logits)), precision)
    _, freqs = wide.interval(symbols)
    assert np.abs(freqs / 2.0**precision - np.diff(cdf, axis=1)).max() < 300 / 2.0**precision
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, lanes)
    start, freq = distribution.interval(x)
    message = Message.empty((lanes,)).push(start, freq, precision)
    monkeypatch.setattr(bbans.distributions.DiscretisedLogisticMixture, "_guess", lambda self, c, p: np.zeros(c.shape))
    _, decoded = bbans.pop_symbol(message, distribution)
    assert np.array_equal(decoded, x)


@pytest.mark.parametrize("offsets", [(-1, 1), (-1, 1, -6, 9, 0)])
def test_a_guess_off_by_one_or_more_either_way_finds_the_searched_symbol(monkeypatch, offsets):
    """The decoder's search checks the guess and its neighbours (a mixture's, at once), then
    searches the rest: whichever step finds a lane's symbol, symbol and interval are those of a
    full search."""
    lanes, precision = 300, 16
    distribution, _ = _mixture(lanes, precision)
    rng = np.random.default_rng(2)
    cumulative = rng.integers(0, 1 << precision, lanes)
    symbols, start, freq = bbans.tables.search_boundaries(lambda k: distribution._cdf_inner(k, distribution.params),
                                                          cumulative, 256, precision)
    guess = symbols + rng.choice(offsets, lanes)
    monkeypatch.setattr(bbans.distributions.DiscretisedLogisticMixture, "_guess", lambda self, c, p: guess)
    found = distribution.search(cumulative)
    assert np.array_equal(found[0], symbols) and np.array_equal(found[1], start) and np.array_equal(found[2], freq)


@pytest.mark.parametrize("mixture", [False, True], ids=["logistic", "mixture"])
def test_popping_known_symbols_is_popping_them_and_refuses_others(mixture):
    """pop_interval of the symbols' intervals (a check that a message holds given symbols) leaves the message pop_symbol
    leaves, and refuses, at once, a lane that holds another symbol: not only through the end
    state's check, which a wrong pop scrambles (and which a caller may not reach)."""
    lanes, precision = 300, 16
    rng = np.random.default_rng(4)
    if mixture:
        distribution, _ = _mixture(lanes, precision)
    else:
        distribution = bbans.distributions.DiscretisedLogistic(rng.integers(0, 256 << 12, lanes),
                                                               rng.integers(-2 << 12, 3 << 12, lanes), precision)
    symbols = rng.integers(0, 256, lanes)
    message = _prefilled(lanes, rng)
    pushed = message.push(*distribution.interval(symbols), precision)
    popped, found = bbans.pop_symbol(pushed, distribution)
    checked = bbans.pop_interval(pushed, *distribution.interval(symbols), precision)
    assert np.array_equal(found, symbols) and checked.to_bytes() == popped.to_bytes()
    assert np.array_equal(checked.head, message.head)
    other = symbols.copy()
    start, freq = distribution.interval(symbols)
    lane = int(np.argmax(freq < (1 << precision) - 2))  # a lane whose symbol is not its only likely one
    other[lane] = symbols[lane] + 1 if symbols[lane] < 255 else 254
    with pytest.raises(bbans.CorruptStream):
        bbans.pop_interval(pushed, *distribution.interval(other), precision)


def test_a_codec_s_check_gives_what_its_pop_gives_step_by_step():
    """from_distribution's and bits_back's check (compress's: pop knowing the symbols) leave
    the message and give the symbols their pop does, over several steps a lane; a symbol the
    message does not hold is a CorruptStream."""
    rng = np.random.default_rng(6)
    lanes, steps, precision = 5, 7, 16
    mean = rng.integers(0, 256 << 12, (lanes, steps))
    codec = bbans.from_distribution(bbans.distributions.DiscretisedLogistic(mean, np.full((lanes, steps), 1 << 12), precision))
    prior = bbans.Uniform(4, (lanes, 1))
    latent = bbans.bits_back(prior, lambda z: codec, lambda x: bbans.Uniform(4, (lanes, 1)))
    symbols = np.clip((mean >> 12) + rng.integers(-3, 4, (lanes, steps)), 0, 215)
    for tried in (codec, latent):
        pushed = tried.push(_prefilled(lanes, rng), symbols)
        (popped, found), (checked, given) = tried.pop(pushed), tried.check(pushed, symbols)
        assert np.array_equal(found, symbols) and np.array_equal(given, symbols)
        assert popped.to_bytes() == checked.to_bytes()
        other = symbols.copy()
        other[2, 5] += 40
        with pytest.raises(bbans.CorruptStream):
            tried.check(pushed, other)
