"""Compressing entries into an archive and back: model choice, settings, the two streams.

The images of every model entry go, in entry order, into one model stream record
(models.api): it names the model by sha256 and carries the coding settings and the numerics
version, so the archive's own header only says which entry owns which images.
"""
from __future__ import annotations

import lzma
import zlib
from dataclasses import dataclass, field

import numpy as np

from bbzip.bbans import BBANSError
from bbzip.models import api, scheduler
from bbzip.models.threads import available_cores
from bbzip.models.coder_choice import Coder, default_for_most
from bbzip.models.files import ByteSource
from bbzip.models.tile_intervals import TileIntervals

from . import classic, fallback, sources
from .archive import Archive, ArchiveError
from .array_entries import array_mode
from .entries import KINDS, file_attributes, input_fingerprint, restore
from .entry_log import EntryLog, item_counts, stacked_items
from .entry_kind import Entry
from .file_entries import ImageFile, alpha_bytes, model_image, pixels_as_read, stack_as_read
from .feed import ImageFeed
from .fingerprint import ArchiveDigest
from .errors import BBZipError
from .spool import Spool
from .table import FALLBACK_CODES, carries_crc32


def fits(model):
    """fits(stack): whether one entry's uint8 stack (N, H, W[, C]) can go to `model`
    (models/pixels.py: Pixels.accepts)."""
    return model.config.codes.accepts


def choose_default(entries, spool: Spool) -> tuple[Coder | None, EntryLog]:
    """The shipped default model for the model entries (models.coder_choice.default_for_most:
    the one that codes the most of their pixels, 28x28 digits counted for the MNIST models), and
    the entries as that model leaves them (an EntryLog, or `entries` where it leaves them all).
    An archive codes its images with one model: every image it does not code (photos beside
    digits, a grey array beside colour ones) is kept by a classic codec, an image file as a
    classic entry, an array's images as its classic blobs."""
    if not item_counts(entries).any():
        return None, entries
    coder, accepted = default_for_most(entry.items for entry in entries if len(entry.items))
    if all(accepted):
        return coder, entries
    coded = iter(accepted)
    chosen = EntryLog(spool)
    for entry in entries:
        if not len(entry.items) or next(coded):
            chosen.append(entry)
        elif entry.kind is ImageFile:
            chosen.append(_kept_classic(entry, spool))
        else:
            chosen.append(_all_classic(entry, spool))
    return coder, chosen


def _kept_classic(entry: Entry, spool: Spool, found: tuple[str, bytes] | None = None) -> Entry:
    """An image entry read for a model (its pixels as read), kept by a classic encoding instead:
    `found` (codec, blob), or its smallest faithful one."""
    image = model_image(pixels_as_read(entry), entry.meta["mode"])
    found = found or classic.smallest_faithful(image)
    meta = {key: value for key, value in entry.meta.items() if key not in ("store", "scale")}
    kept = ImageFile.classic(entry.name, meta, image, *found)  # PNG keeps every L, 1 or RGB image
    return kept.changed(blobs=[spool.add(blob) for blob in kept.blobs])


def _all_classic(entry: Entry, spool: Spool) -> Entry:
    """An array whose images the archive's model does not code, each image kept by its smallest
    faithful classic encoding (read one at a time)."""
    mode = array_mode(entry.items)
    kept = []
    for index in range(len(entry.items)):
        codec, blob = classic.smallest_faithful(model_image(np.asarray(entry.items[index : index + 1])[0], mode))
        kept.append((index, codec, spool.add(blob)))
    return _take_out(entry, entry.changed(fingerprint=input_fingerprint(entry)), kept, spool)


def _in_model_domain(entry: Entry, coder: Coder) -> Entry:
    """The entry with its images in the model's domain (_model_items), its scale (1 or 255: each
    entry keeps its own) in its metadata. Its fingerprint stays that of what was read."""
    fingerprint = input_fingerprint(entry)
    codes = coder.model.config.codes
    if not codes.two_valued:
        return entry.changed(fingerprint=fingerprint)
    scale = codes.scale_of(entry.items)
    if scale is None:  # the model took the entry (fits, choose_default): a bug if not
        raise BBZipError(f"{entry.name}: internal error: images {coder.name} does not code")
    return entry.changed(items=_scaled_down(entry.items, scale), meta={**entry.meta, "scale": scale},
                         fingerprint=fingerprint)


