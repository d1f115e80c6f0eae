"""Jobs on the workers of a Dask cluster (`bbzip compress ... --cluster ADDRESS`).

`ClusterLanes` is an executor for models/scheduler.run_in_order: the same jobs, taken in the same
order and their results yielded in it, so an archive written on a cluster is byte for byte the one
the local pool writes (a job is a pure function of the model and its arguments). The model is sent
to every worker once; each job's arguments go with it (a block's images; for reading the inputs,
the files' paths, or their bytes where the workers do not see them: cli/reading.py). A worker lost
mid-job costs Dask a retry of that job on another. Dask is an optional extra (`pip install
"bbzip[cluster]"`), imported only here, and only when a cluster is asked for.
"""
from __future__ import annotations

import contextlib
import os
import uuid
import warnings

from threadpoolctl import threadpool_limits

from . import malloc, scheduler, threads

CONNECT_SECONDS = 10
JOB_KEY = "bbzip-job"  # the prefix of every job's key on the scheduler


class ClusterError(RuntimeError):
    """No cluster to work on: Dask missing, or the scheduler not reachable."""


class ClusterLanes:
    """submit(job) -> a Future on the cluster's workers, which hold the model (sent once, as a
    worker plugin: models/cluster_plugin.py; `close` takes it back)."""

    def __init__(self, client, model):
        from .cluster_plugin import ModelPlugin

        self._client, self._plugin = client, f"bbzip-model-{uuid.uuid4().hex}"
        client.register_plugin(ModelPlugin(self._plugin, model))

    def submit(self, job: scheduler.Job):
        return self._client.submit(_run, self._plugin, job.function, job.args,
                                   key=f"{job_prefix(job.function)}-{uuid.uuid4().hex}")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # (a cluster gone meanwhile keeps nothing of it)
            self._client.unregister_worker_plugin(self._plugin)

    def __enter__(self) -> "ClusterLanes":
        return self

    def __exit__(self, *exc) -> None:
        pass


def job_prefix(function) -> str:
    """The start of the keys of `function`'s jobs, Dask's task prefix for them (which keeps only
    the words of a key that are not all hex digits and hold no underscore)."""
    return f"{JOB_KEY}-{function.__name__.replace('_', '')}"


def _run(plugin: str, function, args):
    """One job on a worker: one thread, as in the local pool's worker processes."""
    from .cluster_plugin import model_named

    model = model_named(plugin)
    malloc.usual_thresholds()
    with threads.limited(1), threadpool_limits(limits=1):
        return function(model, *args)


@contextlib.contextmanager
def on_cluster(address: str):
    """Within the block, models/scheduler.run_in_order hands every job to the cluster at
    `address` (a scheduler's tcp://host:port, or a scheduler file's path); yields its workers'
    thread count (the jobs to keep in flight)."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError('--cluster needs Dask: pip install "bbzip[cluster]"') from None
    if address.endswith(".json") and not os.path.isfile(address):  # Dask would wait for it to appear
        raise ClusterError(f"{address}: no such scheduler file")
    where = {"scheduler_file": address} if address.endswith(".json") else {"address": address}
    try:
        client = Client(**where, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"{address}: no Dask scheduler reached ({error})") from None
    with client:
        lanes = sum(client.nthreads().values())
        if not lanes:
            raise ClusterError(f"{address}: the cluster has no workers")
        sent = {}  # the model, sent once for every run_in_order of this block

        def executor(model):
            if id(model) not in sent:
                sent[id(model)] = ClusterLanes(client, model)
            return sent[id(model)]

        try:
            with scheduler.executing_on(executor), warnings.catch_warnings():
                # Each job carries its images (a block of photo tiles: tens of MB), which Dask warns
                # of once a job: bbzip sends them so on purpose (README, *On a Dask cluster*).
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                yield lanes
        finally:
            for lanes_of_a_model in sent.values():
                lanes_of_a_model.close()
