"""`bbzip compress --compare`: what the same images would take as PNG files and as JPEG XL files,
beside what they take in the archive, per array and per folder of image files.

An image's PNG is Pillow's optimised PNG of its own mode (1-bit for a bitmap), its JPEG XL
libjxl's lossless effort-7 file, as a user would keep each image on its own. In the archive, the
model's images share one bits-back stream, which has no bytes of its own per image: each entry
is given the stream's real bytes in proportion to its images' model codelength (the estimate
the fallback uses: one pass of the network over every model image), plus the bytes it keeps
outside the stream (classic images, for instance). The archive's total is its real size, table,
header and other files included.
"""
from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass

from PIL import Image

from . import jpegxl
from .entry_kind import Entry
from .array_entries import array_mode
from .coding import record_extents
from .file_entries import ImageFile, model_image, pixels_as_read


@dataclass
class Group:
    """The images of one array, or of the image files of one folder."""

    name: str
    images: int = 0
    pixels: int = 0
    png_bytes: int = 0
    jpegxl_bytes: int = 0
    archive_bytes: float = 0.0


def group_name(entry: Entry) -> str:
    return posixpath.dirname(entry.name) + "/" if entry.kind is ImageFile else entry.name


def classic_sizes(entries: list[Entry], on_images=None) -> dict[str, Group]:
    """Each group's images as PNG and JPEG XL files (`entries` as read: `items` are the pixels
    as read, not yet the model's symbols or tiles)."""
    groups: dict[str, Group] = {}
    for entry in entries:
        if not len(entry.items):
            continue
        group = groups.setdefault(group_name(entry), Group(group_name(entry)))
        mode = entry.meta["mode"] if entry.kind is ImageFile else array_mode(entry.items)
        for start in range(0, len(entry.items), 1024):
            # read once (a large array is read from its file); an image file with its alpha plane
            run = pixels_as_read(entry)[None] if entry.kind is ImageFile else entry.items[start : start + 1024]
            for pixels in run:
                image = model_image(pixels, mode)
                group.images += 1
                group.pixels += pixels.size
                group.png_bytes += _png_size(image)
                plain = image if image.mode in ("RGB", "RGBA", "LA") else image.convert("L")  # a bitmap as 0/255 grey
                group.jpegxl_bytes += len(jpegxl.encode_lossless(plain.mode, plain.width, plain.height, plain.tobytes()))
            if on_images:
                on_images(len(run))
    return groups


def model_codelengths(entries: list[Entry], model, settings) -> list[float]:
    """Each entry's model images' codelength in bits (as `coding.prepare` returns them: `items` are the
    model's images, in its domain)."""
    codes = model.config.codes
    lengths = []
    for entry in entries:
        bits = 0.0
        # A tiled model's items are its images' tiles (of which only the images are coded).
        extents = record_extents([(entry.kind, entry.meta, len(entry.items))], codes) if codes.any_size else None
        for start in range(0, len(entry.items), 1024):
            symbols, _ = model.to_symbols(entry.items[start : start + 1024])
            part = () if extents is None else (extents[start : start + 1024],)
            bits += float(model.codelength_bits(symbols, settings, *part).sum())
        lengths.append(bits)
    return lengths


def add_archive_bytes(groups: dict[str, Group], entries: list[Entry], header: dict, codelengths: list[float]) -> None:
    """Each group's share of the archive (after `coding.build`: `header` is its table)."""
    stream_length = header.get("model_stream", {}).get("length", 0)
    total_bits = sum(codelengths) or 1.0
    for entry, record, bits in zip(entries, header["entries"], codelengths, strict=True):
        group = groups.get(group_name(entry))
        if group is not None:
            group.archive_bytes += sum(blob["length"] for blob in record["blobs"]) + stream_length * bits / total_bits


def report(groups: dict[str, Group], archive_size: int) -> list[str]:
    """The table's lines: bpd of bbzip, PNG files and JPEG XL files, per group and in all."""
    def bpd(size: float, pixels: int) -> str:
        return f"{8 * size / pixels:.4f}"

    width = max([len(name) for name in groups] + [5])
    lines = [f"{'images of':<{width}} {'images':>7} {'bbzip':>8} {'PNG':>8} {'JPEG XL':>8}  (bpd; bbzip: share of the archive)"]
    for group in groups.values():
        lines.append(f"{group.name:<{width}} {group.images:>7} {bpd(group.archive_bytes, group.pixels):>8} "
                     f"{bpd(group.png_bytes, group.pixels):>8} {bpd(group.jpegxl_bytes, group.pixels):>8}")
    pixels = sum(group.pixels for group in groups.values())
    if pixels:
        lines.append(f"{'all':<{width}} {sum(g.images for g in groups.values()):>7} {bpd(archive_size, pixels):>8} "
                     f"{bpd(sum(g.png_bytes for g in groups.values()), pixels):>8} "
                     f"{bpd(sum(g.jpegxl_bytes for g in groups.values()), pixels):>8}  (bbzip: the whole archive, other files too)")
    return lines


def _png_size(image: Image.Image) -> int:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return len(buffer.getvalue())
