"""CPU-bound tasks on a Dask cluster or a process pool, never more at once than a host has cores.

Meshing (zmesh's simplifier) and skeletonizing (kimimaro) are CPU- and memory-bound: two tasks on
one core do not finish sooner than one after the other, they evict each other's caches. Measured
on a 2-core machine, meshing the same 64 chunks took 44.5 s with 2 processes and 60 s with 4
(35 % more CPU seconds; docs/performance.md). ``axonlink import --workers 4`` on a laptop with 2
cores, or a cluster whose workers outnumber their hosts' cores, should not pay that. So these
tasks are handed out through a window: per host, at most as many in flight as it has cores (or
threads, if its workers have fewer).
"""

from __future__ import annotations

import os
from collections import defaultdict
from urllib.parse import urlparse


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow;
    ``os.cpu_count`` would count the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pool_processes(asked: int) -> int:
    """Processes for a local pool: what was asked, at most one per usable core."""
    return max(1, min(int(asked), usable_cores()))


def cluster_slots(client) -> int:
    """Tasks a Dask cluster runs at once with none sharing a core: for each host, the smaller of its
    cores (as its workers see them) and its workers' threads, summed over the hosts."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not workers:
        return 1
    cores = client.run(usable_cores)  # address -> cores, asked of each worker
    threads_on: dict[str, int] = defaultdict(int)
    cores_on: dict[str, int] = defaultdict(int)
    for address, worker in workers.items():
        host = worker.get("host") or urlparse(address).hostname or address
        threads_on[host] += int(worker.get("nthreads") or 1)
        cores_on[host] = max(cores_on[host], int(cores.get(address) or 1))
    return max(1, sum(min(threads_on[host], cores_on[host]) for host in threads_on))


def bounded_results(client, function, tasks: list, slots: int):
    """Run ``function(task)`` for every task on the cluster with at most ``slots`` in flight, yielding
    ``(index, result)`` as each finishes. The first failure cancels what is in flight and is raised."""
    from dask.distributed import as_completed

    pending = iter(enumerate(tasks))
    index_of: dict = {}

    def submit_next(done) -> None:
        for index, task in pending:
            future = client.submit(function, task, pure=False)
            index_of[future] = index
            done.add(future)
            return

    done = as_completed()
    for _ in range(max(1, slots)):
        submit_next(done)
    try:
        for future in done:
            result = future.result()
            yield index_of.pop(future), result
            submit_next(done)
    except BaseException:
        client.cancel(list(index_of))
        raise


def all_results(client, function, tasks: list):
    """Run ``function(task)`` for every task, all handed to the scheduler at once, yielding each
    result as it finishes (for tasks that also wait on reads and writes). The first failure cancels
    the rest and is raised."""
    from dask.distributed import as_completed

    futures = client.map(function, tasks, pure=False)
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        client.cancel(futures)
        raise


def bounded_map(client, function, tasks: list, slots: int) -> list:
    """The results of ``function`` over ``tasks``, in order, at most ``slots`` tasks in flight."""
    results: list = [None] * len(tasks)
    for index, result in bounded_results(client, function, tasks, slots):
        results[index] = result
    return results