def _model_items(entry: Entry, coder: Coder):
    """An entry's images as the model's Pixels take them, a run at a time as they are read:
    two-valued images as 0/1 symbols, any other as they are."""
    codes = coder.model.config.codes
    return _scaled_down(entry.items, codes.scale_of(entry.items)) if codes.two_valued else entry.items


def _scaled_down(items, scale: int | None):
    """Two-valued images of `scale` (0/scale) as 0/1 (what binary_scale found; None: not
    two-valued, left as they are)."""
    return sources.ScaledDown(items, scale) if scale not in (1, None) else items


def prepare(entries, coder: Coder, settings, spool: Spool, use_fallback: bool = True, cores: int = 1,
            on_images=None) -> EntryLog:
    """The entries as they go into the archive (new ones, in an EntryLog; those given are not
    changed): every entry's model images in the model's domain and, with `use_fallback`, those
    the classic codecs keep smaller taken out (cli/fallback.py): a single image becomes a
    classic entry, an array or .npz keeps them as classic blobs (in `spool`) beside its model
    images. The model judges its own symbols; a classic codec keeps the pixels that were read
    (a two-valued entry's 0/255 images as 0/255: only model images are scaled back)."""
    if coder.model.config.codes.any_size:
        return _prepare_tiled(entries, coder, settings, spool, use_fallback, cores, on_images)
    return _prepare_fixed_size(entries, coder, settings, spool, use_fallback, cores, on_images)


def _prepare_fixed_size(entries, coder: Coder, settings, spool: Spool, use_fallback: bool, cores: int,
                        on_images) -> EntryLog:
    """For a model of fixed size: each entry's images in the model's domain, with those the
    fallback keeps classic taken out. The fallback's choices come in image order as its chunks
    are done, and each entry is made as they pass its images: nothing is held for all of them."""
    counts = item_counts(entries)
    starts = np.concatenate([[0], np.cumsum(counts)])  # of each entry's images among all of them
    chosen = _Ahead(())
    if use_fallback and counts.any():
        chosen = _Ahead(fallback.route(coder.model, stacked_items(entries),
                                       stacked_items(entries, lambda entry: _model_items(entry, coder)), settings,
                                       cores, on_images))
    prepared = EntryLog(spool)
    for place, entry in enumerate(entries):
        if not counts[place]:
            prepared.append(entry)
            continue
        model = _in_model_domain(entry, coder)
        kept = []  # (index in the entry, codec, blob) of each image the fallback keeps classic
        while chosen.next_below(starts[place + 1]):
            index, codec, blob = next(chosen)
            if entry.kind is ImageFile:  # kept in its own mode: the fallback encoded its pixels as L or RGB,
                blob = blob if entry.meta["mode"] in ("L", "RGB") else None  # a bitmap's is made again
            else:
                blob = spool.add(blob)
            kept.append((index - int(starts[place]), codec, blob))
        prepared.append(_take_out(entry, model, kept, spool) if kept else model)
    return prepared


class _Ahead:
    """An iterator of (index, ...) in index order, which says whether its next one is below an
    index before it is taken."""

    def __init__(self, items):
        self._items, self._next = iter(items), None

    def next_below(self, end: int) -> bool:
        if self._next is None:
            self._next = next(self._items, None)
        return self._next is not None and self._next[0] < end

    def __next__(self):
        found, self._next = self._next, None
        return found


