"""The archive around the model stream: what a file costs, what two cores buy, what memory it takes.

    python -m benchmarks.archive [--quick]

1. Per-file cost: folders of 1,000 and 10,000 MNIST test images as PNG files (binary as 1-bit
   PNG, grey as 8-bit), against the same images as one .npy, each compressed by `bbzip
   compress` (real archive bytes, default settings); beside them the folder itself (PNG bytes),
   the folder as tar.xz (-9e) and tar.bz2 (-9), and every file re-encoded as lossless WebP and
   lossless JPEG-XL (effort 7). Files get
   whole-second modification times, as files unpacked from a tar or zip have (bbzip keeps
   seconds by default; one more row shows --exact-times on the times the files were written at).
2. Threads: `bbzip compress` and `bbzip decompress` of the 70,000-image mnist.npz with -T 1 and
   -T 2 (wall time, best of --repeats); the archives must be byte-identical and the restored
   file identical to the input.
3. Peak memory (the largest process's maximum RSS) of compress and decompress at 10k, 70k and
   700k images (700k = the 70k images ten times, one .npy), coded by --memory-model (default
   mlp-mnist-rha: memory is the archive layer's, and the MLP VAE codes 700k images in minutes
   where the default local autoregressive model takes most of an hour on two cores).
4. The classic fallback: 1,000 MNIST test images and the same images made unlike MNIST
   (benchmarks/unlike_mnist.py), each set one .npy, by `bbzip compress` with and without
   --no-fallback; beside them every image as its own PNG, WebP and JPEG-XL file (bbzip's own
   encoders, cli/classic.py), the smallest of the three per image ("best per-image classic", what
   the fallback is measured against), and the .npy as xz (-9e) and bz2 (-9).
--quick: 300 files, 1,000 test images for threads and memory, 100 images a fallback set.
--sections runs some of them (the results file then holds only those: give it a --name).
"""
from __future__ import annotations

import argparse
import bz2
import io
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bbzip.cli import classic
from bbzip.models.data import load_named

from .common import compile_bytecode, markdown_table, timed_bbzip, write_results
from .unlike_mnist import image_sets

SECTIONS = ["per-file", "threads", "memory", "fallback", "files-memory"]
MNIST_NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist.npz"
WHOLE_SECOND = 1_700_000_000 * 10**9


def peak_rss_of(*args) -> tuple[float, int]:
    """(seconds, peak RSS in bytes of the largest process) of one bbzip run in a fresh child."""
    compile_bytecode()
    script = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
              "subprocess.run(sys.argv[1:], check=True); "
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", script, sys.executable, "-m", "bbzip", "-q", *map(str, args)],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]) * 1024


def write_folder(folder: Path, images: np.ndarray, binary: bool) -> dict[Path, int]:
    """The images as PNG files with whole-second times; returns the times they were written at."""
    folder.mkdir(parents=True)
    written = {}
    for index, image in enumerate(images):
        path = folder / f"{index:05d}.png"
        (Image.fromarray(image.astype(bool)) if binary else Image.fromarray(image)).save(path)
        written[path] = path.stat().st_mtime_ns
        os.utime(path, ns=(WHOLE_SECOND, WHOLE_SECOND))
    return written


def per_file_codecs(folder: Path) -> dict[str, int]:
    """Bytes of the folder as classic tools would keep it."""
    files = sorted(folder.iterdir())
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in files:
            archive.add(path, arcname=f"{folder.name}/{path.name}")
    sizes = {"PNG files (the folder)": sum(p.stat().st_size for p in files),
             "tar.xz (-9e)": len(lzma.compress(tar.getvalue(), preset=9 | lzma.PRESET_EXTREME)),
             "tar.bz2 (-9)": len(bz2.compress(tar.getvalue(), 9))}
    codecs = {"WebP lossless files": ("WEBP", {"lossless": True, "quality": 100, "method": 6}),
              "JPEG-XL lossless files (e7)": ("JXL", {"lossless": True, "effort": 7})}
    for label, (fmt, options) in codecs.items():
        total = 0
        for path in files:
            buffer = io.BytesIO()
            Image.open(path).convert("L").save(buffer, format=fmt, **options)
            total += len(buffer.getvalue())
        sizes[label] = total
    return sizes


def per_file_cost(work: Path, counts: list[int]) -> tuple[list, list]:
    rows, records = [], []
    for label, dataset in (("binary", "binary-mnist"), ("grey", "mnist")):
        for count in counts:
            images = load_named(dataset, "test")[:count]
            pixels = images.size
            folder = work / f"{label}-{count}" / "digits"
            written = write_folder(folder, images, binary=label == "binary")
            npy = work / f"{label}-{count}.npy"
            np.save(npy, images)
            os.utime(npy, ns=(WHOLE_SECOND, WHOLE_SECOND))
            sizes = {}
            for name, source, extra in (("bbzip, one .npy", npy, []), ("bbzip, folder", folder, []),
                                        ("bbzip, folder, --exact-times (ns times)", folder, ["--exact-times"])):
                if extra:  # the times the files were written at: nanoseconds that differ file to file
                    for path, mtime in written.items():
                        os.utime(path, ns=(mtime, mtime))
                out = work / "out.bb"
                timed_bbzip("compress", source, "-o", out, "-f", *extra)
                sizes[name] = out.stat().st_size
            sizes.update(per_file_codecs(folder))
            base = sizes["bbzip, one .npy"]
            for name, size in sizes.items():
                extra_per_file = (size - base) / count if name.startswith("bbzip, folder") else None
                rows.append([label, count, name, size, 8 * size / pixels, extra_per_file,
                             100 * (size / base - 1) if name.startswith("bbzip, folder") else None])
                records.append({"data": label, "files": count, "kept_as": name, "bytes": size, "bpd": 8 * size / pixels})
    return rows, records


