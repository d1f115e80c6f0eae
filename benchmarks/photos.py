"""Photographs: bbzip against the classic lossless codecs, per image and per folder.

    python -m benchmarks.photos [--sizes 512 1024] [--grey] [--quick]

On ../shared/data/photos/test/<size>/ (photos the models never saw; BBZIP_DATA_DIR moves it):

- classic codecs, each image its own file: PNG (optimize), WebP lossless (method 6), JPEG XL
  lossless at efforts 7, 9 and 10 (10 at 512 px only: minutes an image at 1024); every file is
  decoded and checked, and timed both ways;
- bbzip, each image its own archive (real archive bytes): the default (the fallback may keep an
  image classic) and the model alone (--no-fallback);
- bbzip on the whole folder as one archive, as a user runs it: `bbzip compress` and `bbzip
  decompress` as whole processes (start-up included), in megapixels a second.

bpd = 8 x bytes / (pixels x 3), over the whole set. Every bbzip archive is decoded and compared.
With --grey the same photos are made grey (Pillow's "L": ITU-R 601 luma) and written as grey PNGs
first, for the grey model; bpd is then per pixel.
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow

from bbzip.models.data import data_dir

from .common import markdown_table, write_results


def _codecs(size: int) -> dict:
    codecs = {"PNG": ("PNG", {"optimize": True}), "WebP lossless": ("WEBP", {"lossless": True, "quality": 100, "method": 6}),
              "JPEG XL e7": ("JXL", {"lossless": True, "effort": 7}), "JPEG XL e9": ("JXL", {"lossless": True, "effort": 9})}
    if size <= 512:
        codecs["JPEG XL e10"] = ("JXL", {"lossless": True, "effort": 10})
    return codecs


def _classic(pixels: np.ndarray, fmt: str, options: dict) -> tuple[int, float, float]:
    """(bytes, encode seconds, decode seconds) of one image, checked to decode exactly."""
    started = time.perf_counter()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    encoded = time.perf_counter()
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        decoded = np.asarray(image.convert("RGB" if pixels.ndim == 3 else "L"))
    done = time.perf_counter()
    if not np.array_equal(decoded, pixels):
        raise RuntimeError(f"{fmt} did not decode exactly")
    return len(buffer.getvalue()), encoded - started, done - encoded


def _bbzip(*args) -> float:
    """Seconds a whole `bbzip` process takes (it must succeed)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bbzip", "-q", *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"bbzip {' '.join(map(str, args))}: {result.stderr.strip()}")
    return time.perf_counter() - started


def _same_pixels(before: Path, after: Path) -> bool:
    with Image.open(before) as a, Image.open(after) as b:
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def _bbzip_archive(files: list[Path], work: Path, name: str, *options) -> dict:
    """One archive of `files`: its bytes, compress and decompress seconds, checked."""
    archive, restored = work / f"{name}.bb", work / f"{name}-restored"
    compress = _bbzip("compress", *files, "-o", archive, *options)
    decompress = _bbzip("decompress", archive, "-o", restored)
    for file in files:
        if not _same_pixels(file, restored / file.name):
            raise RuntimeError(f"{file.name}: bbzip did not give back its pixels")
    size = archive.stat().st_size
    archive.unlink()
    shutil.rmtree(restored)
    return {"bytes": size, "compress_s": compress, "decompress_s": decompress}


