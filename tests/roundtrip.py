"""The one round-trip helper every codec test uses."""
from __future__ import annotations

import numpy as np

from bbzip.bbans import Message


def messages_equal(a: Message, b: Message) -> bool:
    return (
        np.array_equal(a.head, b.head)
        and np.array_equal(a._real_words(), b._real_words())
        and a.virtual_words_used == b.virtual_words_used
    )


def assert_symbols_equal(expected, actual) -> None:
    if isinstance(expected, (tuple, list)):
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            assert_symbols_equal(e, a)
    else:
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def check_roundtrip(codec, symbols, message: Message, through_bytes: bool = True, seed: int = 0) -> Message:
    """Push then pop: symbols and message must come back unchanged (also through bytes)."""
    before = Message(message.head.copy(), message.tail)
    pushed = codec.push(message, symbols)
    assert messages_equal(message, before), "push mutated its input message"
    if through_bytes and message.tail_words == 0 and message.virtual_words_used == 0:
        pushed = Message.from_bytes(pushed.to_bytes(), pushed.shape, seed=seed)
    popped, decoded = codec.pop(pushed)
    assert_symbols_equal(symbols, decoded)
    if through_bytes and message.tail_words == 0 and message.virtual_words_used == 0:
        assert np.array_equal(popped.head, message.head)
        popped.check_initial()
    else:
        assert messages_equal(popped, message), "pop did not restore the message"
    return pushed
