"""The model on every worker of a Dask cluster (models/cluster.py), as a worker plugin. Imported
only on a cluster: it imports Dask.

A model scattered to the workers was one key of the cluster's data, and Dask's active memory
manager drops the replicas of a key that no waiting job needs: between jobs the model could be
left on one worker, and that worker lost lost the whole compress (the job that needed it was
cancelled). A plugin is held by the scheduler and set up on every worker, each one that joins
later (a lost worker's replacement) included.
"""
from __future__ import annotations

from distributed import WorkerPlugin, get_worker


class ModelPlugin(WorkerPlugin):
    def __init__(self, name: str, model):
        self.name, self.model = name, model


def model_named(name: str):
    """The model of plugin `name`, on the worker this runs on."""
    return get_worker().plugins[name].model
