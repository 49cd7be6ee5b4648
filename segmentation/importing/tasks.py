"""One import task, run on a Dask worker: read a box, write it and the mips below it, mark it done.

Everything a task needs travels in :class:`PyramidTask` (small, picklable: the source object opens
its file in the worker). The marker file is written last, so a task killed half-way has no marker
and runs again whole on the next attempt; rewriting its chunks gives the same chunks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from cloudvolume import CloudVolume

from ..graph.ids import LAYER_SHIFT, LabelLayoutCheck, LabelLayoutError
from ..precomputed import downsamples
from . import place as stored
from .pyramid import FACTOR, ImportProblem
from .shard_writer import write_shards


@dataclass(frozen=True)
class PyramidTask:
    layer_url: str  # the layer being written (file://…, s3://…, gs://…)
    kind: str  # "image" or "segmentation"
    dtype: str  # as stored
    read_mip: int
    write_mips: tuple[int, ...]
    start: tuple[int, int, int]  # box at read_mip, relative to the layer's origin
    stop: tuple[int, int, int]
    marker: str  # file written once the box is done (a path or URL, beside the layers)
    plan: str  # the import's identity: workers kept between imports open each layer afresh
    source: object = None  # a VolumeSource, for read_mip 0
    background: int | None = None  # a label that means background: stored as 0

    @property
    def voxels(self) -> int:
        return int(np.prod([b - a for a, b in zip(self.start, self.stop)]))

    def where(self) -> str:
        return "x {}..{}, y {}..{}, z {}..{}".format(*(v for pair in zip(self.start, self.stop) for v in pair))


def run_task(task: PyramidTask) -> dict:
    """Do ``task``; returns what the progress bars and the summary count."""
    started = time.perf_counter()
    data = _read(task)
    highest = int(data.max()) if task.kind == "segmentation" and data.size else 0
    if task.read_mip == 0 and highest >> LAYER_SHIFT:  # only then is listing the labels worth it
        _check_layout(task, data, highest)
    for mip in task.write_mips:
        if mip == task.read_mip:
            _write(task, mip, data)
    below = [m for m in task.write_mips if m > task.read_mip]
    if below:
        down = downsamples(data, task.kind, below[-1] - task.read_mip, FACTOR)
        for mip in below:
            _write(task, mip, np.asarray(down[mip - task.read_mip]).astype(task.dtype, copy=False))
    stored.put(task.marker, b"done\n")  # last: a task killed before this runs again whole
    return {
        "voxels": task.voxels,
        "highest_label": highest,
        "seconds": time.perf_counter() - started,
        "process": os.getpid(),
    }


def _read(task: PyramidTask) -> np.ndarray:
    if task.read_mip == 0:
        data = np.asarray(task.source.read(task.start, task.stop))
        if data.shape != tuple(b - a for a, b in zip(task.start, task.stop)):
            raise ImportProblem(f"{task.source.description} gave {data.shape} voxels for {task.where()}")
        return _as_stored(task, data)
    volume = _volume(task.layer_url, task.read_mip, task.plan)
    origin = volume.voxel_offset
    box = tuple(slice(o + a, o + b) for o, a, b in zip(origin, task.start, task.stop))
    return np.asarray(volume[box])[..., 0]


def _as_stored(task: PyramidTask, data: np.ndarray) -> np.ndarray:
    if task.kind != "segmentation":
        return data.astype(task.dtype, copy=False)  # in any memory order: the chunk encoder takes Fortran's
    if task.background is not None:
        data = np.where(data == np.asarray(task.background).astype(data.dtype), 0, data)
    if data.dtype.kind == "i" and data.size and data.min() < 0:
        smallest = int(data.min())
        raise ImportProblem(
            f"the segmentation has negative labels (smallest {smallest}) at {task.where()}: labels must be 0 "
            f"(background) or positive{_background_hint(smallest)}"
        )
    return data.astype(task.dtype, copy=False)


def _check_layout(task: PyramidTask, data: np.ndarray, highest: int) -> None:
    """Labels of 2**56 or more must be layer-1 supervoxel ids (the graph's id layout)."""
    try:
        LabelLayoutCheck()(data, task.where())
    except LabelLayoutError as error:
        raise ImportProblem(f"the segmentation at {error}{_background_hint(highest)}") from None


def _background_hint(value: int) -> str:
    """Tools mark background with -1 or the largest value of the type instead of 0."""
    if value in (-1, 2**64 - 1, 2**63 - 1):
        return f"; if {value} marks background, say so with --background {value}"
    return ""


def _write(task: PyramidTask, mip: int, data: np.ndarray) -> None:
    volume = _volume(task.layer_url, mip, task.plan)
    factor = [f ** (mip - task.read_mip) for f in FACTOR]
    relative = [a // f for a, f in zip(task.start, factor)]
    scale = volume.info["scales"][mip]
    if "sharding" in scale:
        write_shards(task.layer_url, scale, relative, data)
        return
    box = tuple(slice(o + a, o + a + n) for o, a, n in zip(volume.voxel_offset, relative, data.shape))
    volume[box] = data[..., np.newaxis]


@lru_cache(maxsize=64)
def _volume(url: str, mip: int, _plan: str) -> CloudVolume:
    """One CloudVolume per layer and mip in each worker process (each reads the info once)."""
    return CloudVolume(url, mip=mip, progress=False, fill_missing=False, non_aligned_writes=False)
