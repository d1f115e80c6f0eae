"""bbzip on a Dask cluster against this machine's own cores: the same .npy of MNIST test images
compressed and decompressed by `-T 1`, `-T 2` and `--cluster` on a local Dask cluster of 1 and
2 worker processes (one thread each), whole `bbzip` processes, every archive byte-identical to
the -T 1 one and every restored file identical to the input. The local cluster shows the
cluster path's own cost (the model sent to each worker, every job's images pickled to it and its
result back); a real cluster adds the network.

    python -m benchmarks.cluster [--quick] [--images N]

Needs the cluster extra (`pip install -e ".[cluster]"`).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bbzip.models.data import load_named

from .common import markdown_table, timed_bbzip, write_results


def run(work: Path, count: int) -> tuple[list, list]:
    from distributed import LocalCluster

    source = work / "images.npy"
    np.save(source, load_named("mnist", "test")[:count])
    reference, rows, records = None, [], []
    setups = [("-T 1", None, ["-T", 1]), ("-T 2", None, ["-T", 2]), ("cluster, 1 worker", 1, []),
              ("cluster, 2 workers", 2, [])]
    for label, workers, options in setups:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None) if workers else None
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
        records.append({"setup": label, "images": count, "archive_bytes": len(reference), "compress_s": compress_s,
                        "decompress_s": decompress_s})
        rows.append([label, count, len(reference), round(compress_s, 2), round(count / compress_s),
                     round(decompress_s, 2), round(count / decompress_s)])
    return rows, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images")
    parser.add_argument("--images", type=int, default=10000, help="MNIST test images (default 10,000)")
    args = parser.parse_args()
    count = 1000 if args.quick else args.images
    with tempfile.TemporaryDirectory() as tmp:
        rows, records = run(Path(tmp), count)
    table = markdown_table(["setup", "images", "archive bytes", "compress s", "compress images/s", "decompress s",
                            "decompress images/s"], rows)
    name = "cluster-quick" if args.quick else "cluster"
    print(write_results(name, "bbzip on a local Dask cluster against -T 1 and -T 2",
                        [(f"{count} grey MNIST images, one .npy, default model (identical archives)", table)],
                        {"runs": records}).read_text())


if __name__ == "__main__":
    main()
