"""``axonlink mesh``: mesh a dataset's supervoxel segmentation chunk by chunk, one fragment per root
per chunk, resumable, with progress.

Each chunk (:mod:`~segmentation.meshing.grid`) is read with one voxel of overlap, relabelled from
supervoxels to the roots of the graph at the run's operation, and meshed once for all its roots
(zmesh meshes every label of an array in one pass). Chunks are independent: with ``workers`` > 1
they are meshed in that many processes, each opening the graph's memory-mapped base itself.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import fastremap
import numpy as np

from ..errors import Invalid
from ..parallel import bounded_map, bounded_results, cluster_slots, pool_processes
from .grid import MeshGrid
from .levels import batches
from .store import MeshStore, join_in
from .surfaces import SurfaceParams, mesh_labels


class MeshingError(Invalid):
    """A dataset that cannot be meshed (no graph, a volume its graph does not know …)."""


def read_block(volume, start, stop, supervoxel_ids: bool = True) -> np.ndarray:
    """The voxels [start, stop) of a CloudVolume: as supervoxel ids (layer 1, what a graph knows), or
    as stored (``supervoxel_ids=False``: the labels a dataset without a graph shows)."""
    from ..graph.ingest import as_supervoxel_ids

    block = np.asarray(volume[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]])[..., 0]
    if supervoxel_ids and block.size:
        return as_supervoxel_ids(block)
    return block.astype(np.uint64, copy=False)


def mesh_chunk(volume, graph, grid: MeshGrid, coord, seq: int | None, params: SurfaceParams):
    """(supervoxels in the chunk, their roots at operation ``seq``, Draco bytes by root); without a
    graph (``graph`` None) every stored label is its own root."""
    from ..graph import GraphError

    start, stop = grid.with_overlap(coord)
    core_start, core_stop = grid.core(coord)
    block = read_block(volume, start, stop, supervoxel_ids=graph is not None)
    core = block[tuple(slice(0, int(b - a)) for a, b in zip(core_start, core_stop))]
    present = fastremap.unique(block)
    present = present[present != 0]
    if not len(present):
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), {}
    if graph is None:
        labels = fastremap.unique(core)
        labels = labels[labels != 0]
        return labels, labels, mesh_labels(block, start, grid.resolution, set(labels.tolist()), params)
    try:
        roots = graph.roots_at_positions(graph.positions(present), seq)
    except GraphError as error:
        raise MeshingError(f"chunk {MeshGrid.name(coord)}: {error} (is the graph ingested from this volume?)") from None
    root_of = dict(zip(present.tolist(), roots.tolist()))
    rooted = fastremap.remap(block, root_of, preserve_missing_labels=True)
    core_svs = fastremap.unique(core)
    core_svs = core_svs[core_svs != 0]
    core_roots = np.array([root_of[int(s)] for s in core_svs.tolist()], dtype=np.uint64)
    meshes = mesh_labels(rooted, start, grid.resolution, set(core_roots.tolist()), params)
    return core_svs, core_roots, meshes


def mesh_supervoxels(volume, grid: MeshGrid, coord, supervoxels, params: SurfaceParams) -> bytes | None:
    """One fragment showing only ``supervoxels`` within a chunk (after an edit cut a stored one)."""
    start, stop = grid.with_overlap(coord)
    block = read_block(volume, start, stop)
    inside = np.isin(block, np.asarray(supervoxels, dtype=np.uint64)).astype(np.uint8)
    return mesh_labels(inside, start, grid.resolution, {1}, params).get(1)


def open_volume(url: str):
    from cloudvolume import CloudVolume

    return CloudVolume(url, mip=0, fill_missing=True, progress=False)


# ---- a run ---------------------------------------------------------------------------------
_worker: dict = {}


def _start_worker(database_url: str, dataset: str, url: str, with_graph: bool) -> None:
    from ..graph import Graph

    graph = Graph.open(database_url, dataset) if with_graph else None
    _worker.update(graph=graph, volume=open_volume(url))


def _run_chunk_on_cluster(setup: tuple, generation_folder: str, grid: MeshGrid, seq, params, coord) -> int:
    """``_run_chunk`` in a Dask worker: the worker opens the graph and the volume once per ``setup``
    (database, dataset, layer, graph or not, home), for every chunk of the run it is given."""
    if _worker.get("setup") != setup:
        *opening, home = setup
        os.environ["AXONLINK_HOME"] = home  # where the graph's base files are (a worker may not know)
        _start_worker(*opening)
        _worker["setup"] = setup
    return _run_chunk(generation_folder, grid, coord, seq, params)


def _run_chunk(generation_folder: str, grid: MeshGrid, coord, seq, params: SurfaceParams) -> int:
    from .store import Generation

    svs, roots, meshes = mesh_chunk(_worker["volume"], _worker["graph"], grid, coord, seq, params)
    Generation(generation_folder).write_chunk(MeshGrid.name(coord), svs, roots, meshes)
    return int(np.prod(np.asarray(grid.core(coord)[1]) - np.asarray(grid.core(coord)[0])))


def _spread(run, processes: int):
    """A ``join`` for :meth:`Generation.finish` that cuts a level's parents into runs of about equal
    bytes, a few per process (so one large neuron does not leave the others idle), and has ``run``
    join each run in a process; the blobs come back in order."""

    def join(parts: list) -> list[bytes]:
        runs = batches(parts, max(1, processes) * 4)
        return [blob for blobs in run(runs) for blob in blobs]

    return join


def mesh_dataset(
    database_url: str,
    home,
    dataset: str,
    *,
    chunk=None,
    params: SurfaceParams | None = None,
    workers: int = 1,
    restart: bool = False,
    progress: bool = True,
    client=None,
) -> dict:
    """Mesh ``dataset`` (resuming an unfinished run with the same settings) and make it the meshes in use.

    Chunks are meshed here (``workers`` 1), in ``workers`` processes, or as tasks of a Dask
    ``client`` (``axonlink import``: its workers must reach the volume, the database and ``home``).

    With a graph, fragments show its roots (for the graphene source); without one, the stored labels
    (served as Neuroglancer multi-resolution meshes, :mod:`.multilod`)."""
    from tqdm import tqdm

    from ..datasets import Datasets
    from ..graph import Graph, GraphNotIngested

    params = params or SurfaceParams()
    layer = Datasets(database_url).get(dataset).layer("segmentation")
    try:
        graph = Graph.open(database_url, dataset)
    except (GraphNotIngested, LookupError):
        graph = None  # mesh the stored labels
    volume = open_volume(layer.url)
    grid = MeshGrid.for_volume(volume.voxel_offset, volume.volume_size, volume.underlying, volume.resolution, chunk)
    store = MeshStore(home, dataset)
    generation = store.start(layer.url, grid, params, graph.seq if graph else None, restart=restart)
    seq = generation.document()["seq"]
    at = None if graph is None or seq >= graph.seq else seq
    done = generation.parts_done()
    todo = [c for c in grid.coords() if MeshGrid.name(c) not in done]
    total = sum(1 for _ in grid.coords())
    started = time.perf_counter()
    voxels = 0
    bar = tqdm(total=total, initial=total - len(todo), desc="meshes", unit="chunk", disable=not progress)
    folder = generation.location  # a path or a URL: workers elsewhere write there too
    try:
        if client is not None:
            slots = cluster_slots(client)  # CPU-bound: at most one task per core of each host
            setup = (database_url, dataset, layer.url, graph is not None, str(home))
            chunk_task = partial(_run_chunk_on_cluster, setup, folder, grid, at, params)
            for _, meshed in bounded_results(client, chunk_task, todo, slots):
                voxels += meshed
                bar.update(1)
            bar.close()
            generation.finish(
                grid, join=_spread(lambda runs: bounded_map(client, partial(join_in, folder), runs, slots), slots)
            )
        elif workers <= 1:
            _worker.update(graph=graph, volume=volume)
            for coord in todo:
                voxels += _run_chunk(folder, grid, coord, at, params)
                bar.update(1)
            bar.close()
            generation.finish(grid)
        else:
            processes = pool_processes(workers)  # more processes than cores only slow zmesh down
            context = get_context("spawn")  # not fork: the parent holds database connections and threads
            with ProcessPoolExecutor(
                processes,
                mp_context=context,
                initializer=_start_worker,
                initargs=(database_url, dataset, layer.url, graph is not None),
            ) as pool:
                futures = [pool.submit(_run_chunk, folder, grid, c, at, params) for c in todo]
                for future in futures:
                    voxels += future.result()
                    bar.update(1)
                bar.close()
                generation.finish(
                    grid,
                    join=_spread(lambda runs: list(pool.map(join_in, [folder] * len(runs), runs)), processes),
                )
    finally:
        bar.close()
        _worker.clear()
    store.publish(generation)
    seconds = time.perf_counter() - started
    index = generation.index()
    return {
        "generation": generation.number,
        "seq": seq,
        "chunks": total,
        "chunks_meshed": len(todo),
        "chunk_voxels": list(grid.chunk),
        "fragments": int((index["group_nbytes"] > 0).sum()),
        "megabytes": round(float(index["group_nbytes"].sum()) / 1e6, 2),
        "seconds": round(seconds, 2),
        "megavoxels_per_second": round(voxels / 1e6 / seconds, 2) if seconds > 0 and voxels else None,
    }
