"""Classic lossless codecs on the same MNIST test images, per image and as one whole set.

    python -m benchmarks.classic [--quick]

Image codecs (Pillow): PNG (optimize; binary images as 1-bit), WebP lossless (method 6),
JPEG-XL lossless (efforts 7 and 10, as in ANCHORS.md; through `pillow-jxl-plugin`, a bbzip dependency).
Byte codecs on the raw pixels (binary images packed 1 bit per pixel): xz -9e, bz2 -9,
brotli q11 and zstd -19 (if the `brotli` / `zstandard` packages are installed).
"Per image" = each image its own file; "whole set" = one stream / one 100x100-image mosaic.
Every codec is decoded and checked pixel-exact. bpd = 8 x bytes / pixels.
"""
from __future__ import annotations

import argparse
import bz2
import io
import lzma
import time

import numpy as np
from PIL import Image
import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow

from bbzip.models.data import load_named

from .common import markdown_table, write_results


def _image_codec(fmt: str, **options):
    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L") if image.mode not in ("L", "1") else image)

    return encode, decode


def image_codecs(binary: bool) -> dict:
    return {
        "PNG (optimize)": _image_codec("PNG", optimize=True),
        "WebP lossless, method 6": _image_codec("WEBP", lossless=True, quality=100, method=6),
        "JPEG-XL lossless, effort 7": _image_codec("JXL", lossless=True, effort=7),
        "JPEG-XL lossless, effort 10": _image_codec("JXL", lossless=True, effort=10),
    }


def byte_codecs() -> dict:
    codecs = {
        # -9e's settings; the dictionary is capped at 16 MiB (the whole test set is 7.8 MB), since
        # allocating -9e's 64 MiB per image dominates per-image time and changes no decision.
        "xz -9e": (lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, filters=[
            {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 24}]), lzma.decompress),
        "bz2 -9": (lambda b: bz2.compress(b, 9), bz2.decompress),
    }
    try:
        import brotli

        codecs["brotli q11"] = (lambda b: brotli.compress(b, quality=11), brotli.decompress)
    except ImportError:
        pass
    try:
        import zstandard

        codecs["zstd -19"] = (zstandard.ZstdCompressor(level=19).compress, zstandard.ZstdDecompressor().decompress)
    except ImportError:
        pass
    return codecs


def _to_image(pixels: np.ndarray, binary: bool, codec_name: str) -> Image.Image:
    if binary and codec_name.startswith("PNG"):
        return Image.fromarray(pixels.astype(bool))  # 1-bit PNG
    return Image.fromarray((pixels * 255).astype(np.uint8) if binary else pixels)


def _from_image(decoded: np.ndarray, binary: bool) -> np.ndarray:
    return (decoded > 0).astype(np.uint8) if binary else decoded


def _mosaic(images: np.ndarray) -> np.ndarray:
    n = len(images)
    side = int(np.ceil(np.sqrt(n)))
    padded = np.zeros((side * side,) + images.shape[1:], dtype=images.dtype)
    padded[:n] = images
    h, w = images.shape[1:]
    return padded.reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, side * w)


def _bytes_of(images: np.ndarray, binary: bool) -> bytes:
    return np.packbits(images.reshape(len(images), -1), axis=1).tobytes() if binary else images.tobytes()


def measure(images: np.ndarray, binary: bool) -> list[dict]:
    pixels = images.size
    results = []
    for name, (encode, decode) in image_codecs(binary).items():
        start = time.perf_counter()
        blobs = [encode(_to_image(im, binary, name)) for im in images]
        enc = time.perf_counter() - start
        start = time.perf_counter()
        decoded = [_from_image(decode(b), binary) for b in blobs]
        dec = time.perf_counter() - start
        assert all(np.array_equal(a, b) for a, b in zip(images, decoded)), name
        mosaic = _mosaic(images)
        whole = encode(_to_image(mosaic, binary, name))
        assert np.array_equal(_from_image(decode(whole), binary), mosaic), name
        results.append({"codec": name, "per_image_bpd": 8 * sum(map(len, blobs)) / pixels, "whole_set_bpd": 8 * len(whole) / pixels,
                        "encode_ms_per_image": 1e3 * enc / len(images), "decode_ms_per_image": 1e3 * dec / len(images)})
    for name, (encode, decode) in byte_codecs().items():
        raw = [_bytes_of(im[None], binary) for im in images]
        start = time.perf_counter()
        blobs = [encode(r) for r in raw]
        enc = time.perf_counter() - start
        start = time.perf_counter()
        back = [decode(b) for b in blobs]
        dec = time.perf_counter() - start
        assert back == raw, name
        stream = _bytes_of(images, binary)
        whole = encode(stream)
        assert decode(whole) == stream, name
        results.append({"codec": name, "per_image_bpd": 8 * sum(map(len, blobs)) / pixels, "whole_set_bpd": 8 * len(whole) / pixels,
                        "encode_ms_per_image": 1e3 * enc / len(images), "decode_ms_per_image": 1e3 * dec / len(images)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 images instead of 10,000")
    args = parser.parse_args()
    n = 300 if args.quick else None
    sections, data = [], {}
    for label, dataset, binary in (("grey", "mnist", False), ("binary", "binary-mnist", True)):
        images = load_named(dataset, "test")[:n]
        results = measure(images, binary)
        data[label] = results
        rows = [[r["codec"], r["per_image_bpd"], r["whole_set_bpd"], r["encode_ms_per_image"], r["decode_ms_per_image"]] for r in results]
        table = markdown_table(["codec", "per image bpd", "whole set bpd", "encode ms/image", "decode ms/image"], rows)
        sections.append((f"{label} MNIST, {len(images)} test images", table))
        print(f"\n{label}\n{table}", flush=True)
    path = write_results("classic-quick" if args.quick else "classic", "Classic lossless codecs on MNIST test images", sections, data)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
