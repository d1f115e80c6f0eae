"""One entry out of a large archive: `bbzip decompress big.bb ENTRY` reads the archive's table and
that entry's own parts, whatever the archive's size.

The archive holds `--mib` stored files of 1 MiB of random bytes (xz keeps them at their size; on a
local Dask cluster of 2 workers, which xz them side by side), one grey photo and one grey MNIST
digit, both coded by the model (`--no-fallback`: JPEG XL keeps this smooth photo smaller). Each
of a stored file, the digit and the photo is decompressed on its own, timed as a whole process,
start-up and the entry's decoding included: out of the archive on the local disk, and out of
the same file through fsspec (`blockcache::file://`, ranged reads of fsspec's block cache, as
from a store), each twice (the faster is reported).

    python -m benchmarks.one_entry [--mib 1024] [--quick]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bbzip.models.data import load_named

from .cluster import local_cluster
from .common import markdown_table, timed_bbzip, write_results

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "test" / "512"


def build(folder: Path, mebibytes: int) -> dict[str, str]:
    """The inputs: `mebibytes` random files of 1 MiB, a grey photo and a digit; {what: file name}."""
    rng = np.random.default_rng(0)
    for number in range(mebibytes):
        (folder / f"blob{number:05d}.bin").write_bytes(rng.bytes(1 << 20))
    photo = Image.open(sorted(PHOTO.glob("*.png"))[0]).convert("L")
    photo.save(folder / "photo.png")
    Image.fromarray(load_named("mnist", "test")[0]).save(folder / "digit.png")
    return {"a stored file of 1 MiB": "blob00000.bin", "a grey digit, 28x28 (model)": "digit.png",
            f"a grey photo, {photo.width}x{photo.height} (model)": "photo.png"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB of stored files (default 1024)")
    parser.add_argument("--quick", action="store_true", help="4 MiB")
    args = parser.parse_args()
    args.mib = 4 if args.quick else args.mib
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = work / "big"
        inputs.mkdir()
        wanted = build(inputs, args.mib)
        archive = work / "big.bb"
        with local_cluster(2) as cluster:  # (this process's environment as it was: benchmarks/cluster.py)
            compress_s = timed_bbzip("compress", inputs, "-o", archive, "--no-fallback", "--cluster",
                                     cluster.scheduler_address)
        shutil.rmtree(inputs)
        os.sync()  # the build's gigabytes written out first: their writeback is not the decompress's time
        listing = subprocess.run([sys.executable, "-m", "bbzip", "list", str(archive)], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
        for what, name in wanted.items():
            if "(model)" in what and not any(line.startswith("model ") and line.endswith(f"big/{name}") for line in listing):
                raise RuntimeError(f"{name}: not coded by the model")
        size = archive.stat().st_size
        for what, name in wanted.items():
            for where, source in (("local file", archive), ("blockcache::file://", f"blockcache::file://{archive}")):
                times = []
                for attempt in range(2):
                    out = work / f"out-{len(records)}-{attempt}"
                    times.append(timed_bbzip("decompress", source, f"big/{name}", "-o", out))
                    if [p.name for p in out.rglob("*") if p.is_file()] != [name]:
                        raise RuntimeError(f"{where}: not the one entry back")
                rows.append([what, where, f"{size / 1e9:.2f}", round(min(times), 2)])
                records.append({"entry": what, "source": where, "archive_bytes": size, "decompress_one_s": min(times),
                                "runs": times})
    table = markdown_table(["entry", "archive read from", "archive GB", "decompress s"], rows)
    note = (f"Built by `bbzip compress` on a local cluster of 2 workers in {compress_s:.0f} s; "
            f"{os.cpu_count()} cores.")
    print(write_results("one-entry-quick" if args.quick else "one-entry", "One entry out of a large archive, whole processes",
                        [(f"{args.mib} files of 1 MiB (random bytes, stored), a grey photo and a digit coded by the "
                          "model; each entry decompressed on its own", table + "\n\n" + note)],
                        {"runs": records, "compress_s": compress_s}).read_text())


if __name__ == "__main__":
    main()
