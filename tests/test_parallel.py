"""CPU-bound tasks run at most one per core of each host, on a real Dask ``LocalCluster`` with more
worker processes than this machine has cores (as ``axonlink import --workers 4`` on a 2-core laptop)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from segmentation.importing.cluster import dask_client
from segmentation.parallel import all_results, bounded_map, bounded_results, cluster_slots, pool_processes, usable_cores

WORKERS = 4


def _timed_task(task: tuple) -> int:
    """Sleep, and record when this task ran (in a file: the task runs in another process)."""
    folder, index, seconds = task
    started = time.time()
    time.sleep(seconds)
    Path(folder, f"{index}.span").write_text(f"{started} {time.time()}")
    if index == -1:
        raise ValueError("task -1 fails")
    return index * index


def _most_at_once(folder: Path) -> int:
    spans = [tuple(map(float, p.read_text().split())) for p in folder.glob("*.span")]
    moments = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda m: (m[0], m[1]))
    most = running = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def _environment() -> dict:
    return {name: os.environ.get(name) for name in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


@pytest.fixture(scope="module")
def client():
    """The import's own cluster (``--workers 4``)."""
    with dask_client(WORKERS) as client:
        client.wait_for_workers(WORKERS, timeout=60)
        yield client


def test_import_workers_keep_glibcs_adaptive_malloc_and_one_thread_for_numpy(client):
    """Dask's MALLOC_TRIM_THRESHOLD_ made meshing 15 % slower; the thread caps stay."""
    environments = client.run(_environment)
    assert len(environments) == WORKERS
    assert all(env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"} for env in environments.values())


def test_a_cluster_of_more_workers_than_cores_runs_one_task_per_core_and_keeps_the_order(client, tmp_path):
    slots = cluster_slots(client)
    assert slots == min(WORKERS, usable_cores())
    tasks = [(str(tmp_path), i, 0.3) for i in range(4 * WORKERS)]
    assert bounded_map(client, _timed_task, tasks, slots) == [i * i for i in range(len(tasks))]
    assert len(list(tmp_path.glob("*.span"))) == len(tasks)
    assert _most_at_once(tmp_path) == slots  # the window is full, and never more than full


def test_a_wider_window_lets_every_worker_run(client, tmp_path):
    """The same tasks with the window at the worker count: the check above could fail."""
    tasks = [(str(tmp_path), i, 0.3) for i in range(2 * WORKERS)]
    list(bounded_results(client, _timed_task, tasks, WORKERS))
    assert _most_at_once(tmp_path) == WORKERS


def test_the_first_failure_is_raised_and_later_tasks_are_not_started(client, tmp_path):
    tasks = [(str(tmp_path), -1, 0.0)] + [(str(tmp_path), i, 0.2) for i in range(1, 20)]
    with pytest.raises(ValueError, match="task -1 fails"):
        bounded_map(client, _timed_task, tasks, 1)
    assert len(list(tmp_path.glob("*.span"))) == 1  # one in flight: nothing after the failure ran


def test_io_bound_tasks_all_run_at_once_and_a_failure_is_raised(client, tmp_path):
    tasks = [(str(tmp_path), i, 0.3) for i in range(WORKERS)]
    assert sorted(all_results(client, _timed_task, tasks)) == [i * i for i in range(WORKERS)]
    assert _most_at_once(tmp_path) == WORKERS  # not held to the cores
    with pytest.raises(ValueError, match="task -1 fails"):
        list(all_results(client, _timed_task, [(str(tmp_path), -1, 0.0)]))


def test_a_local_pool_has_at_most_one_process_per_usable_core():
    cores = len(os.sched_getaffinity(0))
    assert usable_cores() == cores
    assert pool_processes(64) == cores
    assert pool_processes(1) == 1
    assert pool_processes(0) == 1
