"""bbzip on a Dask cluster against this machine's own cores: the same .npy of MNIST test images
compressed and decompressed by `-T 1`, `-T 2` and `--cluster` on a local Dask cluster of 1 and
2 worker processes (one thread each), whole `bbzip` processes, every archive byte-identical to
the -T 1 one and every restored file identical to the input. The local cluster shows the
cluster path's own cost (the model sent to each worker, every job's images pickled to it and its
result back); a real cluster adds the network.

    python -m benchmarks.cluster [--quick] [--images N] [--overhead] [--memory [--files]] [--main-job]

`--overhead` measures what the cluster adds per job: the same input in small blocks and in the
default ones, by -T 1 and by a cluster of one worker; the cluster's extra time over -T 1 grows
with the number of blocks by its cost per job (each block is a job, coded and checked there; before 58c3924 a second job checked it).
`--main-job` compares `-T 2` with a local cluster of 2 workers on the README's main job (the
70,000 MNIST images in one .npz, `../shared/data/mnist/mnist.npz`), each twice, alternating.
`--client` measures the client's own work on a cluster: the CPU time of the bbzip process alone
(not its workers') compressing the 64 training photos (PNG files) at 256 and at 512 px on a local
cluster of 2 workers; per megapixel, the difference of the two over the difference in pixels.
One client feeds as many workers as its CPU time per megapixel allows.
`--memory` measures the peak resident memory of the client (the bbzip process) and of the worker
(a fresh one-worker cluster for each command) on 7,000 and on 70,000 MNIST images in one .npy;
with `--files`, on 10,000 and 100,000 of them as PNG files in a folder.

Needs the cluster extra (`pip install -e ".[cluster]"`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bbzip.models.data import load_named

from .archive import peak_rss_of, write_folder
from .common import compile_bytecode, markdown_table, timed_bbzip, write_results


def local_cluster(workers: int):
    """A local Dask cluster of `workers` processes, one thread each (as bbzip's own lanes). Its
    nanny sets its workers' environment (MALLOC_TRIM_THRESHOLD_, one BLAS thread) in this
    process's, where every bbzip process started after would inherit it: it is put back."""
    from distributed import LocalCluster

    environment = dict(os.environ)
    try:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        os.environ.clear()
        os.environ.update(environment)


MNIST_NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist.npz"
ALL_SETUPS = [("-T 1", None, ["-T", 1]), ("-T 2", None, ["-T", 2]), ("cluster, 1 worker", 1, []),
              ("cluster, 2 workers", 2, [])]


def run(work: Path, source: Path, count: int, setups=ALL_SETUPS) -> tuple[list, list]:
    """Each setup compresses and decompresses `source` (`count` images); the same archive from each."""
    reference, rows, records = None, [], []
    for label, workers, options in setups:
        cluster = local_cluster(workers) if workers else None
        try:
            where = ["--cluster", cluster.scheduler_address] if cluster else options
            archive, restored = work / f"{len(records)}.bb", work / f"out{len(records)}"
            compress_s = timed_bbzip("compress", source, "-o", archive, *where)
            decompress_s = timed_bbzip("decompress", archive, "-o", restored, *where)
        finally:
            if cluster:
                cluster.close()
        reference = reference or archive.read_bytes()
        if archive.read_bytes() != reference or (restored / source.name).read_bytes() != source.read_bytes():
            raise RuntimeError(f"{label}: not the same archive, or not the input back")
        shutil.rmtree(restored)
        records.append({"setup": label, "images": count, "archive_bytes": len(reference), "compress_s": compress_s,
                        "decompress_s": decompress_s})
        rows.append([label, count, len(reference), round(compress_s, 2), round(count / compress_s),
                     round(decompress_s, 2), round(count / decompress_s)])
    return rows, records


def cluster_behind(records: list[dict]) -> dict:
    """{(command, "best" or "median"): how much longer the cluster took than -T 2, as a fraction}."""
    behind = {}
    for command in ("compress", "decompress"):
        times = {setup: [r[f"{command}_s"] for r in records if r["setup"] == setup] for setup in ("-T 2", "cluster, 2 workers")}
        for way, pick in (("best", min), ("median", statistics.median)):
            behind[command, way] = pick(times["cluster, 2 workers"]) / pick(times["-T 2"]) - 1
    return behind


def _blocks(archive: Path) -> int:
    from bbzip.cli.archive import read_archive
    from bbzip.models import api

    return len(api.read_record(read_archive(archive.read_bytes()).model_stream).blocks)


def per_job(work: Path, count: int, small_blocks: int) -> tuple[list, dict]:
    """Compress and decompress times of -T 1 and of a one-worker cluster, in the default blocks
    and in blocks of `small_blocks` images; the cluster's cost per job from the difference."""
    source = work / "images.npy"
    np.save(source, load_named("mnist", "test")[:count])
    times, blocks, rows = {}, {}, []
    for where in ("-T 1", "cluster"):
        cluster = local_cluster(1) if where == "cluster" else None
        try:
            for size in (None, small_blocks):
                options = ["--cluster", cluster.scheduler_address] if cluster else ["-T", 1]
                archive = work / f"{where[:2]}{size}.bb"
                compress_s = timed_bbzip("compress", source, "-o", archive, *options,
                                         *(["--block-images", size] if size else []))
                decompress_s = timed_bbzip("decompress", archive, "-o", work / f"out-{where[:2]}{size}", *options)
                times[where, size], blocks[size] = (compress_s, decompress_s), _blocks(archive)
                rows.append([where, size or "default", blocks[size], round(compress_s, 2), round(decompress_s, 2)])
        finally:
            if cluster:
                cluster.close()
    more_blocks = blocks[small_blocks] - blocks[None]
    extra = [(times["cluster", small_blocks][n] - times["-T 1", small_blocks][n])
             - (times["cluster", None][n] - times["-T 1", None][n]) for n in (0, 1)]
    # compress codes each block and decodes it to check it: two jobs a block
    overhead = {"compress_s_per_job": extra[0] / (2 * more_blocks), "decompress_s_per_job": extra[1] / more_blocks}
    return rows, {"runs": rows, **overhead}


PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "train"


def _bbzip_usage(*args):
    """Run one bbzip process (quiet); (wall seconds, its own resource usage)."""
    compile_bytecode()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bbzip", "-q", *map(str, args)])
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"bbzip {args[0]} failed ({os.waitstatus_to_exitcode(status)})")
    return time.perf_counter() - start, usage


