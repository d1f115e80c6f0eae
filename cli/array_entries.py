"""The kinds of entry an array file makes: an .npy image stack, and an .npz file kept member by
member (its image stacks to the model, anything else as bytes). Both are rebuilt byte for byte:
arrays in their memory order, zip members with their names and zip fields.

A stack of RGBA images (N, H, W, 4) sends its colour (N, H, W, 3) to the model; its alpha planes
are one blob of the entry (the .npz member's, in member order), xz-compressed: mostly a constant
or a few edges, which xz keeps in a few bytes an image, and fully transparent pixels keep their
colour. The fallback's classic images are of the colour too; the alpha blob is there either
way."""
from __future__ import annotations

import contextlib
import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from bbzip.models.blocks import StackedImages

from . import sources
from .entry_kind import ATTRIBUTES, NO_IMAGES, Entry, EntryKind
from .file_entries import Stored
from .fingerprint import Fingerprint
from .xz import XzPieces, unxz, xz


class Array(EntryKind):
    """An .npy file holding uint8 images for the model: a stack (N, H, W[, 3 or 4]), or one
    image (H, W[, 3 or 4]) ("single"); with 4 channels its alpha planes are its first blob."""

    name = "array"
    stores = frozenset({"model"})
    required = frozenset({"shape"})
    optional = frozenset({"fortran_order", "single", "scale", "fallback"}) | ATTRIBUTES
    extras = ("shape", "fortran_order", "single", "fallback")  # fallback: where its classic images are (cli/coding.py)

    @staticmethod
    def read(name: str, path: Path, fits_model) -> Entry:
        """A C-order stack in a regular file is read from it as it is needed (cli/sources.py);
        any other .npy (Fortran order, a pipe) is read whole; one that is not an image stack is
        stored as bytes."""
        entry = _npy_read_as_needed(name, path, fits_model) if path.is_file() else None
        return entry or _read_npy(name, path.read_bytes(), fits_model)

    @staticmethod
    def image_shape(meta) -> tuple[int, ...]:
        return model_stack_shape(meta)[1:] if "shape" in meta else (0, 0)

    @staticmethod
    def image_count(meta) -> int:
        return stack_shape(meta)[0]

    @staticmethod
    def least_bytes(meta) -> int:
        return math.prod(meta["shape"])

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        fingerprint = Fingerprint()
        _write_npy(sink, fingerprint, feed, meta, blobs[0] if has_alpha(meta) else None)
        return fingerprint


class Npz(EntryKind):
    """An .npz file, member by member: image stacks to the model (a C-order one read through the
    zip as it is needed), anything else (other arrays, files that are not arrays, members named
    like np.savez's own arguments) as bytes. A zip that cannot be read is stored whole."""

    name = "npz"
    stores = frozenset({"members"})
    required = frozenset({"compressed", "members"})
    optional = frozenset({"scale", "fallback"}) | ATTRIBUTES
    extras = ("compressed", "members", "fallback")

    @staticmethod
    def read(name: str, path: Path, fits_model) -> Entry:
        if not path.is_file():  # a pipe: read once, kept as bytes
            return Stored.read(name, path.read_bytes(), {"format": "NPZ"})
        try:
            return _npz_members(name, path, fits_model)
        except (zipfile.BadZipFile, sources.UnreadableMember, OSError, EOFError, NotImplementedError, RuntimeError, ValueError):
            return Stored.read(name, path.read_bytes(), {"format": "NPZ"})

    @staticmethod
    def image_shape(meta) -> tuple[int, ...]:
        first = next((m for m in meta.get("members", ()) if m["store"] == "model"), None)
        return model_stack_shape(first)[1:] if first else (0, 0)

    @staticmethod
    def image_count(meta) -> int:
        return sum(stack_shape(member)[0] for member in meta.get("members", ()) if member["store"] == "model")

    @staticmethod
    def least_bytes(meta) -> int:
        """Its members' contents (a compressed zip may take less: 0 then)."""
        if meta["compressed"]:
            return 0
        return sum(math.prod(member["shape"]) if member["store"] == "model" else member["size"] for member in meta["members"])

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        """The zip with the same members in the same order (arrays written again as their images
        come, other members as they were); the fingerprint covers each member's name and its
        pixels or bytes."""
        fingerprint = Fingerprint()
        compression = zipfile.ZIP_DEFLATED if meta["compressed"] else zipfile.ZIP_STORED
        stored = iter(blobs)
        with zipfile.ZipFile(sink, "w", compression=compression) if sink is not None else contextlib.nullcontext() as archive:
            for member in meta["members"]:
                _add_member(fingerprint, member["member"], b"")
                with _member_stream(archive, member) as stream:
                    if member["store"] == "model":
                        _write_npy(stream, fingerprint, feed, member, next(stored) if has_alpha(member) else None)
                    else:
                        content = unxz(next(stored), member["size"])
                        fingerprint.update(content)
                        if stream is not None:
                            stream.write(content)
        return fingerprint