def _prepare_tiled(entries, coder: Coder, settings, spool: Spool, use_fallback: bool, cores: int,
                   on_images) -> EntryLog:
    """For a model of any size: each entry's images (an image file's one, an array's every one)
    go to the model as their tiles or, with `use_fallback`, to a classic codec where it keeps
    the image smaller than the model codes its tiles (decided per image): an image file then
    becomes a classic entry, an array keeps the image as a classic blob beside its model images.
    (The entries with images are held here: photos and arrays, not many small files.)"""
    places = np.flatnonzero(item_counts(entries))
    holders = [entries[int(place)] for place in places]
    prepared = _prepare_tiled_holders(holders, coder, settings, spool, use_fallback, cores, on_images)
    result, by_place = EntryLog(spool), dict(zip(places.tolist(), prepared))
    for place, entry in enumerate(entries):
        result.append(by_place.get(place, entry))
    return result


def _prepare_tiled_holders(holders: list[Entry], coder: Coder, settings, spool: Spool, use_fallback: bool, cores: int,
                           on_images) -> list[Entry]:
    codes = coder.model.config.codes
    chosen = {}  # holder -> [(index in it, codec, blob)]
    known = _KnownIntervals()
    if use_fallback:
        stacks = [(stack_as_read(entry), entry.meta["mode"], alpha_bytes(entry)) if entry.kind is ImageFile
                  else (entry.items, array_mode(entry.items), 0) for entry in holders]
        for holder, first, found, intervals in fallback.route_stacks(coder.model, stacks, settings, cores, on_images):
            chosen.setdefault(holder, []).extend((first + index, *found[index]) for index in sorted(found))
            known.add(holder, intervals)
    prepared = []
    for holder, entry in enumerate(holders):
        entry = entry.changed(fingerprint=input_fingerprint(entry))  # of the images as read, before tiles
        if chosen.get(holder) and entry.kind is ImageFile:
            prepared.append(_kept_classic(entry, spool, chosen[holder][0][1:]))
            continue
        classic_images = [index for index, _, _ in chosen.get(holder, ())]
        if classic_images:
            entry = _take_out(entry, entry, [(index, codec, spool.add(blob)) for index, codec, blob in chosen[holder]], spool)
        tiles = sources.TilesOf(entry.items, codes)
        intervals = known.of_model_tiles(holder, classic_images, codes.units_per_image(*entry.items.shape[1:3]))
        prepared.append(entry.changed(items=tiles if intervals is None else sources.WithIntervals(tiles, intervals)))
    return prepared


