"""Where import tasks run: a Dask distributed cluster, local or given, through one code path.

``--workers N`` starts a ``LocalCluster`` of N single-threaded worker processes on this machine;
``--scheduler tcp://host:8786`` uses a cluster that is already running (its workers must have
axonlink installed and reach the source and the destination). Either way tasks go through the
same ``Client``: a worker lost mid-task has its task run again elsewhere by the scheduler.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from distributed.diagnostics.plugin import WorkerPlugin
from tqdm import tqdm

from ..parallel import all_results, bounded_results, cluster_slots
from .pyramid import ImportProblem


def worker_environment() -> dict:
    """What Dask sets in a worker process before it starts, less ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KB so that workers give freed memory back at once. Setting it also fixes
    glibc's mmap threshold at 128 KB: every larger array zmesh, numpy or kimimaro allocates is then
    mapped and unmapped anew, its pages faulted in each time. Meshing on a LocalCluster took 15 %
    longer with it (56.7 s against 49.2 s, 3× the system time, same chunks, this 2-core machine),
    while peak memory stays bounded by the task box either way. Thread caps (``OMP_NUM_THREADS`` …)
    are kept. A cluster given with ``--scheduler`` keeps its own settings (docs/deploy.md)."""
    import dask
    import distributed  # noqa: F401  (loads Dask's distributed defaults into dask.config)

    environment = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environment.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environment


class NoProfiler(WorkerPlugin):
    """A Dask worker plugin that stops the worker's statistical profiler, on every worker of the
    cluster, those that join later included (a nanny's restart of a killed worker).

    The profiler calls ``sys._current_frames()`` every 10 ms. When that call starts a garbage
    collection, finalizers run under the interpreter's thread-state lock, and CloudFiles' S3
    connection pools take a lock in theirs (``ConnectionPool.__del__``): the worker process then
    stops for good, every thread waiting. Seen in about half the imports writing to an S3 server
    (SeaweedFS) with two worker processes: answers sat unread in the sockets and py-spy showed the
    worker's main thread inside ``_PyThread_CurrentFrames`` → ``gc_collect_main``, waiting on a
    lock. With the profiler stopped, none of the same runs stalled. Our tasks lose nothing: their
    timings come from their own results."""

    name = "axonlink-no-profiler"

    def setup(self, worker) -> None:
        for name in ("profile", "profile-cycle"):
            callback = worker.periodic_callbacks.pop(name, None)
            if callback is not None:
                callback.stop()


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None):
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as error:
            raise ImportProblem(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        with client:
            client.register_plugin(NoProfiler())
            yield client
        return
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}),
        LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(NoProfiler())
        yield client


def run_stage(
    client,
    label: str,
    function,
    tasks: list,
    total_voxels: int,
    progress: bool = True,
    unit: str = "Vx",
    cpu_bound: bool = False,
) -> list[dict]:
    """Run ``function`` on every task (done in any order) and return their results; the bar counts
    each result's ``voxels`` (MVx/s and ETA; or another ``unit``). The first task that fails cancels
    the rest and its error is raised here. ``cpu_bound`` tasks (skeletonizing) run at most one per
    core of each host (:mod:`segmentation.parallel`); the others, which wait on reads and writes
    too, are all handed to the scheduler at once."""
    results: list[dict] = []
    if not tasks:
        return results
    bar = tqdm(total=total_voxels, desc=label, unit=unit, unit_scale=True, disable=not progress, smoothing=0.1)
    try:
        if cpu_bound:
            done = (result for _, result in bounded_results(client, function, tasks, cluster_slots(client)))
        else:
            done = all_results(client, function, tasks)
        for result in done:
            results.append(result)
            bar.update(result["voxels"])
    finally:
        bar.close()
    return results
