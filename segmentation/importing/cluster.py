"""Where import tasks run: a Dask distributed cluster, local or given, through one code path.

``--workers N`` starts a ``LocalCluster`` of N single-threaded worker processes on this machine;
``--scheduler tcp://host:8786`` uses a cluster that is already running (its workers must have
axonlink installed and reach the source and the destination). Either way tasks go through the
same ``Client``: a worker lost mid-task has its task run again elsewhere by the scheduler.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from tqdm import tqdm

from .pyramid import ImportProblem


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as error:
            raise ImportProblem(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_stage(
    client, label: str, function, tasks: list, total_voxels: int, progress: bool = True, unit: str = "Vx"
) -> list[dict]:
    """Run ``function`` on every task (done in any order) and return their results; the bar counts
    each result's ``voxels`` (MVx/s and ETA; or another ``unit``). The first task that fails cancels
    the rest and its error is raised here."""
    from dask.distributed import as_completed

    results: list[dict] = []
    if not tasks:
        return results
    bar = tqdm(total=total_voxels, desc=label, unit=unit, unit_scale=True, disable=not progress, smoothing=0.1)
    futures = client.map(function, tasks, pure=False)
    try:
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            bar.update(result["voxels"])
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        bar.close()
    return results
