"""Whole bbzip processes as a user runs them: images a second, start-up included (issue 22).

    python -m benchmarks.speed [--quick] [--repeats N]

Each job is timed as `bbzip compress` and `bbzip decompress` processes on this machine's cores
(the fastest of --repeats runs; every archive is checked to decode to exactly its folder, and
the repeats to give the same bytes):

- folders of the 10,000 MNIST test images as PNG files, grey and two-valued (the default models);
- 2,000 two-valued PNG files at --k-steps 10 (and at K = 0 beside it: what K buys);
- 2,000 grey images of each set unlike MNIST (benchmarks/unlike_mnist.py) as PNG files, most of
  which the classic fallback keeps: images a second and archive bytes;
- the README's main job, the 70,000 MNIST images in one .npz (`../shared/data/mnist/mnist.npz`;
  left out where it is missing), compress only.

Creating many small files costs more on some file systems than decoding them, so the time this
machine takes to create as many small files in a fresh folder (in the same temporary folder the
jobs write to) is reported beside the figures.

--quick: 1,000 files a folder, 200 for K = 10 and the unlike sets, no .npz; one run each.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bbzip.cli.archive import read_archive
from bbzip.models.data import load_named

from .common import markdown_table, timed_bbzip, write_results
from .unlike_mnist import image_sets

MNIST_NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist.npz"


def write_pngs(folder: Path, images: np.ndarray, binary: bool) -> Path:
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        (Image.fromarray(image >= 128) if binary else Image.fromarray(image)).save(folder / f"{index:05d}.png")
    return folder


def same_pixels(a: Path, b: Path) -> bool:
    """Whether two folders hold the same names, each image in the same mode with the same pixels."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    for name in names:
        first, second = Image.open(a / name), Image.open(b / name)
        if first.mode != second.mode or not np.array_equal(np.asarray(first), np.asarray(second)):
            return False
    return True


def file_creation_seconds(work: Path, count: int) -> float:
    """Seconds to create `count` files of 300 bytes in a fresh folder (then removed)."""
    folder = work / "creation"
    folder.mkdir()
    start = time.perf_counter()
    for index in range(count):
        (folder / str(index)).write_bytes(b"x" * 300)
    seconds = time.perf_counter() - start
    shutil.rmtree(folder)
    return seconds


def timed_job(work: Path, name: str, source: Path, repeats: int, options=(), decompress: bool = True) -> dict:
    """The fastest compress (and decompress) of `source` over `repeats` runs; its archive bytes and
    its model stream's (what --k-steps changes: the table beside it compresses to a byte or two
    more or less with the stream's length and the files' times written in it)."""
    archives, compress_s, decompress_s = [], [], []
    for run in range(repeats):
        archive = work / f"{name}-{run}.bb"
        compress_s.append(timed_bbzip("compress", source, "-o", archive, *options))
        archives.append(archive.read_bytes())
        if decompress:
            out = work / f"{name}-{run}-out"
            decompress_s.append(timed_bbzip("decompress", archive, "-o", out))
            if not same_pixels(source, out / source.name):
                raise SystemExit(f"{name}: the archive did not decode to its folder")
            shutil.rmtree(out)
    if any(a != archives[0] for a in archives):
        raise SystemExit(f"{name}: repeated runs gave different archives")
    stream_bytes = read_archive(archives[0]).header.get("model_stream", {}).get("length", 0)
    return {"bytes": len(archives[0]), "stream_bytes": stream_bytes, "compress_s": min(compress_s),
            "decompress_s": min(decompress_s) if decompress_s else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 files a folder, 200 for K = 10 and unlike sets, no .npz")
    parser.add_argument("--repeats", type=int, default=2, help="runs per job; the fastest counts (default 2)")
    parser.add_argument("--name", help="results file name (default: speed[-quick])")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    folder_count, small_count = (1000, 200) if args.quick else (10000, 2000)
    grey = load_named("mnist", "test")[:folder_count]
    rows, data = [], {"jobs": []}

    def report(job: str, images: int, result: dict) -> None:
        result = {"job": job, "images": images, **result}
        data["jobs"].append(result)
        per_second = [images / result["compress_s"], images / result["decompress_s"] if result["decompress_s"] else None]
        rows.append([job, images, result["bytes"], result["compress_s"], per_second[0], result["decompress_s"], per_second[1]])

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data["file_creation_s"] = file_creation_seconds(work, folder_count)
        for binary in (False, True):
            kind = "binary" if binary else "grey"
            source = write_pngs(work / f"{kind}-mnist", grey, binary)
            report(f"{folder_count:,} {kind} MNIST PNGs", folder_count, timed_job(work, kind, source, repeats))
        k_source = write_pngs(work / "binary-small", grey[:small_count], True)
        for k in (0, 10):
            report(f"{small_count:,} binary PNGs, --k-steps {k}", small_count,
                   timed_job(work, f"k{k}", k_source, 1 if k else repeats, ["--k-steps", k]))
        for set_name, images in image_sets(binary=False, count=small_count).items():
            if set_name == "mnist":
                continue
            source = write_pngs(work / f"unlike-{set_name}", images, False)
            report(f"{small_count:,} grey PNGs, {set_name}", small_count, timed_job(work, set_name, source, repeats))
        if not args.quick and MNIST_NPZ.exists():
            with np.load(MNIST_NPZ) as npz:
                count = sum(len(npz[key]) for key in npz.files if key.startswith("x_"))
            report(f"the main job: {MNIST_NPZ.name} ({count:,} grey images)", count,
                   timed_job(work, "npz", MNIST_NPZ, 1, decompress=False))
    sections = [(f"Whole processes, start-up included (fastest of {repeats}; creating {folder_count:,} small files "
                 f"here took {data['file_creation_s']:.2f} s)", markdown_table(
                     ["job", "images", "archive bytes", "compress s", "compress images/s", "decompress s",
                      "decompress images/s"], rows))]
    name = args.name or ("speed-quick" if args.quick else "speed")
    print(write_results(name, "bbzip speed: whole processes on this machine", sections, data).read_text())


if __name__ == "__main__":
    main()