def _grey_copies(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir()
    copies = []
    for file in files:
        with Image.open(file) as image:
            image.convert("L").save(folder / file.name)
        copies.append(folder / file.name)
    return copies


def run_size(size: int, limit: int | None, work: Path, grey: bool = False, model: str | None = None) -> dict:
    folder = data_dir() / "photos" / "test" / str(size)
    files = sorted(folder.glob("*.png"))[:limit]
    if not files:
        raise SystemExit(f"no photos under {folder}")
    if grey:
        files = _grey_copies(files, work / f"grey-{size}")
    images = [np.asarray(Image.open(f).convert("L" if grey else "RGB")) for f in files]
    dims = [image.size for image in images]
    per_image = {f.name: {"values": d} for f, d in zip(files, dims)}
    totals = {}
    for label, (fmt, options) in _codecs(size).items():
        sizes, enc, dec = zip(*(_classic(image, fmt, options) for image in images))
        for f, n in zip(files, sizes):
            per_image[f.name][label] = n
        totals[label] = {"bytes": sum(sizes), "compress_s": sum(enc), "decompress_s": sum(dec)}
    chosen = ("--model", model) if model else ()
    for label, options in (("bbzip (default)", ()), ("bbzip (model only)", ("--no-fallback",))):
        total = {"bytes": 0, "compress_s": 0.0, "decompress_s": 0.0}
        for f in files:
            one = _bbzip_archive([f], work, "one", *options, *chosen)
            per_image[f.name][label] = one["bytes"]
            total = {key: total[key] + one[key] for key in total}
        totals[label] = total
    totals["bbzip folder (default)"] = _bbzip_archive(files, work, "folder", *chosen)
    values = sum(dims)
    megapixels = values / (1 if grey else 3) / 1e6
    for record in totals.values():
        record["bpd"] = 8 * record["bytes"] / values
        record["compress_mp_s"] = megapixels / record["compress_s"]
        record["decompress_mp_s"] = megapixels / record["decompress_s"]
    classic = [label for label in _codecs(size)]
    for name, record in per_image.items():
        best = min(record[label] for label in classic)
        record["bbzip over best classic"] = record["bbzip (default)"] / best - 1
    return {"size": size, "grey": grey, "model": model or "the default", "images": len(files), "megapixels": megapixels,
            "totals": totals, "per_image": per_image}


def _sections(results: list[dict]) -> list[tuple[str, str]]:
    sections = []
    for result in results:
        rows = [[label, r["bpd"], r["bytes"], r["compress_mp_s"], r["decompress_mp_s"]] for label, r in result["totals"].items()]
        jxl = result["totals"]["JPEG XL e7"]["bpd"]
        worst = max(r["bbzip over best classic"] for r in result["per_image"].values())
        notes = (f"bbzip (default, each image its own archive) is {100 * (1 - result['totals']['bbzip (default)']['bpd'] / jxl):.1f}% "
                 f"below JPEG XL effort 7; its worst image is {100 * worst:+.1f}% against that image's best classic codec.")
        table = markdown_table(["codec", "bpd", "bytes", "compress MP/s", "decompress MP/s"], rows)
        kind = "grey photos" if result.get("grey") else "photos"
        model = "" if result.get("model", "the default") == "the default" else f", bbzip --model {result['model']}"
        sections.append((f"test/{result['size']}: {result['images']} {kind}, {result['megapixels']:.2f} megapixels{model}",
                         table + "\n\n" + notes))
    return sections


def _plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results):
        labels = list(result["totals"])
        ax.barh(labels, [result["totals"][label]["bpd"] for label in labels])
        ax.set(title=f"photos test/{result['size']}", xlabel="bits per dimension (real bytes)")
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--grey", action="store_true", help="the photos made grey, for the grey model")
    parser.add_argument("--quick", action="store_true", help="two photos at 256 px")
    parser.add_argument("--model", help="a shipped model other than the default, for bbzip's rows (results named after it)")
    args = parser.parse_args()
    sizes, limit = ([256], 2) if args.quick else (args.sizes, None)
    with tempfile.TemporaryDirectory() as work:
        results = [run_size(size, limit, Path(work), args.grey, args.model) for size in sizes]
    name = ("photos-quick" if args.quick else "photos") + ("-grey" if args.grey else "") + (f"-{args.model}" if args.model else "")
    path = write_results(name, "Photographs: bbzip and the classic lossless codecs", _sections(results), {"results": results})
    _plot(results, path.with_suffix(".png"))
    print(path.read_text())


if __name__ == "__main__":
    main()