def threads(work: Path, source: Path, repeats: int) -> tuple[list, dict]:
    times, archives = {}, {}
    for threads_ in (1, 2):
        archive = work / f"t{threads_}.bb"
        compress_s = min(timed_bbzip("compress", source, "-o", archive, "-f", "-T", threads_) for _ in range(repeats))
        decompress_s = float("inf")
        for _ in range(repeats):
            out = work / f"restored-t{threads_}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            decompress_s = min(decompress_s, timed_bbzip("decompress", archive, "-o", out, "-T", threads_))
        assert (out / source.name).read_bytes() == source.read_bytes(), "restored file differs"
        times[threads_], archives[threads_] = (compress_s, decompress_s), archive.read_bytes()
    assert archives[1] == archives[2], "-T 1 and -T 2 wrote different archives"
    images = _image_count(source)
    rows = [[f"-T {t}", images, c, images / c, d, images / d] for t, (c, d) in times.items()]
    rows.append(["speed-up", images, None, times[1][0] / times[2][0], None, times[1][1] / times[2][1]])
    return rows, {"images": images, "seconds": {str(t): list(v) for t, v in times.items()},
                  "compress_speedup": times[1][0] / times[2][0], "decompress_speedup": times[1][1] / times[2][1]}


def _image_count(source: Path) -> int:
    loaded = np.load(source)
    if source.suffix != ".npz":
        return len(loaded)
    return sum(len(loaded[key]) for key in loaded.files if loaded[key].ndim == 3)


