"""``axonlink import --skeletons``: skeletons of every label of the imported segmentation, on Dask.

Two sweeps, as igneous does it: each block of the mesh grid (read with one voxel more on its high
faces) is skeletonized with kimimaro and its pieces saved under ``.import/skeletons/``; then each
label's pieces are joined and written as ``<layer>/skeletons/<label>``. The layer's info names the
skeleton directory only once every label is written, so a viewer never sees half of them; a rerun
skips the blocks already done.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume

from .. import skeletons
from ..meshing.grid import MeshGrid
from . import place as stored
from .cluster import run_stage

LABELS_PER_JOIN = 2000  # labels joined by one task (each task reads the blocks its labels touch)


@dataclass(frozen=True)
class BlockTask:
    layer_url: str
    start: tuple[int, int, int]  # voxels, the volume's frame (with the overlap)
    stop: tuple[int, int, int]
    out: str  # the block's pieces (.npz), written last

    @property
    def voxels(self) -> int:
        return int(np.prod([b - a for a, b in zip(self.start, self.stop)]))


def skeletonize_block(task: BlockTask) -> dict:
    """One block's pieces: label, and each piece's precomputed bytes, in one .npz."""
    volume = CloudVolume(task.layer_url, mip=0, progress=False, fill_missing=False)
    box = tuple(slice(a, b) for a, b in zip(task.start, task.stop))
    labels = np.asarray(volume[box])[..., 0]
    pieces = skeletons.skeletonize_block(labels, task.start, volume.resolution)
    found = sorted(pieces)
    blobs = [skeletons.encode(pieces[label]) for label in found]
    buffer = io.BytesIO()
    np.savez(
        buffer,
        labels=np.asarray(found, dtype=np.uint64),
        sizes=np.asarray([len(b) for b in blobs], dtype=np.int64),
        data=np.frombuffer(b"".join(blobs), dtype=np.uint8),
    )
    stored.put(task.out, buffer.getvalue())
    return {"voxels": task.voxels, "process": os.getpid()}


def join_labels(job: tuple) -> dict:
    """Join the pieces of some labels (``job``: the layer, and per label the block files holding it)
    and write each label's skeleton file."""
    layer_url, by_label = job
    cache: dict[str, dict[int, bytes]] = {}
    files = []
    for label, blocks in by_label:
        pieces = []
        for block in blocks:
            if block not in cache:
                cache[block] = _read_pieces(block)
            pieces.append(skeletons.decode(cache[block][label], label))
        files.append((str(label), skeletons.encode(skeletons.joined(pieces, label))))
    CloudFiles(f"{layer_url}/{skeletons.SKELETON_DIR}").puts(files, compress=None, raw=True)
    return {"voxels": len(files), "bytes": sum(len(data) for _, data in files), "process": os.getpid()}


def skeletonize_layer(client, layer_url: str, progress_dir: str, progress: bool = True) -> dict:
    """Skeletons of the segmentation at ``layer_url`` (done once: its info then names them)."""
    started = time.perf_counter()
    volume = CloudVolume(layer_url, mip=0, progress=False)
    if volume.info.get("skeletons"):
        return {"skeletons": "present"}
    grid = MeshGrid.for_volume(volume.voxel_offset, volume.volume_size, volume.underlying, volume.resolution)
    folder = f"{progress_dir}/skeletons"
    tasks = []
    for coord in grid.coords():
        start, stop = grid.with_overlap(coord)
        out = f"{folder}/{MeshGrid.name(coord)}.npz"
        tasks.append(BlockTask(layer_url, tuple(int(v) for v in start), tuple(int(v) for v in stop), out))
    finished = stored.names_in(folder)
    todo = [task for task in tasks if task.out.rsplit("/", 1)[-1] not in finished]
    run_stage(
        client, "skeletons", skeletonize_block, todo, sum(t.voxels for t in todo), progress=progress, cpu_bound=True
    )

    blocks_of: dict[int, list[str]] = {}
    for task in tasks:
        with np.load(io.BytesIO(stored.get(task.out))) as found:
            for label in found["labels"].tolist():
                blocks_of.setdefault(int(label), []).append(task.out)
    labels = sorted(blocks_of)
    jobs = [
        (layer_url, [(label, blocks_of[label]) for label in labels[i : i + LABELS_PER_JOIN]])
        for i in range(0, len(labels), LABELS_PER_JOIN)
    ]
    joined = run_stage(
        client, "skeleton joins", join_labels, jobs, len(labels), progress=progress, unit="label", cpu_bound=True
    )

    files = CloudFiles(layer_url)
    files.put_json(f"{skeletons.SKELETON_DIR}/info", skeletons.info())
    volume.info["skeletons"] = skeletons.SKELETON_DIR
    volume.commit_info()
    return {
        "skeletons": len(labels),
        "skeleton_bytes": sum(r["bytes"] for r in joined),
        "skeleton_seconds": round(time.perf_counter() - started, 2),
    }


def _read_pieces(path: str) -> dict[int, bytes]:
    with np.load(io.BytesIO(stored.get(path))) as found:
        data = found["data"].tobytes()
        ends = np.cumsum(found["sizes"])
        starts = ends - found["sizes"]
        return {int(label): data[a:b] for label, a, b in zip(found["labels"].tolist(), starts, ends)}
