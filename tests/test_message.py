import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbzip import bbans
from bbzip.bbans import CorruptStream, InvalidParameters, Message, StreamExhausted


def test_importing_bbans_does_not_import_torch():
    import subprocess
    import sys

    code = "import bbans, sys; assert 'torch' not in sys.modules and 'click' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=40, deadline=None)
@given(
    lanes=st.integers(1, 50),
    steps=st.integers(1, 40),
    precision=st.integers(1, 31),
    seed=st.integers(0, 2**32),
)
def test_raw_push_pop_roundtrip_through_bytes(lanes, steps, precision, seed):
    rng = np.random.default_rng(seed)
    total = 1 << precision
    # Random intervals (start, freq) inside [0, 2^precision), including freq == 1 and freq == total.
    freq = rng.integers(1, total + 1, size=(steps, lanes), dtype=np.uint64)
    freq[0, 0] = 1
    start = (rng.random((steps, lanes)) * (total - freq + 1)).astype(np.uint64)
    message = Message.empty((lanes,))
    for t in range(steps):
        message = message.push(start[t], freq[t], precision)
    data = message.to_bytes()
    decoded = Message.from_bytes(data, (lanes,))
    for t in reversed(range(steps)):
        cf = decoded.peek(precision)
        assert np.all((cf >= start[t]) & (cf < start[t] + freq[t]))
        decoded = decoded.pop(cf, start[t], freq[t], precision)
    decoded.check_initial()


def test_push_does_not_mutate():
    m = Message.empty((4,))
    head = m.head.copy()
    m2 = m.push(np.zeros(4), np.ones(4), 16)
    assert np.array_equal(m.head, head) and not np.array_equal(m2.head, head)


