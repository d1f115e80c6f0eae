"""One entry out of a large archive: `bbzip decompress big.bb ENTRY` reads the archive's table and
that entry's own parts, whatever the archive's size.

The archive holds `--mib` stored files of 1 MiB of random bytes (xz keeps them at their size; on a
local Dask cluster of 2 workers, which xz them side by side) and one grey photo that the model
codes. Timed as whole processes, start-up and the photo's decoding included: the photo out of
the archive on the local disk, and out of the same file through fsspec (`blockcache::file://`,
ranged reads of fsspec's block cache, as from a store), each twice (the faster is reported).

    python -m benchmarks.one_entry [--mib 1024]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .common import markdown_table, timed_bbzip, write_results

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "test" / "512"


def build(folder: Path, mebibytes: int) -> str:
    """The inputs: `mebibytes` random files of 1 MiB and one grey photo; the photo's name."""
    rng = np.random.default_rng(0)
    for number in range(mebibytes):
        (folder / f"blob{number:05d}.bin").write_bytes(rng.bytes(1 << 20))
    photo = sorted(PHOTO.glob("*.png"))[0]
    Image.open(photo).convert("L").save(folder / "photo.png")
    return "photo.png"


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB of stored files (default 1024)")
    args = parser.parse_args()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = work / "big"
        inputs.mkdir()
        photo = f"big/{build(inputs, args.mib)}"
        archive = work / "big.bb"
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            compress_s = timed_bbzip("compress", inputs, "-o", archive, "--cluster", cluster.scheduler_address)
        shutil.rmtree(inputs)
        size = archive.stat().st_size
        for where, source in (("local file", archive), ("fsspec blockcache::file://", f"blockcache::file://{archive}")):
            times = []
            for attempt in range(2):
                out = work / f"out-{len(records)}-{attempt}"
                times.append(timed_bbzip("decompress", source, photo, "-o", out))
                if sorted(p.name for p in out.rglob("*") if p.is_file()) != ["photo.png"]:
                    raise RuntimeError(f"{where}: not the one entry back")
            rows.append([where, f"{size / 1e9:.2f}", round(min(times), 2)])
            records.append({"source": where, "archive_bytes": size, "decompress_one_s": min(times), "runs": times})
    table = markdown_table(["archive read from", "archive GB", "decompress one entry s"], rows)
    note = (f"Built by `bbzip compress` on a local cluster of 2 workers in {compress_s:.0f} s; "
            f"{os.cpu_count()} cores.")
    print(write_results("one-entry", "One entry out of a large archive, whole processes",
                        [(f"{args.mib} files of 1 MiB (random bytes, stored) and one grey photo of 512 px coded by the "
                          "model; the photo decompressed on its own", table + "\n\n" + note)],
                        {"runs": records, "compress_s": compress_s}).read_text())


if __name__ == "__main__":
    main()
