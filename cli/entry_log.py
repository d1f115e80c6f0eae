"""Compress's entries, from when their files are read until the archive is written, in memory
of a fixed size whatever their number.

An entry of a folder's image file is about a kilobyte of Python objects (its name, its header
fields, its fingerprint, where its pixels wait in the spool), and compress goes over all of them
several times: the model's choice, the fallback, coding, the table, the check. A million files
held as objects would take a gigabyte. The log holds the first HELD_ENTRIES as objects (a small
input pays nothing for it); past that, it pickles them in chunks of CHUNK_ENTRIES into
compress's spool file (cli/spool.py) and reads a chunk back where a pass needs it, keeping the
last few read. What it keeps per entry in memory is its image count (8 bytes). The spool is this
process's own unnamed temporary file: what is unpickled is what it pickled there, never anything
an input or an archive holds.

An entry whose images are not a few numbers in the spool (an array read from its file as needed,
an .npz member's open stream, a photo model's tiles with their intervals) is not pickled: it
stays in memory (`pinned`), as the one object every pass sees. Such entries are a file each of
arrays or photos, few beside a folder's small image files.
"""
from __future__ import annotations

import array
import io
import pickle
import threading
from collections import OrderedDict

import numpy as np

from bbzip.models.blocks import StackedImages

from .entry_kind import Entry
from .sources import spillable

HELD_ENTRIES = 1 << 14  # entries held as objects before the log spills (about 16 MB of them)
CHUNK_ENTRIES = 1024  # entries pickled together, read back together
CACHED_CHUNKS = 4  # chunks read back and kept: a pass's reading position, and the fallback's ahead of it


class EntryLog:
    """Entries in order, appended once and read any number of times (iterated, or one by index:
    `log[i]`). The spilled chunks are pieces of `spool`, which must stay open while the log is
    read."""

    def __init__(self, spool):
        self._spool = spool
        self._chunks: list = []  # a list of entries (held), or a _Spilled
        self._tail: list[Entry] = []
        self._counts = array.array("q")  # each entry's image count
        self._spilling = False
        self._cache: OrderedDict[int, list[Entry]] = OrderedDict()
        self._lock = threading.Lock()  # (a block's images may be read in another thread)

    def append(self, entry: Entry) -> None:
        self._tail.append(entry)
        self._counts.append(len(entry.items))
        if len(self._tail) < CHUNK_ENTRIES:
            return
        self._chunks.append(self._tail)
        self._tail = []
        if self._spilling:
            self._chunks[-1] = self._spilled(self._chunks[-1])
        elif len(self._counts) > HELD_ENTRIES:
            self._spilling = True
            self._chunks = [self._spilled(chunk) for chunk in self._chunks]

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def item_counts(self) -> np.ndarray:
        """Each entry's image count (int64), without reading the entries."""
        return np.frombuffer(self._counts, dtype=np.int64) if len(self._counts) else np.zeros(0, dtype=np.int64)

    def __iter__(self):
        for number in range(len(self._chunks)):
            yield from self._chunk(number)
        yield from list(self._tail)

    def __getitem__(self, index: int) -> Entry:
        if not -len(self) <= index < len(self):
            raise IndexError("entry log index out of range")
        number, place = divmod(index % len(self), CHUNK_ENTRIES)
        if number == len(self._chunks):
            return self._tail[place]
        return self._chunk(number)[place]

    def _chunk(self, number: int) -> list[Entry]:
        chunk = self._chunks[number]
        if isinstance(chunk, list):
            return chunk
        with self._lock:
            if number in self._cache:
                self._cache.move_to_end(number)
                return self._cache[number]
            entries = chunk.entries()
            self._cache[number] = entries
            if len(self._cache) > CACHED_CHUNKS:
                self._cache.popitem(last=False)
            return entries

    def _spilled(self, entries: list[Entry]) -> "_Spilled":
        pinned = {place: entry for place, entry in enumerate(entries) if not spillable(entry.items)}
        kept = [entry for place, entry in enumerate(entries) if place not in pinned] if pinned else entries
        buffer = io.BytesIO()
        pickle.dump(kept, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return _Spilled(self._spool.add(buffer.getbuffer()), pinned, len(entries))


class _Spilled:
    """A chunk of entries in the spool: those pickled, with the pinned ones at their places."""

    __slots__ = ("_piece", "_pinned", "_count")

    def __init__(self, piece, pinned: dict[int, Entry], count: int):
        self._piece, self._pinned, self._count = piece, pinned, count

    def entries(self) -> list[Entry]:
        kept = iter(pickle.loads(self._piece.read()))
        return [self._pinned[place] if place in self._pinned else next(kept) for place in range(self._count)]


def item_counts(entries) -> np.ndarray:
    """Each entry's image count: an EntryLog's own, or counted (a list)."""
    if isinstance(entries, EntryLog):
        return entries.item_counts
    return np.array([len(entry.items) for entry in entries], dtype=np.int64)


class ItemsAt:
    """The items of the entries at `places` (each with images), as a sequence of stacks taken
    from the entries as asked for, through `items_of(entry)` where given. The last few made
    are kept: a large array is asked for once a slice, and what `items_of` makes of it may have
    looked at all of its images (a two-valued model's scale)."""

    KEPT = 64

    def __init__(self, entries, places: np.ndarray, items_of=None):
        self._entries, self._places, self._items_of = entries, places, items_of
        self._made: OrderedDict[int, object] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._places)

    def __getitem__(self, number: int):
        entry = self._entries[int(self._places[number])]
        if self._items_of is None:
            return entry.items
        with self._lock:
            if number not in self._made:
                self._made[number] = self._items_of(entry)
                if len(self._made) > self.KEPT:
                    self._made.popitem(last=False)
            return self._made[number]


def stacked_items(entries, items_of=None) -> StackedImages:
    """Every entry's images (its `items`, or `items_of(entry)`), in order, as one stack that reads
    each entry where a slice needs it."""
    counts = item_counts(entries)
    places = np.flatnonzero(counts)
    return StackedImages(ItemsAt(entries, places, items_of), counts[places])