def test_wide_head_costs_little():
    """2 x 10^5 symbols over 2,000 lanes vs the same symbols on one lane: the byte streams' sizes."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(256) * 0.3)
    symbols = rng.choice(256, size=(2_000, 100), p=probs)
    codec_wide = bbans.Categorical(probs, 16, (2_000, 100))
    wide = codec_wide.push(Message.empty((2_000,)), symbols)
    narrow = bbans.Categorical(probs, 16, (1, symbols.size)).push(Message.empty((1,)), symbols.reshape(1, -1))
    wide_bytes, narrow_bytes = len(wide.to_bytes()), len(narrow.to_bytes())
    # The head costs log2(h) + 5 bits per lane instead of 64; report both in the benchmark.
    per_lane_overhead_bits = 8 * (wide_bytes - narrow_bytes) / 2_000
    assert per_lane_overhead_bits < 40


def test_truncated_stream_raises():
    rng = np.random.default_rng(2)
    codec = bbans.Categorical(np.full(256, 1 / 256), 12, (8, 50))
    symbols = rng.integers(0, 256, size=(8, 50))
    data = codec.push(Message.empty((8,)), symbols).to_bytes()
    for cut in (1, 5, len(data) // 2, len(data) - 4, len(data) - 1):
        with pytest.raises((CorruptStream, StreamExhausted)):
            message = Message.from_bytes(data[:cut], (8,))
            message, _ = codec.pop(message)
            message.check_initial()


def test_flipped_bits_never_pass_silently():
    rng = np.random.default_rng(3)
    codec = bbans.Categorical(rng.dirichlet(np.ones(16)), 12, (5, 40))
    symbols = rng.integers(0, 16, size=(5, 40))
    data = bytearray(codec.push(Message.empty((5,)), symbols).to_bytes())
    flips = range(0, 8 * len(data), 7)
    detected = 0
    for bit in flips:
        corrupt = bytearray(data)
        corrupt[bit // 8] ^= 1 << (bit % 8)
        try:
            message = Message.from_bytes(bytes(corrupt), (5,))
            message, decoded = codec.pop(message)
            message.check_initial()
        except (CorruptStream, StreamExhausted):
            detected += 1
    # Every one of the 167 flips is caught by the stream itself (the end-state check and the
    # sealed bottom), before any pixel checksum of the archive layer is needed.
    assert detected == len(flips) == 167


def test_sealed_bottom_refuses_to_invent_bits():
    message = Message.from_bytes(Message.empty((3,)).to_bytes(), (3,))
    codec = bbans.Uniform(20, (3,))
    with pytest.raises(StreamExhausted):
        for _ in range(5):
            message, _ = codec.pop(message)


def test_initial_bits_come_from_the_virtual_bottom_and_are_checked():
    codec = bbans.Uniform(24, (6,))
    message = Message.empty((6,), seed=11)
    message, drawn = codec.pop(message)  # the encoder may pop from a fresh message
    message, drawn2 = codec.pop(message)
    assert message.virtual_words_used > 0
    message = codec.push(codec.push(message, drawn2), drawn)
    decoder_view = Message.from_bytes(message.to_bytes(), (6,), seed=11)
    decoder_view.check_initial()
    with pytest.raises(CorruptStream):
        Message.from_bytes(message.to_bytes(), (6,), seed=12).check_initial()


def test_precision_is_checked():
    with pytest.raises(InvalidParameters):
        bbans.Uniform(40)
    with pytest.raises(InvalidParameters):
        bbans.Categorical(np.ones(300) / 300, 8)


def test_garbage_bytes_raise_engine_errors():
    rng = np.random.default_rng(4)
    codec = bbans.DiscretisedLogistic(np.full((4, 10), 100 << 12), np.zeros((4, 10), dtype=np.int64))
    for _ in range(50):
        junk = rng.integers(0, 256, size=rng.integers(0, 200), dtype=np.uint8).tobytes()
        with pytest.raises(bbans.BBANSError):
            message = Message.from_bytes(junk, (4,))
            message, _ = codec.pop(message)
            message.check_initial()


def test_fresh_lanes_start_at_the_floor_with_random_low_bits():
    head = Message.empty((2, 3), seed=4).head
    assert np.all((head >> np.uint64(32)) == 1) and len(np.unique(head)) == 6
    assert not np.array_equal(head, Message.empty((2, 3), seed=5).head)


def test_lanes_grow_from_the_stack_and_shrink_back():
    codec = bbans.Uniform(16, (1,))
    message = codec.push(codec.push(Message.empty((1,), seed=3), [7]), [9])
    grown = message.grow(3)
    assert grown.shape == (4,) and np.all((grown.head[1:] >> np.uint64(32)) == 1)
    wide = bbans.Uniform(16, (4,))
    grown = wide.push(grown, [1, 2, 3, 4])
    decoded = Message.from_bytes(grown.to_bytes(), (4,), seed=3)
    decoded, symbols = wide.pop(decoded)
    assert list(symbols) == [1, 2, 3, 4]
    decoded = decoded.shrink(3)
    decoded, first = codec.pop(decoded)
    decoded, second = codec.pop(decoded)
    assert (first[0], second[0]) == (9, 7)
    decoded.check_initial()


def test_many_lanes_cost_almost_nothing_when_grown():
    """A wide message grown from the stack costs a few bits a lane, not the 32 of a fresh lane."""
    rng = np.random.default_rng(2)
    symbols = rng.integers(0, 1 << 12, size=(1000, 20))
    codec = bbans.Uniform(12, (1000, 20))
    fresh = codec.push(Message.empty((1000,)), symbols)
    # The first lane holds more than 999 words, so the new lanes take real bits, none virtual.
    first_lane = bbans.Uniform(12, (1, 4000)).push(Message.empty((1,)), symbols[:200].reshape(1, -1))
    grown = codec.push(first_lane.grow(999), symbols)
    assert len(grown.to_bytes()) - 12 * 1200 * 20 / 8 < 1000 * 1.0  # packing: ~5 bits a lane
    assert len(fresh.to_bytes()) - 12 * 1000 * 20 / 8 > 1000 * 4


def test_shrinking_a_lane_that_is_not_fresh_is_corrupt():
    message = bbans.Uniform(16, (2,)).push(Message.empty((2,)), [5, 6])
    with pytest.raises(CorruptStream):
        message.shrink(1)