def client_work(work: Path) -> tuple[list, dict]:
    """The client's CPU seconds compressing the training photos at 256 and at 512 px on 2 local
    workers; per megapixel, the difference over the difference (start-up drops out)."""
    from PIL import Image

    rows, records = [], []
    for size in (256, 512):
        folder = PHOTOS / str(size)
        megapixels = sum(np.prod(Image.open(path).size) for path in folder.glob("*.png")) / 1e6
        cluster = local_cluster(2)
        try:
            wall, usage = _bbzip_usage("compress", folder, "-o", work / f"{size}.bb", "--cluster", cluster.scheduler_address)
        finally:
            cluster.close()
        cpu = usage.ru_utime + usage.ru_stime
        rows.append([size, len(list(folder.glob("*.png"))), round(megapixels, 2), round(wall, 1), round(cpu, 2)])
        records.append({"size": size, "megapixels": megapixels, "wall_s": wall, "client_cpu_s": cpu})
    per_megapixel = (records[1]["client_cpu_s"] - records[0]["client_cpu_s"]) / (records[1]["megapixels"] - records[0]["megapixels"])
    return rows, {"runs": records, "client_cpu_s_per_megapixel": per_megapixel}


def _peak_kib() -> int:
    """This process's own peak resident memory (KiB; run on each worker): VmHWM, the high-water
    mark of its own address space. Not getrusage's ru_maxrss, which Linux carries across exec:
    a worker forked from the nanny in this benchmark's process, then exec'd, reported that
    process's memory (its images, 78 MB for 100,000) as its own peak."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _bbzip_peak(*args) -> int:
    """Run one bbzip process (quiet); its own peak resident memory in KiB. Started from a small
    process of its own (benchmarks.archive.peak_rss_of): a child forked from this one, which
    holds the local cluster, counted this process's memory as its own peak (the client's figures
    at 352e937 were this process's, not the client's)."""
    return peak_rss_of(*args)[1] // 1024


FIXED_BLOCKS = ["--block-images", "2500"]  # the blocks 10,000 images get by default: what the input alone adds


def peaks(work: Path, counts: tuple[int, ...], as_files: bool = False) -> tuple[list, dict]:
    """Peak memory (MB) of the client and of the one worker, compressing and decompressing each
    count of MNIST images (one .npy, or with `as_files` a folder of PNG files, each an entry the
    client keeps: cli/entry_log.py) on a fresh local cluster a command; with the default blocks
    (which grow with the input up to 8,192 images, and a block's coding with them) and with
    FIXED_BLOCKS."""
    from distributed import Client

    images = np.concatenate([load_named("mnist", "train"), load_named("mnist", "test")])
    rows, records = [], []
    for count in counts:
        source, archive = work / (f"files{count}" if as_files else f"images{count}.npy"), work / f"{count}.bb"
        tiled = np.tile(images, (-(-count // len(images)), 1, 1))[:count]
        if as_files:
            write_folder(source, tiled, binary=False)
        else:
            np.save(source, tiled)
        for blocks in ([], FIXED_BLOCKS):
            out = work / f"out{count}"
            for command, args in (("compress", [source, "-o", archive, "-f", *blocks]), ("decompress", [archive, "-o", out])):
                cluster = local_cluster(1)
                try:
                    client_mb = _bbzip_peak(command, *args, "--cluster", cluster.scheduler_address) / 1024
                    with Client(cluster) as client:
                        worker_mb = max(client.run(_peak_kib).values()) / 1024
                finally:
                    cluster.close()
                shown = " ".join(blocks) or "default"
                rows.append([count, command, shown, round(client_mb), round(worker_mb)])
                records.append({"images": count, "command": command, "blocks": shown, "client_mb": client_mb,
                                "worker_mb": worker_mb})
            shutil.rmtree(out)
        if as_files:
            shutil.rmtree(source)
        else:
            source.unlink()
    return rows, {"runs": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images")
    parser.add_argument("--images", type=int, default=10000, help="MNIST test images (default 10,000)")
    parser.add_argument("--overhead", action="store_true", help="the cluster's cost per job instead (blocks of 250 images)")
    parser.add_argument("--client", action="store_true", help="the client's CPU time per megapixel of photos instead")
    parser.add_argument("--main-job", action="store_true", help="-T 2 against 2 workers on the README's main job instead")
    parser.add_argument("--repeats", type=int, default=2, help="with --main-job: runs of each setup, alternating (default 2)")
    parser.add_argument("--memory", action="store_true", help="peak memory of client and worker instead (7,000 and 70,000 images)")
    parser.add_argument("--files", action="store_true", help="with --memory: a folder of PNG files (10,000 and 100,000)")
    args = parser.parse_args()
    count = 1000 if args.quick else args.images
    if args.memory:
        counts = ((1000, 10000) if args.quick else (10000, 100000)) if args.files else ((700, 7000) if args.quick else (7000, 70000))
        with tempfile.TemporaryDirectory() as tmp:
            rows, records = peaks(Path(tmp), counts, args.files)
        table = markdown_table(["images", "command", "blocks", "client peak MB", "worker peak MB"], rows)
        held = "PNG files in one folder" if args.files else "one .npy"
        print(write_results("cluster-memory-files" if args.files else "cluster-memory",
                            "Peak memory of a bbzip client and its Dask worker",
                            [(f"MNIST images as {held}, default model, a one-worker local cluster", table)],
                            records).read_text())
        return
    if args.overhead:
        with tempfile.TemporaryDirectory() as tmp:
            rows, records = per_job(Path(tmp), count, 250)
        table = markdown_table(["setup", "block images", "blocks", "compress s", "decompress s"], rows)
        note = (f"The cluster's cost per job: {1000 * records['compress_s_per_job']:.0f} ms compressing, "
                f"{1000 * records['decompress_s_per_job']:.0f} ms decompressing (its extra time over -T 1, in "
                "small blocks less in the default ones, over the extra jobs).")
        print(write_results("cluster-overhead", "What a Dask cluster adds per job",
                            [(f"{count} grey MNIST images, one .npy, default model", table + "\n\n" + note)],
                            records).read_text())
        return
    if args.client:
        with tempfile.TemporaryDirectory() as tmp:
            rows, records = client_work(Path(tmp))
        table = markdown_table(["px", "photos", "megapixels", "wall s", "client CPU s"], rows)
        note = (f"The client's CPU time per megapixel: {records['client_cpu_s_per_megapixel']:.3f} s (the difference "
                "over the difference).")
        print(write_results("cluster-client", "The client's own work compressing photos on a Dask cluster",
                            [("The 64 RGB training photos (PNG files), default model, a local cluster of 2 workers",
                              table + "\n\n" + note)], records).read_text())
        return
    if args.main_job:
        setups = [setup for setup in ALL_SETUPS if setup[0] in ("-T 2", "cluster, 2 workers")] * args.repeats
        with np.load(MNIST_NPZ) as npz:
            count = sum(len(npz[key]) for key in npz.files if key.startswith("x_"))
        with tempfile.TemporaryDirectory() as tmp:
            rows, records = run(Path(tmp), MNIST_NPZ, count, setups)
        table = markdown_table(["setup", "images", "archive bytes", "compress s", "compress images/s", "decompress s",
                                "decompress images/s"], rows)
        behind = cluster_behind(records)
        note = ("The cluster behind -T 2, by the best run of each and by their medians: "
                + "; ".join(f"{command} {behind[command, 'best']:.1%} (best), {behind[command, 'median']:.1%} (median)"
                            for command in ("compress", "decompress")))
        print(write_results("cluster-main-job", "The README's main job on a local Dask cluster against -T 2",
                            [(f"{MNIST_NPZ.name}: {count:,} grey MNIST images, default model (identical archives), "
                              f"each setup {args.repeats} times, alternating", table + "\n\n" + note)],
                            {"runs": records, "behind": {f"{c}_{w}": v for (c, w), v in behind.items()}}).read_text())
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "images.npy"
        np.save(source, load_named("mnist", "test")[:count])
        rows, records = run(Path(tmp), source, count)
    table = markdown_table(["setup", "images", "archive bytes", "compress s", "compress images/s", "decompress s",
                            "decompress images/s"], rows)
    name = "cluster-quick" if args.quick else "cluster"
    print(write_results(name, "bbzip on a local Dask cluster against -T 1 and -T 2",
                        [(f"{count} grey MNIST images, one .npy, default model (identical archives)", table)],
                        {"runs": records}).read_text())


if __name__ == "__main__":
    main()
