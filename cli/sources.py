"""Image stacks read from their input files as they are needed, never whole.

Compress goes over an array's images several times (its fingerprint, the classic fallback's
choice, coding), each time in order, a run of images at a time. An .npy file's images are read
from the file for each run (os.preadv at their offset); an .npz member's through the zip's
decompressor, forward, starting again at the member's start for each pass. What is held is one
run of images, whatever the size of the file.

Every read checks that the file is still the one that was opened (same inode, size and
modification time): a file changed while bbzip works on it is an error, never an archive of
part old, part new images.

An image file's pixels (and an array read whole) are not held either: once read, they wait in
compress's spool (cli/spool.py) until a pass reads them again (`SpooledImages`), so a folder of
photos costs its entries' metadata in memory, not their pixels.
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from bbzip.models.tile_intervals import TileIntervals
from bbzip.models.tiling import tile_grid

from .errors import BBZipError


class FileStamp:
    """Which file a path was, and how it was, when bbzip first read it."""

    def __init__(self, path: Path, status: os.stat_result):
        self.path, self._key = path, _key(status)

    def check(self, status: os.stat_result) -> None:
        if _key(status) != self._key:
            raise BBZipError(f"{self.path}: changed while it was compressed; nothing was written")

    def check_path(self) -> None:
        try:
            self.check(self.path.stat())
        except FileNotFoundError:
            raise BBZipError(f"{self.path}: removed while it was compressed; nothing was written") from None


class UnreadableMember(BBZipError):
    """An .npz member that the zip cannot give back (damaged, or its crc32 does not match)."""


def _key(status: os.stat_result) -> tuple:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


class ImageRuns:
    """What every stack here shares: uint8 images (N, H, W[, C]), read a run (a plain slice) at
    a time, each run a new array."""

    dtype = np.dtype(np.uint8)
    __slots__ = ("shape", "image_bytes")  # (subclasses without slots of their own have a __dict__ still)

    def __init__(self, shape):
        self.shape = tuple(map(int, shape))
        self.image_bytes = math.prod(self.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def spillable(self) -> bool:
        """Whether the stack pickles as a few numbers (where its bytes are, not the bytes), with
        nothing open or cached in it: compress's entry log (cli/entry_log.py) then keeps it in
        its temporary file, not in memory."""
        return False

    def _span(self, span: slice) -> tuple[int, int]:
        lo, hi, step = span.indices(len(self))
        if step != 1:
            raise ValueError("image stacks read as needed take plain slices")
        return lo, max(lo, hi)


class NpyFileImages(ImageRuns):
    """The images of a C-order uint8 .npy file, from `offset` (after its header)."""

    def __init__(self, stamp: FileStamp, offset: int, shape):
        super().__init__(shape)
        self.stamp, self._offset = stamp, offset

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        images = np.empty((hi - lo, *self.shape[1:]), dtype=np.uint8)
        with open(self.stamp.path, "rb") as f:
            self.stamp.check(os.fstat(f.fileno()))
            _read_into(f, memoryview(images).cast("B"), self._offset + lo * self.image_bytes, self.stamp.path)
        return images


class NpzMemberImages(ImageRuns):
    """The images of a C-order uint8 .npy member of an .npz file, read forward through the zip
    (which checks the member's crc32 at its end); a slice before the last one read starts the
    member again, except the last run itself, which is kept: the classic fallback reads each
    chunk twice, as the pixels it keeps and as the model's symbols, two stacks over the same
    source (without it every chunk inflated the member from its start again)."""

    def __init__(self, stamp: FileStamp, member: str, header_length: int, shape):
        super().__init__(shape)
        self.stamp, self._member, self._header_length = stamp, member, header_length
        self._stream, self._position = None, 0  # the open member, and the image it is at
        self._last = None  # ((lo, hi), images) of the last run read

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        if self._last is not None and self._last[0] == (lo, hi):
            self.stamp.check_path()  # as every read checks the file
            return self._last[1].copy()
        images = self._read(lo, hi)
        self._last = (lo, hi), images
        return images.copy()

    def _read(self, lo: int, hi: int) -> np.ndarray:
        if self._stream is None or lo < self._position:
            self._start()
        self._fill(np.empty((lo - self._position) * self.image_bytes, dtype=np.uint8))  # skipped
        images = np.empty((hi - lo, *self.shape[1:]), dtype=np.uint8)
        self._fill(images)
        self._position = hi
        if hi == len(self):  # a pass is done: the file is not kept open between passes
            self._close()
        return images

    def _start(self) -> None:
        self._close()
        zip_file = zipfile.ZipFile(self.stamp.path)
        try:
            self.stamp.check(os.fstat(zip_file.fp.fileno()))
            self._stream = zip_file.open(self._member)
        except BaseException:
            zip_file.close()
            raise
        self._zip, self._position = zip_file, 0
        self._fill(np.empty(self._header_length, dtype=np.uint8))

    def _fill(self, array: np.ndarray) -> None:
        view, filled = memoryview(array).cast("B"), 0
        while filled < len(view):
            try:
                got = self._stream.readinto(view[filled:])
            except (zipfile.BadZipFile, EOFError, OSError) as error:
                raise UnreadableMember(f"{self.stamp.path}: member {self._member}: cannot be read ({error})") from None
            if not got:
                raise BBZipError(f"{self.stamp.path}: changed while it was compressed; nothing was written")
            filled += got

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._zip.close()
            self._stream = None


def spillable(items) -> bool:
    """ImageRuns.spillable of any entry's items: an array only if it holds no images, any other
    stack (models/blocks.py: StackedImages, an .npz file's) not."""
    return len(items) == 0 if isinstance(items, np.ndarray) else getattr(items, "spillable", False)


def _read_into(f, view: memoryview, offset: int, path: Path) -> None:
    filled = 0
    while filled < len(view):
        got = os.preadv(f.fileno(), [view[filled:]], offset + filled)
        if not got:
            raise BBZipError(f"{path}: changed while it was compressed; nothing was written")
        filled += got


class SpooledImages(ImageRuns):
    """Images (N, H, W[, C]) whose bytes (C order) are `piece` of compress's spool, read back
    for each slice. `known_binary_scale`: models.pixels.binary_scale of them, taken from the
    images before they were spooled: the model's choice and the fallback each ask it of every
    image file, which would read each back twice for it."""

    __slots__ = ("_piece", "known_binary_scale")  # one an image file of a folder, held until the archive is written

    def __init__(self, piece, shape, known_binary_scale: int | None):
        super().__init__(shape)
        self._piece = piece
        self.known_binary_scale = known_binary_scale

    def __reduce__(self):  # (its slots as they are: a third of the time of pickling them by name)
        return _unpickled_spooled, (self._piece, self.shape, self.image_bytes, self.known_binary_scale)

    @property
    def spillable(self) -> bool:
        return True

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        raw = self._piece.read(lo * self.image_bytes, (hi - lo) * self.image_bytes)
        return np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(hi - lo, *self.shape[1:])


def _unpickled_spooled(piece, shape: tuple, image_bytes: int, known_binary_scale) -> SpooledImages:
    images = object.__new__(SpooledImages)
    images.shape, images.image_bytes, images._piece, images.known_binary_scale = shape, image_bytes, piece, known_binary_scale
    return images


class MadeWhenRead(ImageRuns):
    """Images of a known shape made (by `make()`, the whole stack) only when a slice is asked
    for: an image file's pixels with its alpha plane back, from its spooled colour and blob."""

    def __init__(self, shape, make):
        super().__init__(shape)
        self._make = make

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        return self._make()[lo:hi]


class WithoutImages(ImageRuns):
    """A stack without the images at some (sorted) indices: the model's share of an array some
    of whose images are kept by classic codecs. A slice reads the source's run that holds its
    images and leaves out the others."""

    def __init__(self, source, excluded: list[int]):
        super().__init__((len(source) - len(excluded), *source.shape[1:]))
        self._source, self._excluded = source, np.asarray(excluded, dtype=np.int64)
        self._shifted = self._excluded - np.arange(len(excluded))  # kept images before each excluded one

    @property
    def spillable(self) -> bool:
        return spillable(self._source)

    def _source_index(self, kept: int) -> int:
        return kept + int(np.searchsorted(self._shifted, kept, side="right"))

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        if hi <= lo:
            return self._source[0:0]
        first, last = self._source_index(lo), self._source_index(hi - 1)
        run = self._source[first : last + 1]
        inside = self._excluded[(self._excluded >= first) & (self._excluded <= last)] - first
        return np.delete(run, inside, axis=0) if len(inside) else run


class ScaledDown(ImageRuns):
    """Two-valued images (0/scale) as 0/1, a run at a time: a binary model's symbols."""

    def __init__(self, source, scale: int):
        super().__init__(source.shape)
        self._source, self._scale = source, np.uint8(scale)

    @property
    def spillable(self) -> bool:
        return spillable(self._source)

    def __getitem__(self, span: slice) -> np.ndarray:
        return self._source[span] // self._scale


class TilesOf(ImageRuns):
    """The tiles a model of any size codes of a stack of images of one size (`codes`, models/
    pixels.py), image after image: a slice cuts only the images that hold its tiles, and of a
    slice within one image (a block of a large photo) only the rows of tiles that hold it
    (models/tiling.py: a band of rows of tiles cuts into the same tiles as the whole image)."""

    def __init__(self, source, codes):
        self._per_image = codes.units_per_image(*source.shape[1:3])
        self._columns = tile_grid(*source.shape[1:3], codes.tile)[1]
        super().__init__((len(source) * self._per_image, *codes.shape))
        self._source, self._codes = source, codes

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi = self._span(span)
        if hi <= lo:
            return np.zeros((0, *self.shape[1:]), dtype=np.uint8)
        first, last = lo // self._per_image, (hi - 1) // self._per_image
        images, offset = np.asarray(self._source[first : last + 1]), first * self._per_image
        if first == last:
            rows = range((lo - offset) // self._columns, (hi - 1 - offset) // self._columns + 1)
            tile = self._codes.tile
            images = images[:, rows.start * tile : rows.stop * tile]
            offset += rows.start * self._columns
        tiles = self._codes.to_units(images)
        return tiles[lo - offset : hi - offset]


class WithIntervals(ImageRuns):
    """Tiles with the intervals a tiled model without a latent codes them by, already computed
    (its `intervals`: `known`, models/tile_intervals.py), which the encoder and compress's
    check reuse instead of running the network again."""

    def __init__(self, tiles, known: TileIntervals):
        super().__init__(tiles.shape)
        self._tiles, self.known = tiles, known

    def __getitem__(self, span: slice) -> np.ndarray:
        return self._tiles[span]