COLOUR_CHANNELS = (3, 4)  # the last axis of a colour image: RGB, or RGBA
ALPHA_CHANNELS = 4


def array_mode(stack) -> str:
    """How a classic codec keeps an array's model images: grey (N, H, W) or colour (N, H, W, 3)."""
    return "RGB" if stack.ndim == 4 else "L"


def stack_shape(fields) -> tuple[int, ...]:
    """(N, H, W[, C]): the image stack of an array's header fields (an entry's or an .npz
    member's), a single image as a stack of one."""
    shape = tuple(fields["shape"])
    return (1, *shape) if fields.get("single") else shape


def has_alpha(fields) -> bool:
    """Whether an array's images (an entry's or an .npz member's header fields) are RGBA: their
    alpha planes are a blob of their own. False for fields that do not say (a damaged table's)."""
    shape = fields.get("shape") if isinstance(fields, dict) else None
    return (isinstance(shape, (list, tuple)) and len(shape) + (fields.get("single") is True) == 4
            and shape[-1] == ALPHA_CHANNELS)


def model_stack_shape(fields) -> tuple[int, ...]:
    """(N, H, W[, 3]): the stack of an array's model images, RGBA images' colour."""
    shape = stack_shape(fields)
    return (*shape[:3], 3) if has_alpha(fields) else shape


def _colour(stack):
    """The colour of RGBA images (a view), any other images as they are."""
    return stack[..., :3] if stack.ndim == 4 and stack.shape[-1] == ALPHA_CHANNELS else stack


def _split_alpha(stack: np.ndarray) -> tuple[np.ndarray, bytes | None]:
    """(model images, the alpha blob or None) of an image stack: RGBA images' colour, and their
    alpha planes xz-compressed in C order (N, H, W)."""
    colour = _colour(stack)
    if colour is stack:
        return stack, None
    return np.ascontiguousarray(colour), xz(np.ascontiguousarray(stack[..., 3]).tobytes())


def _as_images(array) -> tuple[object, bool] | None:
    """(stack (N, H, W[, C]), single) of a uint8 array bbzip reads as images, or None. A 2-d
    array is one grey image; a 3-d one is one colour image if its last axis is 3 or 4 (a stack
    of grey images three or four pixels wide is not what anyone keeps), else a stack of grey
    images; a 4-d one a stack of colour images. Either reading gives the same array back: the rule only
    decides how well it is compressed."""
    if array.dtype != np.uint8 or 0 in array.shape:
        return None
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in COLOUR_CHANNELS):
        return array[None], True
    return (array, False) if array.ndim in (3, 4) else None


def _npy_read_as_needed(name: str, path: Path, fits_model) -> Entry | None:
    """A C-order uint8 .npy image stack whose images are read from the file as they are needed
    (cli/sources.py), or None for any other .npy file (read whole: Fortran order, other arrays,
    files that are not plain arrays)."""
    with open(path, "rb") as f:
        found = _npy_layout(f, os.fstat(f.fileno()).st_size)
        status = os.fstat(f.fileno())
    if found is None:
        return None
    offset, shape = found
    stamp = sources.FileStamp(path, status)
    stack = sources.NpyFileImages(stamp, offset, shape)
    if not _is_image_stack(stack, fits_model):
        return None
    meta = {"format": "NPY", "shape": list(shape), "store": "model", "fortran_order": False}
    return Entry(name, Array, meta, items=stack, fingerprint=Fingerprint().update_stack(stack), stamp=stamp)