def memory(work: Path, sizes: list[int], model: str) -> tuple[list, list]:
    grey = np.load(MNIST_NPZ)
    all_images = np.concatenate([grey["x_train"], grey["x_valid"], grey["x_test"]])
    rows, records = [], []
    for count in sizes:
        images = all_images[:count] if count <= len(all_images) else np.tile(all_images, (count // len(all_images), 1, 1))
        source = work / f"mem-{count}.npy"
        np.save(source, images)
        del images
        archive, out = work / f"mem-{count}.bb", work / f"mem-{count}-out"
        compress_s, compress_rss = peak_rss_of("compress", source, "-o", archive, "-f", "--model", model)
        decompress_s, decompress_rss = peak_rss_of("decompress", archive, "-o", out, "-f")
        assert (out / source.name).read_bytes() == source.read_bytes()
        rows.append([count, source.stat().st_size >> 20, compress_rss >> 20, compress_s, decompress_rss >> 20, decompress_s])
        records.append({"images": count, "input_mib": source.stat().st_size >> 20, "compress_peak_rss_mib": compress_rss >> 20,
                        "decompress_peak_rss_mib": decompress_rss >> 20, "compress_s": compress_s,
                        "decompress_s": decompress_s})
        for path in (source, archive):
            path.unlink()
        subprocess.run(["rm", "-rf", str(out)], check=True)
    return rows, records


FIXED_BLOCKS = ["-T", "1", "--block-images", "2500"]  # the per-file cost alone (below)


def files_memory(work: Path, sizes: list[int], model: str) -> tuple[list, list]:
    """Peak memory of compress and decompress on folders of grey MNIST PNG files: unlike an
    array's images, which are read from the file as they are needed, each file is an entry that
    compress holds (its metadata; its pixels wait in a temporary file) until the archive is
    written, and the table lists every file. Run as a user runs it (all cores, default blocks),
    and with one process and the blocks 10,000 files get by default (FIXED_BLOCKS): a block's
    memory grows with its size up to 8,192 images, which by default only the larger folder
    reaches, and the pool's processes add their own; what is left grows with the files alone."""
    grey = np.load(MNIST_NPZ)
    all_images = np.concatenate([grey["x_train"], grey["x_valid"], grey["x_test"]])
    rows, records = [], []
    for count in sizes:
        folder = work / f"files-{count}"
        write_folder(folder, np.tile(all_images, (-(-count // len(all_images)), 1, 1))[:count], False)
        archive, out = work / f"files-{count}.bb", work / f"files-{count}-out"
        for settings in ([], FIXED_BLOCKS):
            compress_s, compress_rss = peak_rss_of("compress", folder, "-o", archive, "-f", "--model", model, *settings)
            decompress_s, decompress_rss = peak_rss_of("decompress", archive, "-o", out, "-f", *settings[:2])
            shown = " ".join(settings) or "default"
            rows.append([count, shown, compress_rss >> 20, round(compress_s, 1), decompress_rss >> 20, round(decompress_s, 1)])
            records.append({"files": count, "settings": shown, "compress_peak_rss_mib": compress_rss >> 20,
                            "decompress_peak_rss_mib": decompress_rss >> 20, "compress_s": compress_s,
                            "decompress_s": decompress_s})
            subprocess.run(["rm", "-rf", str(out)], check=True)
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        archive.unlink()
    return rows, records


def per_image_classic(images: np.ndarray, binary: bool) -> dict[str, int]:
    """Total bytes of every image as its own file in each of bbzip's classic codecs, and of the
    smallest of them per image."""
    totals = {"PNG": 0, "WEBP": 0, "JXL": 0, "best": 0}
    for pixels in images:
        image = Image.fromarray(pixels > 0) if binary else Image.fromarray(pixels)
        found = dict(classic.encodings(image))
        for codec, blob in found.items():
            totals[codec] += len(blob)
        totals["best"] += min(map(len, found.values()))
    if binary:
        del totals["WEBP"]  # WebP holds no 1-bit images (bbzip does not try it on them)
    return totals


def fallback(work: Path, count: int) -> tuple[list, list]:
    rows, records = [], []
    for label, binary in (("binary", True), ("grey", False)):
        for kind, images in image_sets(binary, count).items():
            source = work / f"{label}-{kind}.npy"
            np.save(source, images)
            sizes = {}
            for name, extra in (("bbzip", []), ("bbzip --no-fallback", ["--no-fallback"])):
                timed_bbzip("compress", source, "-o", work / "f.bb", "-f", *extra)
                sizes[name] = (work / "f.bb").stat().st_size
            raw = source.read_bytes()
            sizes["xz -9e (.npy)"] = len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
            sizes["bz2 -9 (.npy)"] = len(bz2.compress(raw, 9))
            per_image = per_image_classic(images, binary)
            sizes.update({f"{codec} files" if codec != "best" else "best per-image classic": size
                          for codec, size in per_image.items()})
            best = per_image["best"]
            for name, size in sizes.items():
                rows.append([label, kind, name, size, 8 * size / images.size, 100 * (size / best - 1)])
            records.append({"data": label, "set": kind, "images": len(images), "bytes": sizes})
    return rows, records


# --quick (a smoke test that the benchmark runs, in CI): files, images for threads and memory,
# images a fallback set
QUICK_FILES, QUICK_IMAGES, QUICK_FALLBACK = 300, 1000, 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 files; threads and memory on 1,000 images")
    parser.add_argument("--repeats", type=int, default=2, help="timing runs per cell; the fastest counts (default 2)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--memory-model", default="mlp-mnist-rha", help="the model of the memory runs")
    parser.add_argument("--name", help="results file name (default: archive[-quick])")
    args = parser.parse_args()
    sections, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "per-file" in args.sections:
            rows, data["per_file"] = per_file_cost(work, [QUICK_FILES] if args.quick else [1000, 10000])
            sections.append(("Per-file cost: a folder of PNG files against the same images as one .npy", markdown_table(
                ["data", "files", "kept as", "bytes", "bpd", "bytes a file beyond the .npy", "% beyond the .npy"], rows)))
        if "threads" in args.sections:
            source = MNIST_NPZ
            if args.quick:
                source = work / "test.npy"
                np.save(source, load_named("mnist", "test")[:QUICK_IMAGES])
            rows, data["threads"] = threads(work, source, 1 if args.quick else args.repeats)
            sections.append((f"-T 1 against -T 2 ({source.name}; identical archives)", markdown_table(
                ["threads", "images", "compress s", "compress images/s (speed-up)", "decompress s",
                 "decompress images/s (speed-up)"], rows)))
        if "memory" in args.sections:
            rows, data["memory"] = memory(work, [QUICK_IMAGES] if args.quick else [10000, 70000, 700000], args.memory_model)
            sections.append((f"Peak memory (largest process, maximum RSS; {args.memory_model})", markdown_table(
                ["images", "input MiB", "compress peak MiB", "compress s", "decompress peak MiB", "decompress s"], rows)))
        if "fallback" in args.sections:
            count = QUICK_FALLBACK if args.quick else 1000
            rows, data["fallback"] = fallback(work, count)
            sections.append((f"The classic fallback: {count} images a set, one .npy each", markdown_table(
                ["data", "set", "kept as", "bytes", "bpd", "% beyond the best per-image classic"], rows)))
        if "files-memory" in args.sections:
            rows, data["files_memory"] = files_memory(work, [QUICK_FILES] if args.quick else [10000, 100000],
                                                      args.memory_model)
            sections.append((f"Peak memory on folders of grey PNG files (largest process, maximum RSS; {args.memory_model})",
                             markdown_table(["files", "settings", "compress peak MiB", "compress s", "decompress peak MiB",
                                             "decompress s"], rows)))
    name = args.name or ("archive-quick" if args.quick else "archive")
    print(write_results(name, "The bbzip archive: per-file cost, threads, memory", sections, data).read_text())


if __name__ == "__main__":
    main()
