"""The local lanes (models/scheduler.py): worker processes that do not depend on a model."""
from __future__ import annotations

import os

from bbzip.models import scheduler
from bbzip.models.scheduler import Job, run_in_order


def _who(model, tag: int, on_images=None) -> tuple:
    """A job: the model it was run with, its tag and the process it ran in."""
    return model, tag, os.getpid()


def _jobs(count: int) -> list[Job]:
    return [Job(_who, (tag,), 1) for tag in range(count)]


def test_workers_are_handed_each_model_with_its_first_job_there():
    """One pool of workers serves jobs with no model, then with one model, then another: each
    job runs with the model it was given, in a worker process, and the results come in order."""
    scheduler.start_workers(2)
    for model in (None, {"name": "first"}, {"name": "second"}, {"name": "first"}):
        results = list(run_in_order(model, _jobs(6), cores=2, workers_only=True))
        assert [tag for _, tag, _ in results] == list(range(6))
        assert all(got == model for got, _, _ in results)
        assert all(pid != os.getpid() for *_, pid in results)


def test_this_process_takes_jobs_too_unless_told_not_to():
    results = list(run_in_order({"name": "m"}, _jobs(8), cores=2))
    assert [tag for _, tag, _ in results] == list(range(8)) and all(got == {"name": "m"} for got, _, _ in results)