def _npy_header(stream) -> tuple[tuple, bool, np.dtype, int] | None:
    """(shape, fortran_order, dtype, bytes before the data) of an .npy stream's header, read
    without reading the data; None if it is not a version 1.0 or 2.0 header."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return None
        shape, fortran_order, dtype = read_header(stream)
        return shape, fortran_order, dtype, stream.tell()
    except (ValueError, OSError, EOFError, SyntaxError):
        return None


def _npy_layout(stream, size: int) -> tuple[int, tuple] | None:
    """(bytes before the images, shape) of an .npy stream holding a C-order uint8 stack of grey
    images (N, H, W) and nothing after it; None for anything else (read whole)."""
    header = _npy_header(stream)
    if header is None:
        return None
    shape, fortran_order, dtype, offset = header
    if dtype != np.uint8 or fortran_order or len(shape) != 3 or shape[-1] in COLOUR_CHANNELS or size != offset + math.prod(shape):
        return None
    return offset, tuple(shape)


def _read_npy(name, raw, fits_model) -> Entry:
    array = _npy_array(raw)
    found = _as_images(array) if array is not None else None
    if found is not None and _is_image_stack(_colour(found[0]), fits_model):
        stack, single = found
        meta = {"format": "NPY", "shape": list(array.shape), "store": "model", "fortran_order": _fortran(array)}
        images, alpha = _split_alpha(stack)
        return Entry(name, Array, {**meta, "single": True} if single else meta, items=np.ascontiguousarray(images),
                     blobs=[] if alpha is None else [alpha], fingerprint=None if alpha is None else Fingerprint(stack))
    return Stored.read(name, raw, {"format": "NPY"})


def _npy_array(raw: bytes):
    """The array of .npy bytes, or None if they are not a plain array whose bytes are all there
    (objects are never unpickled; a header that claims more or less than the bytes that follow,
    or a format version numpy writes only for unusual field names, is kept as bytes: nothing is
    allocated for what a header claims). The array is a read-only view of the bytes, not a copy:
    a large stack is held once."""
    header = _npy_header(io.BytesIO(raw))
    if header is None:
        return None
    shape, fortran_order, dtype, offset = header
    count = math.prod(shape)
    if dtype.hasobject or len(raw) - offset != count * dtype.itemsize:
        return None
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)


def _fortran(array) -> bool:
    return bool(array.flags.f_contiguous and not array.flags.c_contiguous)


def _npz_members(name, path: Path, fits_model) -> Entry:
    meta = {"format": "NPZ", "store": "members", "compressed": False, "members": []}
    blobs, stacks, fingerprint = [], [], Fingerprint()
    with open(path, "rb") as f:
        stamp = sources.FileStamp(path, os.fstat(f.fileno()))
        with zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            meta["compressed"] = any(info.compress_type != zipfile.ZIP_STORED for info in infos)
            for info in infos:
                if not plain_member(info.filename, info.external_attr):
                    raise ValueError(f"member {info.filename!r} is not a plain file with a plain name")  # kept as bytes
                # The zip fields of each member, so that the rebuilt file is byte-identical
                # where the compressor agrees (np.savez's files are).
                fields = {"member": info.filename, "date_time": list(info.date_time), "compress_type": info.compress_type,
                          "external_attr": info.external_attr, "create_system": info.create_system,
                          "zip64": info.extract_version >= zipfile.ZIP64_VERSION}
                content = _npz_member(archive, info, stamp, fits_model)
                if not isinstance(content, bytes) and stacks and _colour(_images_of(content)[0]).shape[1:] != stacks[0].shape[1:]:
                    content = archive.read(info)  # an entry's images have one shape: the first image member's
                if isinstance(content, bytes):
                    meta["members"].append({**fields, "store": "stored", "size": len(content)})
                    blobs.append(xz(content))
                else:
                    stack, single = _images_of(content)
                    fortran = isinstance(content, np.ndarray) and _fortran(content)
                    member = {**fields, "store": "model", "shape": list(content.shape), "fortran_order": fortran}
                    meta["members"].append({**member, "single": True} if single else member)
                    images, alpha = _split_alpha(stack)
                    if alpha is not None:  # its alpha blob, in member order among the stored members' blobs
                        blobs.append(alpha)
                    stacks.append(np.ascontiguousarray(images) if fortran else images)
                    content = stack if alpha is not None else stacks[-1]
                _add_member(fingerprint, info.filename, content)
    items = StackedImages(stacks) if stacks else NO_IMAGES
    return Entry(name, Npz, meta, items=items, blobs=blobs, fingerprint=fingerprint, stamp=stamp)


def plain_member(name: str, external_attr: int) -> bool:
    """Whether an .npz member is one bbzip rebuilds member by member: a relative name without
    '.' or '..' parts, backslashes or control characters, and no file type in its zip
    attributes but a regular file's (a symbolic link or folder member would be made by whoever
    unzips the rebuilt file). Any other .npz is kept as its bytes."""
    parts = name.split("/")
    return (bool(name) and "\\" not in name and not any(ord(c) < 32 or ord(c) == 127 for c in name)
            and all(part not in ("", ".", "..") for part in parts)
            and (external_attr >> 16) & ZIP_FILE_TYPE in (0, ZIP_REGULAR_FILE))


ZIP_FILE_TYPE, ZIP_REGULAR_FILE = 0o170000, 0o100000  # st_mode bits in a zip member's external attributes (high 16 bits)


def _images_of(content) -> tuple[object, bool]:
    """(stack, single) of an .npz member kept as images (a stack read as needed is a stack)."""
    return _as_images(content) if isinstance(content, np.ndarray) else (content, False)


def _npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, stamp, fits_model):
    """An .npz member as images: a C-order uint8 stack of grey images read through the zip as it
    is needed, any other image array read whole; or else its bytes."""
    if not info.filename.endswith(".npy"):
        return archive.read(info)
    with archive.open(info) as stream:
        found = _npy_layout(stream, info.file_size)
    if found is not None:
        stack = sources.NpzMemberImages(stamp, info.filename, *found)
        return stack if _is_image_stack(stack, fits_model) else archive.read(info)
    content = archive.read(info)
    array = _npy_array(content)
    found = _as_images(array) if array is not None else None
    return array if found is not None and _is_image_stack(_colour(found[0]), fits_model) else content


def _add_member(fingerprint: "Fingerprint", name: str, content) -> None:
    """What the check covers of one npz member: its name and its pixels or bytes."""
    fingerprint.update(name.encode() + b"\0")
    if isinstance(content, (bytes, np.ndarray)):
        fingerprint.update(content)
    else:
        fingerprint.update_stack(content)


def npy_header(shape, fortran_order: bool) -> bytes:
    """The header np.save writes before a uint8 array of `shape`: version 1.0 where it fits,
    else 2.0, as np.save chooses."""
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": fortran_order,
              "shape": tuple(shape)}
    header = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(header, fields)
    except ValueError:
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, fields)
    return header.getvalue()


def _write_npy(sink, fingerprint: "Fingerprint", feed, fields, alpha_blob: bytes | None = None) -> None:
    """An .npy file's bytes from the entry's images (RGBA images' colour, with their alpha
    planes from `alpha_blob`), its shape and order from its header fields (an entry's or an .npz
    member's): a C-order array run by run as the images come (the fingerprint covers the pixels
    in C order either way); a Fortran-order one, whose bytes interleave all images, whole."""
    shape, fortran_order = fields["shape"], fields.get("fortran_order", False)
    stack = stack_shape(fields)
    runs = feed.take(stack[0]) if alpha_blob is None else _with_alpha_planes(feed.take(stack[0]), alpha_blob, stack)
    if sink is not None:
        sink.write(npy_header(shape, fortran_order))
    if not fortran_order:
        for run in runs:
            fingerprint.update(run)
            if sink is not None:
                sink.write(memoryview(np.ascontiguousarray(run)).cast("B"))
        return
    array = np.empty(stack, dtype=np.uint8)
    filled = 0
    for run in runs:
        array[filled : filled + len(run)] = run
        filled += len(run)
    fingerprint.update(array)
    if sink is not None:
        sink.write(memoryview(np.asfortranarray(array.reshape(shape)).T).cast("B"))


def _with_alpha_planes(runs, blob: bytes, stack: tuple[int, ...]):
    """Runs of RGBA images from runs of their colour and the alpha blob of the whole stack, its
    planes inflated a run at a time (raises ValueError where the blob does not hold exactly a
    plane for each image)."""
    height, width = stack[1:3]
    planes = XzPieces(blob)
    for run in runs:
        alpha = np.frombuffer(planes.take(len(run) * height * width), dtype=np.uint8).reshape(len(run), height, width, 1)
        yield np.concatenate([run, alpha], axis=-1)
    planes.finish()


def _is_image_stack(stack, fits_model) -> bool:
    return stack.dtype == np.uint8 and stack.ndim in (3, 4) and len(stack) > 0 and fits_model(stack)


def _member_stream(archive: zipfile.ZipFile | None, member: dict):
    """A member of the zip being written, with its recorded zip fields, to write into; nothing
    (None) where no file is written."""
    if archive is None:
        return contextlib.nullcontext()
    info = zipfile.ZipInfo(member["member"], date_time=tuple(member["date_time"]))
    info.compress_type, info.external_attr = member["compress_type"], member["external_attr"]
    info.create_system = member["create_system"]
    return archive.open(info, "w", force_zip64=member.get("zip64", False))