class _KnownIntervals:
    """The intervals the fallback computed for each entry's tiles (cli/fallback.py), kept for the
    encoder while they take at most KEEP_INTERVALS bytes in all: an entry has them only if every
    chunk of its images came with them."""

    KEEP_INTERVALS = 1 << 28

    def __init__(self):
        self._parts, self._bytes = {}, 0

    def add(self, holder: int, intervals) -> None:
        parts = self._parts.setdefault(holder, [])
        if parts is None:
            return
        size = 0 if intervals is None else intervals.nbytes
        if intervals is None or self._bytes + size > self.KEEP_INTERVALS:  # the entry's tiles are computed again to code
            self._bytes -= sum(part.nbytes for part in parts)
            self._parts[holder] = None
            return
        parts.append(intervals)
        self._bytes += size

    def of_model_tiles(self, holder: int, classic_images: list[int], per_image: int) -> TileIntervals | None:
        """The intervals of an entry's model tiles (those of its classic images left out), or None."""
        parts = self._parts.get(holder)
        if not parts:
            return None
        intervals = TileIntervals.joined(parts)
        if classic_images:
            keep = np.ones(len(intervals.start) // per_image, dtype=bool)
            keep[classic_images] = False
            intervals = intervals.kept(np.repeat(keep, per_image))
        return intervals


def _take_out(read: Entry, model: Entry, chosen: list[tuple[int, str, ByteSource | bytes | None]], spool: Spool) -> Entry:
    """chosen: (index, codec, blob) of each of the entry's images to keep classic, in order (an
    image file's blob: bytes of its own mode, or None to encode it here); `read` is the entry as
    read (its pixels), `model` the same entry in the model's domain."""
    if read.kind is ImageFile:  # its one image: the fallback's encoding, or the smallest faithful one of its own mode
        _, codec, blob = chosen[0]
        return _kept_classic(read, spool, None if blob is None else (codec, blob))
    indices = [index for index, _, _ in chosen]
    crc32 = 0  # of the classic images' pixels, in order, read one at a time (the stack may be read from its file)
    for index in indices:
        crc32 = zlib.crc32(np.ascontiguousarray(read.items[index : index + 1]), crc32)
    fallback_table = {"runs": _runs(indices), "codecs": "".join(FALLBACK_CODES[codec] for _, codec, _ in chosen), "crc32": crc32}
    return model.changed(items=sources.WithoutImages(model.items, indices), meta={**model.meta, "fallback": fallback_table},
                         blobs=model.blobs + tuple(blob for _, _, blob in chosen))


def _runs(indices: list[int]) -> list[int]:
    """Sorted indices as [gap, length, gap, length, ...]: each run of consecutive indices, after
    the gap since the previous run's end (a few numbers where images go to classic in runs)."""
    runs, end = [], 0
    for index in indices:
        if runs and index == end:
            runs[-1] += 1
        else:
            runs += [index - end, 1]
        end = index + 1
    return runs


def fallback_positions(runs: list[int]) -> list[int]:
    positions, end = [], 0
    for gap, length in zip(runs[::2], runs[1::2]):
        positions += range(end + gap, end + gap + length)
        end += gap + length
    return positions


def build(entries, coder: Coder | None, settings, payload, on_batch=None, cores: int | None = None,
          block_images: int | None = None, checked: list | None = None) -> dict:
    """Write the payload of an archive holding `entries` (after `prepare`) to the binary file
    `payload`, the model stream block by block; returns the header. `checked`: a list, or None:
    each block of the model stream is then decoded where it is coded and must give back its
    images, and the sha256 of each block's message goes into the list (api.write_record's)."""
    length = 0
    has_images = bool(item_counts(entries).any())
    if has_images and coder is None:
        raise BBZipError("images for the model but no model")
    header = {}
    if has_images:
        images = stacked_items(entries)
        extents = record_extents(((entry.kind, entry.meta, len(entry.items)) for entry in entries), coder.model.config.codes)
        try:
            length = api.write_record(payload.write, coder, images, settings, block_images, cores=cores,
                                      on_batch=on_batch, extents=extents, known=images.intervals, checked=checked)
        except BBANSError as error:  # the check where a block was coded
            raise BBZipError(f"internal error: the model stream would not decode ({error}); nothing was written") from None
        header["model_stream"] = {"offset": 0, "length": length, "items": len(images)}
    header["entries"] = EntryHeaders(entries, length)
    digest = ArchiveDigest()  # (one pass over the entries with the blobs: each pass reads a spilled log back)
    for entry in entries:
        for blob in entry.blobs:  # spooled (compress), or bytes
            length += payload.write(blob if isinstance(blob, bytes) else blob.read())
        digest.add(entry.name, input_fingerprint(entry).sha256)
    header["payload_length"] = length
    header["digest"] = digest.hexdigest()
    return header


class EntryHeaders:
    """The table's fields of each entry (dicts, cli/table.py encodes them), made as they are
    iterated, not held: a million entries' dicts would be most of compress's memory. Each
    entry's blobs lie one after another in the payload from `first_blob`."""

    def __init__(self, entries, first_blob: int):
        self._entries, self._first_blob = entries, first_blob

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        offset = self._first_blob
        for entry in self._entries:
            spans = []
            for blob in entry.blobs:
                spans.append({"offset": offset, "length": len(blob)})
                offset += len(blob)
            fields = entry.header(spans)
            if carries_crc32(fields):
                fields["crc32"] = entry.fingerprint.crc32
            yield fields


def model_images(kind, meta, items: int) -> tuple[int, int]:
    """(images, values) an entry's model items code: the images not kept classic (a tiled
    model's items are their tiles) and the values of those images."""
    if not items:
        return 0, 0
    images = kind.image_count(meta) - _classic_count(meta)
    return images, images * int(np.prod(kind.image_shape(meta), dtype=np.int64))


def stream_images(archive: Archive) -> tuple[int, int]:
    """(images, values) of the model stream of an archive, from its table: the images its entries
    have in the stream (a tiled model's tiles counted as the images they make) and their values."""
    images = values = 0
    for _, entry in archive.header["entries"].with_model_items(blobs=False):
        entry_images, entry_values = model_images(KINDS[entry["kind"]], entry, entry["items"])
        images, values = images + entry_images, values + entry_values
    return images, values


def record_extents(entries, codes) -> np.ndarray | None:
    """For a model of any size: the extents (models/wavefront.py) of every tile of the model
    stream, from its entries' (kind, header fields, model item count) in order, each entry's
    images of one shape; None for a model of fixed size. BBZipError where an entry's tiles do
    not make whole images of its shape (a damaged archive)."""
    if not codes.any_size:
        return None
    parts = []
    for kind, meta, items in entries:
        if items:
            height, width = kind.image_shape(meta)[:2]
            images = model_images(kind, meta, items)[0]
            if images < 1 or codes.units_per_image(height, width) * images != items:
                raise BBZipError("damaged archive (an entry's tiles do not make its images)")
            parts.append(codes.unit_extents(height, width, images))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def model_description(archive: Archive) -> api.StreamInfo | None:
    """The model stream record's header (model, settings, numerics), checked; None if no images."""
    if "model_stream" not in archive.header:
        return None
    try:
        info = api.read_record(archive.model_stream)
    except EOFError as error:
        raise ArchiveError(f"archive changed while it was read ({error})") from None
    except api.StreamError as error:
        raise BBZipError(f"damaged archive ({error})") from None
    if info.images != archive.header["model_stream"]["items"]:
        raise BBZipError("damaged archive (model stream image count mismatch)")
    return info


class OutputError(BBZipError):
    """A restored file could not be written (a full disk): the output's failure, not damage."""


class _Output:
    """The file an entry is written into, telling its write errors apart from the archive's
    damage; everything else (seek, tell, for zipfile) is the file's own."""

    def __init__(self, file):
        self._file = file

    def write(self, data) -> int:
        try:
            return self._file.write(data)
        except OSError as error:
            raise OutputError(f"{getattr(self._file, 'name', 'output')}: cannot write ({error.strerror or error})") from None

    def __getattr__(self, name):
        return getattr(self._file, name)


class EntryReader:
    """One entry of an archive being read. `restore(sink)` decodes it, checks it and writes its
    file's bytes into `sink` (a seekable binary file; None: checked only), once, before the next
    entry is taken; it returns why the entry is lost, or None. Then `sha256` is that of the pixels
    or bytes it gave back (entries.input_fingerprint)."""

    def __init__(self, archive: Archive, index: int, meta, model_runs):
        self.index, self.name, self.meta = index, archive.names[index], meta
        self._archive, self._model_runs = archive, model_runs  # its model images, as decoded (not yet started)
        self.attributes, self.sha256, self.done = None, b"", False

    @property
    def is_link(self) -> bool:
        return self.meta.get("store") == "link"

    @property
    def link_target(self) -> str:
        return _link_target(self.meta)

    def restore(self, sink=None) -> str | None:
        if self.done:
            raise RuntimeError(f"{self.name}: restored twice")
        self.done = True
        meta = self.meta
        # Its own blobs are read now, its classic images' as they are decoded; ArchiveError
        # (fatal, not this entry's damage) if the archive file changed.
        own = meta["blobs"][: len(meta["blobs"]) - _classic_count(meta)]
        blobs = [self._archive.blob(b) for b in own]
        try:
            if self.is_link:
                _link_target(meta)  # checked: a BBZipError if it is not a safe target
            else:
                self.attributes = file_attributes(meta)
            feed = _feed(meta, self._model_runs, self._archive.blob)
            fingerprint = restore(meta, feed, blobs, None if sink is None else _Output(sink))
            feed.finish()
        except OutputError:
            raise
        except BBZipError as error:
            return str(error)
        except (OSError, ValueError, KeyError, EOFError, lzma.LZMAError) as error:
            return f"damaged entry ({error})"
        if carries_crc32(meta) and fingerprint.crc32 != meta["crc32"]:
            return "decoded pixels do not match the archive's checksum (damaged archive)"
        self.sha256 = fingerprint.sha256
        return None


@dataclass
class Extraction:
    intact: int = 0  # entries asked for that decoded intact (their names are not kept: a million of them add up)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (name, why) of those that did not

    def record(self, name: str, why: str | None) -> None:
        if why is None:
            self.intact += 1
        else:
            self.lost.append((name, why))


def select(names: list[str], wanted) -> range | list[int]:
    """Indices of the entries named in `wanted` (a name, or a folder: everything under it); all
    entries if `wanted` is empty. A name that matches nothing is an error."""
    if not wanted:
        return range(len(names))
    chosen = set()
    for pattern in wanted:
        pattern = pattern.rstrip("/")
        matches = [i for i, name in enumerate(names) if name == pattern or name.startswith(pattern + "/")]
        if not matches:
            raise BBZipError(f"{pattern}: not in the archive")
        chosen.update(matches)
    return sorted(chosen)


def extract_each(archive: Archive, model_override: str | Coder | None = None, on_batch=None, cores: int | None = None,
                 wanted=(), expected_images=None, checked=None):
    """Yields an EntryReader for each entry asked for (default: all), in archive order; the
    consumer restores each (or it is checked when the next is taken). Only the blocks of the
    model stream that hold their images are decoded, a wave at a time as the entries need them,
    and each entry's images are handed on a block at a time (cli/feed.py): a large array is
    never held whole. A damaged block or blob loses only its own entries. When every entry was
    asked for and all are intact, what they gave back is checked against the archive's digest
    (format 6): BBZipError if it does not match. Raises ArchiveError if the archive file changes
    while it is read. `expected_images`: the images of the model stream as it was written
    (compress's check: api.decode_blocks), and `checked` with them the digests of its blocks'
    messages as they were checked where they were coded (build's), or None."""
    entries = archive.header["entries"]
    chosen = select(archive.names, wanted)
    starts = np.concatenate([[0], np.cumsum(entries.items_column(), dtype=np.int64)])
    model_runs, codes = _decoded_images(archive, model_override, chosen, starts, on_batch, cores, expected_images, checked)
    given_back = ArchiveDigest()  # of each entry restored intact, in table order
    for index in chosen:
        entry = entries[index]  # built once here: a table builds an entry each time it is asked
        runs = model_runs(int(starts[index]), int(starts[index + 1]), entry.get("scale", 1))
        if codes is not None and codes.any_size and entry["items"]:
            runs = _joined_tiles(runs, codes, KINDS[entry["kind"]].image_shape(entry))
        elif codes is not None and not codes.any_size:
            runs = _of_the_model_shape(runs, codes, entry)
        reader = EntryReader(archive, index, entry, runs)
        yield reader
        if not reader.done:
            reader.restore(None)
        if reader.sha256:
            given_back.add(reader.name, reader.sha256)
    if "digest" in archive.header and given_back.count == len(entries):  # everything decoded, nothing lost
        if given_back.hexdigest() != archive.header["digest"]:
            raise BBZipError("damaged archive (its entries, each intact, do not add up to what was compressed: "
                             "parts moved, repeated or re-routed)")


def _joined_tiles(runs, codes, shape: tuple[int, ...]):
    """An entry's tiles (its runs, as decoded) joined into its images of `shape` (height, width
    [, channels]), a run of whole images at a time."""
    if tuple(shape[2:]) != tuple(codes.shape[2:]):
        raise BBZipError("damaged entry (its images do not have the model's channels)")
    height, width = shape[:2]
    per_image = codes.units_per_image(height, width)
    held, count = [], 0
    for run in runs:
        held.append(run)
        count += len(run)
        if count >= per_image:
            tiles = np.concatenate(held) if len(held) > 1 else held[0]
            whole = count - count % per_image
            yield codes.from_units(tiles[:whole], height, width)
            held, count = [tiles[whole:]], count - whole
    if count:
        raise BBZipError("damaged entry (its tile count does not fit its size)")


def _of_the_model_shape(runs, codes, meta: dict):
    """An entry's model images, refused if the entry says its images have another shape than the
    model's (they would be cut into images of the wrong shape: a damaged table)."""
    for run in runs:
        if tuple(KINDS[meta["kind"]].image_shape(meta)) != codes.shape:
            raise BBZipError("damaged entry (its images do not have the model's shape)")
        yield run


def _feed(meta: dict, runs, read_blob) -> ImageFeed:
    """An entry's images: its model images (`runs`, as decoded) with its classic fallback
    images (the last blobs, read with `read_blob` when they are decoded) at their places."""
    classic_images, crc32 = [], None
    if "fallback" in meta:
        fallback = meta["fallback"]
        codes = fallback["codecs"]
        positions = fallback_positions(fallback["runs"])
        if len(positions) != len(codes) or len(codes) > len(meta["blobs"]):
            raise BBZipError("damaged entry (fallback table does not match its blobs)")
        classic_images = list(zip(positions, codes, meta["blobs"][len(meta["blobs"]) - len(codes):]))
        crc32 = fallback["crc32"]
    return ImageFeed(runs, KINDS[meta["kind"]].image_shape(meta), classic_images, crc32, read_blob)


def _classic_count(meta: dict) -> int:
    return len(meta["fallback"]["codecs"]) if "fallback" in meta else 0


def _decoded_images(archive, model_override, chosen, starts, on_batch, cores, expected_images=None, checked=None):
    """model_runs(lo, hi, scale): model images lo..hi of the archive as the pixels of an entry
    of that scale (the model's Pixels map its symbols back), a block's share at a time, from
    the blocks that hold those of the chosen entries; raises BBZipError for images in a damaged
    block. Ranges are taken in order: blocks are decoded (a wave at a time) when a range first
    needs them and let go once a range has passed their end."""
    info = model_description(archive)
    if info is None:
        return (lambda lo, hi, scale: iter(())), None
    size = info.block_images
    needed = sorted({block for i in chosen for block in _blocks_holding(int(starts[i]), int(starts[i + 1]), size)})
    if len(needed) > 1:  # blocks for the other cores: their workers start while the model loads
        scheduler.start_workers(cores or available_cores())
    try:
        coder = api.coder_for(info, model_override)
    except api.StreamError as error:
        raise BBZipError(str(error)) from None
    entries = archive.header["entries"]
    extents = record_extents(((KINDS[entry["kind"]], entry, entry["items"]) for _, entry in entries.with_model_items()),
                             coder.model.config.codes)
    # (extents that do not fit the record raise api.StreamError as the first block is taken)
    results = api.decode_blocks(info, coder, which=needed, cores=cores, on_images=on_batch, extents=extents,
                                expected_images=expected_images, checked=checked)
    stream = zip(needed, results)
    decoded = {}

    def block_result(block: int, lo: int):
        try:
            while block not in decoded:
                number, result = next(stream)
                if (number + 1) * size > lo:  # else only entries lost before this range needed it
                    decoded[number] = result
        except api.StreamError as error:  # a block's bytes could not be read
            raise ArchiveError(str(error)) from None
        return decoded[block]

    def model_runs(lo: int, hi: int, scale: int):
        for block in [b for b in decoded if (b + 1) * size <= lo]:  # left by an entry lost part way
            del decoded[block]
        for block in _blocks_holding(lo, hi, size):
            result = block_result(block, lo)
            if isinstance(result, str):
                raise BBZipError(f"model stream block {block}: {result}")
            first = block * size
            symbols = result[max(lo, first) - first : min(hi, first + len(result)) - first]
            yield coder.model.from_symbols(symbols.reshape(len(symbols), -1), scale)
            if first + len(result) <= hi:
                del decoded[block], result

    return model_runs, coder.model.config.codes


def _blocks_holding(lo: int, hi: int, block_images: int) -> range:
    """The blocks that hold model images lo..hi - 1."""
    return range(lo // block_images, (hi - 1) // block_images + 1) if hi > lo else range(0)


def _link_target(meta: dict) -> str:
    target = meta.get("target")
    if not isinstance(target, str) or not target or "\0" in target or len(target) > 4096:
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (bad link target)")
    return target
