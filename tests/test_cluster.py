"""bbzip on a Dask cluster (models/cluster.py, `--cluster`): the archive written there is byte
for byte the one the local pool writes, and the cluster decodes it back. Skipped where the
cluster extra (Dask) is not installed."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.unlike_mnist import image_sets
from bbzip.cli.main import cli
from bbzip.models.cluster import JOB_KEY

distributed = pytest.importorskip("distributed", reason="the cluster extra (Dask) is not installed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address


def _run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _jobs_run_there(address) -> bool:
    with distributed.Client(address, set_as_default=False) as client:
        return JOB_KEY in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))


@pytest.mark.parametrize("kind", ["grey with classic images", "binary"])
def test_a_cluster_writes_the_archive_the_local_pool_writes(tmp_path, cluster, grey_test_images, kind):
    images = grey_test_images[:300]
    if kind == "binary":
        images = (images >= 128).astype(np.uint8)
    else:  # images unlike MNIST among them: the fallback's chunks run on the cluster too
        images = np.concatenate([images, image_sets(binary=False, count=20)["inverted"]])
    np.save(tmp_path / "stack.npy", images)
    _run("compress", tmp_path / "stack.npy", "-o", tmp_path / "here.bb", "--block-images", 100, "-T", 2)
    _run("compress", tmp_path / "stack.npy", "-o", tmp_path / "there.bb", "--block-images", 100, "--cluster", cluster)
    assert _jobs_run_there(cluster)
    assert (tmp_path / "there.bb").read_bytes() == (tmp_path / "here.bb").read_bytes()
    _run("test", tmp_path / "there.bb", "--cluster", cluster)
    _run("decompress", tmp_path / "there.bb", "-o", tmp_path / "out", "--cluster", cluster)
    assert (tmp_path / "out" / "stack.npy").read_bytes() == (tmp_path / "stack.npy").read_bytes()


def test_a_cluster_that_cannot_be_reached_is_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.bb"),
                                      "--cluster", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "no such scheduler file" in result.output and not (tmp_path / "x.bb").exists()


def _busy_workers(dask_scheduler) -> list[str]:
    """The workers coding one of bbzip's jobs now (run on the scheduler)."""
    return [worker.address for worker in dask_scheduler.workers.values()
            if any(str(task.key).startswith(JOB_KEY) for task in worker.processing)]


def test_a_worker_killed_mid_job_costs_a_retry_not_the_archive(tmp_path, cluster, grey_test_images):
    """A worker process killed while it codes a block (its nanny starts another): Dask runs the
    lost job again, and the archive is byte for byte the one the local pool writes. (The last
    test of the module's cluster: its worker is started again, holding nothing.)"""
    np.save(tmp_path / "stack.npy", grey_test_images[:400])
    _run("compress", tmp_path / "stack.npy", "-o", tmp_path / "here.bb", "--block-images", 25, "-T", 2)
    outcome = {}
    arguments = ["compress", str(tmp_path / "stack.npy"), "-o", str(tmp_path / "there.bb"), "--block-images", "25",
                 "--cluster", cluster]
    with distributed.Client(cluster, set_as_default=False) as client:
        processes = client.run(os.getpid)  # worker address -> its process
        compressing = threading.Thread(target=lambda: outcome.update(result=CliRunner().invoke(cli, arguments)))
        compressing.start()
        killed = None
        while compressing.is_alive() and killed is None:
            busy = client.run_on_scheduler(_busy_workers)
            if busy:
                killed = busy[0]
                os.kill(processes[killed], signal.SIGKILL)
            time.sleep(0.01)
        compressing.join()
    assert killed is not None, "no job was seen running"
    assert outcome["result"].exit_code == 0, outcome["result"].output
    assert (tmp_path / "there.bb").read_bytes() == (tmp_path / "here.bb").read_bytes()
