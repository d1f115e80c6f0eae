"""A vectorised rANS stack: a head of uint64 lanes over a shared tail of uint32 words.

Invariant: every lane of the head lies in [2^32, 2^64). A push whose result would overflow
first moves the lane's low 32 bits to the tail; a pop that drops a lane below 2^32 pulls one
word back. Lanes that renormalise in the same step move their words in flat lane order, so the
tail is one interleaved stack that needs no per-lane bookkeeping.

Messages are immutable: push and pop return new messages and share the old tail.

Initial bits. The first pop of a bits-back coder needs bits that are not there yet. A fresh
message therefore sits on a *virtual bottom*: an endless stack of pseudo-random words derived
from a seed. Pulling from it is free for the encoder and is never stored; the archive records
only how many virtual words were consumed. The decoder rebuilds the same bottom from the seed,
but *sealed*: pulling from it raises StreamExhausted, since a correct decode never needs to.
When decoding ends, the words above the bottom must be exactly the virtual words the encoder
consumed and the head must be back at its initial value (check_initial).

Lanes. A coder may start on one lane and `grow` more as it needs them; each new lane's low
word is pulled off the stack, so lanes cost almost nothing. The decoder `shrink`s in mirror.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CorruptStream, InvalidParameters, StreamExhausted
from .lookup import splitmix64

WORD_BITS = 32
HEAD_MIN = np.uint64(1 << WORD_BITS)  # lower bound of every head lane
WORD_MASK = np.uint64((1 << WORD_BITS) - 1)
MAX_PRECISION = 31
_U32 = np.uint64(32)
_SHIFTS = [np.uint64(n) for n in range(65)]


def virtual_words(seed: int, start: int, count: int) -> np.ndarray:
    """Words start..start+count-1 of the virtual bottom of `seed` (splitmix64, random access)."""
    return (splitmix64(seed, np.arange(start, start + count, dtype=np.uint64)) >> _U32).astype(np.uint32)


@dataclass(frozen=True)
class _Bottom:
    """The stack below all real words: virtual words from `offset` on, sealed or not."""

    seed: int
    offset: int
    sealed: bool

    def pull(self, count: int) -> tuple[np.ndarray, "_Bottom"]:
        if self.sealed:
            raise StreamExhausted("the stream ended before decoding did (truncated or corrupt input)")
        # The virtual stack's top word is index `offset`; return them in stack order (deepest first).
        words = virtual_words(self.seed, self.offset, count)[::-1]
        return words, _Bottom(self.seed, self.offset + count, self.sealed)


@dataclass(frozen=True)
class _Node:
    """One chunk of real words on top of `rest` (another _Node or the _Bottom)."""

    words: np.ndarray
    rest: "_Node | _Bottom"
    depth: int  # real words in this node and below


def _depth(tail) -> int:
    return tail.depth if isinstance(tail, _Node) else 0


def _pull(tail, count: int):
    """Take the top `count` words (returned in stack order) and the tail that remains."""
    taken = []
    while count:
        if isinstance(tail, _Bottom):
            words, tail = tail.pull(count)
            taken.append(words)
            break
        n = len(tail.words)
        if n > count:
            taken.append(tail.words[n - count:])
            tail = _Node(tail.words[: n - count], tail.rest, tail.depth - count)
            break
        taken.append(tail.words)
        count -= n
        tail = tail.rest
    taken.reverse()
    return (taken[0] if len(taken) == 1 else np.concatenate(taken)), tail


def _lanes(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _initial_head(shape, seed: int) -> np.ndarray:
    words = virtual_words(int(seed), 0, _lanes(shape)).astype(np.uint64)
    return (HEAD_MIN | words).reshape(shape)


class Message:
    """An immutable rANS stack. Build one with Message.empty (encoding) or from_bytes (decoding)."""

    __slots__ = ("head", "tail")

    def __init__(self, head: np.ndarray, tail):
        self.head = head
        self.tail = tail

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def empty(cls, shape, seed: int = 0) -> "Message":
        """A fresh message for encoding, over an unsealed virtual bottom.

        Each lane starts at 2^32 plus one virtual word: that keeps the state at about 32 bits
        (the floor every lane has anyway) but gives a first pop random bits to read instead of
        zeros, which would always pick the lowest-cdf symbol (the most extreme latent bucket).
        """
        return cls(_initial_head(shape, seed), _Bottom(int(seed), _lanes(shape), False))

    @property
    def shape(self):
        return self.head.shape

    @property
    def tail_words(self) -> int:
        """Real words above the bottom."""
        return _depth(self.tail)

    @property
    def virtual_words_used(self) -> int:
        tail = self.tail
        while isinstance(tail, _Node):
            tail = tail.rest
        return tail.offset

    # -- coding ------------------------------------------------------------------------------
    def push(self, start, freq, precision: int) -> "Message":
        """Code one symbol per lane, given its cumulative start and frequency out of 2^precision."""
        head = self.head
        start = np.asarray(start, dtype=np.uint64)
        freq = np.asarray(freq, dtype=np.uint64)
        # A lane overflows if head >= freq * 2^(64-precision); shift instead of multiply so that
        # freq == 2^precision (a certain symbol) cannot overflow.
        overflow = np.right_shift(head, _SHIFTS[64 - precision]) >= freq
        tail = self.tail
        if overflow.any():
            lanes = np.flatnonzero(overflow)
            words = head.ravel()[lanes].astype(np.uint32)  # the cast keeps the low 32 bits
            tail = _Node(words, tail, _depth(tail) + len(words))
            head = head.copy(order="C")  # so that ravel() is a view and the shift lands in it
            head.ravel()[lanes] >>= _U32
        quotient, remainder = np.divmod(head, freq)
        quotient <<= _SHIFTS[precision]
        quotient += remainder
        quotient += start
        return Message(quotient, tail)

    def peek(self, precision: int) -> np.ndarray:
        """First half of a pop: the cumulative frequency each lane points at."""
        return self.head & np.uint64((1 << precision) - 1)

    def pop(self, cumulative, start, freq, precision: int) -> "Message":
        """Second half of a pop: remove the symbols found by searching `cumulative`."""
        start = np.asarray(start, dtype=np.uint64)
        freq = np.asarray(freq, dtype=np.uint64)
        head = freq * (self.head >> np.uint64(precision)) + cumulative - start
        underflow = head < HEAD_MIN
        tail = self.tail
        if underflow.any():
            words, tail = _pull(tail, int(underflow.sum()))
            head = head.copy()
            head[underflow] = (head[underflow] << _U32) | words.astype(np.uint64)
        return Message(head, tail)

    # -- lanes that join and leave -------------------------------------------------------------
    def grow(self, count: int) -> "Message":
        """Add `count` lanes (1-D heads only), each 2^32 plus one word pulled off the stack.

        A lane's state never drops below 2^32, so a lane made from scratch stores about 32 bits
        that carry no data. Taking those bits from the stack instead makes them real data (bits
        back for the lane itself): an extra lane costs only the few bits of packing its head.
        """
        if self.head.ndim != 1:
            raise InvalidParameters("only a 1-D head can grow")
        words, tail = _pull(self.tail, count)
        new_lanes = HEAD_MIN | words.astype(np.uint64)
        return Message(np.concatenate([self.head, new_lanes]), tail)

    def shrink(self, count: int) -> "Message":
        """The mirror of grow: drop the last `count` lanes, returning their words to the stack.

        Raises CorruptStream if a dropped lane is not in the state grow made it in.
        """
        if self.head.ndim != 1 or not 0 <= count <= len(self.head):
            raise InvalidParameters(f"cannot drop {count} lanes of a head of shape {self.head.shape}")
        keep, dropped = self.head[: len(self.head) - count], self.head[len(self.head) - count :]
        if np.any((dropped >> _U32) != 1):
            raise CorruptStream("a lane did not end in the state it started in (corrupt input)")
        words = (dropped & WORD_MASK).astype(np.uint32)
        return Message(keep.copy(), _Node(words, self.tail, _depth(self.tail) + count) if count else self.tail)

    # -- end of decoding -----------------------------------------------------------------------
    def check_initial(self) -> None:
        """Raise CorruptStream unless this is the fresh message the encoder started from."""
        bottom = self.tail
        while isinstance(bottom, _Node):
            bottom = bottom.rest
        if not np.array_equal(self.head, _initial_head(self.shape, bottom.seed)):
            raise CorruptStream("decoding did not end at the initial state (corrupt input)")
        first = _lanes(self.shape)  # virtual words 0..lanes-1 seeded the head
        words = self._real_words()
        if len(words) != bottom.offset - first:
            raise CorruptStream("decoding left words on the stack (corrupt input)")
        expected = virtual_words(bottom.seed, first, bottom.offset - first)[::-1]
        if not np.array_equal(words, expected):
            raise CorruptStream("decoding did not return the initial bits (corrupt input)")

    def _real_words(self) -> np.ndarray:
        chunks = []
        tail = self.tail
        while isinstance(tail, _Node):
            chunks.append(tail.words)
            tail = tail.rest
        chunks.reverse()
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint32)

    # -- serialisation -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Flatten: virtual words used, real word count, packed head, then the real words."""
        from .packing import pack_heads, write_uvarint

        words = self._real_words()
        return b"".join(
            [
                write_uvarint(self.virtual_words_used),
                write_uvarint(len(words)),
                pack_heads(self.head.ravel()),
                words.astype("<u4").tobytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, shape, seed: int = 0) -> "Message":
        """Rebuild a message for decoding; its bottom is sealed. Raises CorruptStream."""
        from .packing import read_uvarint, unpack_heads

        view = memoryview(data)
        virtual_used, pos = read_uvarint(view, 0)
        if virtual_used < 1:  # every message starts on at least one virtual word (its first head)
            raise CorruptStream("message header is inconsistent with its head")
        n_words, pos = read_uvarint(view, pos)
        n_lanes = int(np.prod(shape, dtype=np.int64))
        heads, pos = unpack_heads(view, pos, n_lanes)
        if len(view) - pos != 4 * n_words:
            raise CorruptStream(
                f"message holds {len(view) - pos} bytes of words, its header says {4 * n_words}"
            )
        words = np.frombuffer(view[pos:], dtype="<u4").astype(np.uint32)
        tail = _Bottom(int(seed), virtual_used, True)
        if n_words:
            tail = _Node(words, tail, n_words)
        return cls(heads.reshape(shape), tail)
