"""An archive entry (one input file, read once and not changed after) and what a kind of entry
declares. The kinds are cli/file_entries.py's (image files, stored bytes, links) and
cli/array_entries.py's (.npy and .npz arrays); cli/entries.py lists them."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from .fingerprint import Fingerprint

NO_IMAGES = np.zeros((0, 0, 0), dtype=np.uint8)
ATTRIBUTES = frozenset({"permissions", "mtime_ns"})  # of the file, recorded for every kind but links


class EntryKind:
    """One kind of entry: how it may be kept (`stores`), the header fields it must and may have
    beside every entry's own (name, kind, items, blobs, format, store), the fields the table keeps
    in its extras list (cli/table.py), the shape of its images and how its file is rebuilt. The
    classes are never instantiated: a kind is its class."""

    name: ClassVar[str]
    stores: ClassVar[frozenset[str]]
    required: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()
    extras: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def image_shape(meta) -> tuple[int, ...]:
        """Height and width (and channels, for colour) of the entry's model images; (0, 0) if it
        has none."""
        return 0, 0

    @staticmethod
    def image_count(meta) -> int:
        """How many images the entry holds for the model (its classic fallback images too)."""
        return 0

    @staticmethod
    def least_bytes(meta) -> int:
        """At least how many bytes the restored file takes, from its header fields (checked
        against the room on the output's file system before anything is written)."""
        return 0

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        """Rebuild the file from its header fields, its images (an ImageFeed, cli/feed.py) and its
        blobs, writing its bytes into `sink` (None: only the fingerprint is taken)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)  # (slots: compress holds one a file until the archive is written)
class Entry:
    """One input file as read: `items` are the images (N, H, W[, C]) it sends to the model (an
    array, or a stack read as needed, cli/sources.py), `blobs` the bytes it keeps outside the
    model stream. Preparing an archive makes new entries (`changed`); none is changed in place."""

    name: str
    kind: type[EntryKind]
    meta: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    items: np.ndarray = field(default_factory=lambda: NO_IMAGES)
    blobs: tuple = ()
    fingerprint: Fingerprint | None = field(default=None, repr=False)  # of what `restore` must give back
    stamp: object = field(default=None, repr=False)  # the file `items` are read from as needed (sources.FileStamp)

    def __post_init__(self):
        if not isinstance(self.meta, MappingProxyType):  # a proxy is an entry's own (`changed` passes it on)
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        object.__setattr__(self, "blobs", tuple(self.blobs))

    def __reduce__(self):
        """Pickled with its metadata as a dict (a mapping proxy does not pickle): entries read
        by a cluster's workers come back to the client (cli/reading.py), and compress's entry
        log keeps them pickled (cli/entry_log.py)."""
        return _unpickled, (self.name, self.kind, dict(self.meta), self.items, self.blobs, self.fingerprint, self.stamp)

    def changed(self, **fields) -> "Entry":
        """A new entry with these fields; this one where each is already its own."""
        if all(getattr(self, name) is value for name, value in fields.items()):
            return self
        return replace(self, **fields)

    @property
    def store(self) -> str:
        return self.meta["store"]

    def header(self, blob_spans: list[dict]) -> dict:
        """The entry's fields in the archive header, its blobs at `blob_spans`."""
        return {"name": self.name, "kind": self.kind.name, "items": len(self.items), "blobs": blob_spans, **self.meta}


_ENTRY_FIELDS = ("name", "kind", "items", "blobs", "fingerprint", "stamp")


def _unpickled(name, kind, meta: dict, items, blobs: tuple, fingerprint, stamp) -> Entry:
    """An entry as it was pickled: its fields set as they come (the dataclass's checks and copies
    were made when it was first made), its metadata dict (the unpickler's own) behind a proxy."""
    entry = object.__new__(Entry)
    for name_, value in zip(_ENTRY_FIELDS, (name, kind, items, blobs, fingerprint, stamp)):
        object.__setattr__(entry, name_, value)
    object.__setattr__(entry, "meta", MappingProxyType(meta))
    return entry
