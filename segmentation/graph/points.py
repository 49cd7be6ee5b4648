"""Find the supervoxel under a point given in nanometres, as merge and split requests send them."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ..errors import Invalid
from .ids import LAYER_SHIFT, SUPERVOXEL_LAYER, supervoxel_ids

_SEARCH_RADIUS = 2  # voxels around the point, for clicks that land on a membrane or a neighbour


class PointOutsideVolume(Invalid):
    pass


@lru_cache(maxsize=32)
def _volume(url: str):
    from cloudvolume import CloudVolume

    return CloudVolume(url, mip=0, progress=False, fill_missing=True, bounded=False), threading.Lock()


def _as_supervoxels(labels: np.ndarray) -> np.ndarray:
    layered = (labels >> np.uint64(LAYER_SHIFT)) == SUPERVOXEL_LAYER
    return np.where(layered | (labels == 0), labels, supervoxel_ids(np.where(layered, 0, labels)))


def supervoxels_near(segmentation_url: str, point_nm) -> tuple[int, np.ndarray]:
    """(supervoxel at the point or 0, all supervoxels within a small window, nearest first)."""
    volume, lock = _volume(segmentation_url)
    resolution = np.asarray(volume.resolution, dtype=float)
    scaled = np.floor(np.asarray(point_nm, dtype=float) / resolution)
    lower = np.asarray(volume.voxel_offset)
    upper = lower + np.asarray(volume.volume_size)
    if not np.all(np.isfinite(scaled)) or np.any(scaled < lower) or np.any(scaled >= upper):  # before any cast
        raise PointOutsideVolume(f"point {list(point_nm)} nm is outside the volume")
    voxel = scaled.astype(int)
    if np.any(voxel < lower) or np.any(voxel >= upper):
        raise PointOutsideVolume(f"point {list(point_nm)} nm (voxel {voxel.tolist()}) is outside the volume")
    lo = np.maximum(voxel - _SEARCH_RADIUS, lower)
    hi = np.minimum(voxel + _SEARCH_RADIUS + 1, upper)
    with lock:
        block = np.asarray(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])[..., 0]
    labels = _as_supervoxels(block.astype(np.uint64))
    centre = tuple(voxel - lo)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in block.shape], indexing="ij"), axis=-1)
    distance = (((grid - np.array(centre)) * resolution) ** 2).sum(axis=-1)
    order = np.argsort(distance, axis=None, kind="stable")
    flat = labels.ravel()[order]
    nearest = flat[flat != 0]
    _, first = np.unique(nearest, return_index=True)
    return int(labels[centre]), nearest[np.sort(first)]


def voxel_of_supervoxel(
    segmentation_url: str, supervoxel: int, box, window=(64, 64, 16)
) -> tuple[int, int, int] | None:
    """A voxel inside ``supervoxel`` near the centre of its ``box`` ([x0, y0, z0, x1, y1, z1)), or None.

    Reads one small window (at most ``window`` voxels) rather than the whole box.
    """
    volume, lock = _volume(segmentation_url)
    box = np.asarray(box, dtype=int)
    centre = (box[:3] + box[3:]) // 2
    half = np.asarray(window) // 2
    lo = np.maximum(centre - half, box[:3])
    hi = np.minimum(centre + half, box[3:])
    with lock:
        block = np.asarray(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])[..., 0]
    inside = np.argwhere(_as_supervoxels(block.astype(np.uint64)) == np.uint64(supervoxel))
    if not len(inside):
        return None
    nearest = inside[np.argmin(((inside - (centre - lo)) ** 2).sum(axis=1))]
    return tuple(int(v) for v in nearest + lo)


class OnBackground(Invalid):
    pass


def inside_volume(dataset, voxel) -> np.ndarray:
    """``voxel`` (full-resolution) as int64 when it is inside ``dataset``'s volume; else PointOutsideVolume."""
    lower = np.asarray(dataset.voxel_offset)
    upper = lower + np.asarray(dataset.volume_size)
    if len(voxel) != 3 or any(not -(2**31) <= int(v) < 2**31 for v in voxel):
        raise PointOutsideVolume(f"voxel {list(voxel)} is outside the volume of {dataset.name!r}")
    voxel = np.asarray(voxel, dtype=np.int64)
    if np.any(voxel < lower) or np.any(voxel >= upper):
        raise PointOutsideVolume(
            f"voxel {voxel.tolist()} is outside the volume of {dataset.name!r} "
            f"({lower.tolist()} to {(upper - 1).tolist()})"
        )
    return voxel


def supervoxel_at_voxel(dataset, voxel) -> int:
    """The supervoxel at a full-resolution voxel of ``dataset`` (a segmentation.datasets.Dataset).

    PointOutsideVolume outside it, OnBackground where there is no segment: both say where;
    NoSegmentation (409) for an image-only dataset: no neuron is at any voxel.
    """
    layer = dataset.segmentation_layer("no neuron is at any voxel of an image-only dataset")
    voxel = inside_volume(dataset, voxel)
    point_nm = (voxel + 0.5) * np.asarray(dataset.voxel_resolution, dtype=float)
    sv, _ = supervoxels_near(layer.url, point_nm)
    if not sv:
        raise OnBackground(f"voxel {voxel.tolist()} of {dataset.name!r} is background (no neuron there)")
    return int(sv)


# Status of each point of a bulk lookup (supervoxels_at_voxels).
INSIDE = 0  # inside the volume: its supervoxel (0 on background, which is no error here)
OUTSIDE = 1  # outside the volume's bounds: supervoxel 0


def _chunk_plan(dataset, voxels):
    """The chunks of mip 0 that ``voxels`` fall in, grouped: (volume, lock, lower, upper, chunk size, number
    of points, indices of the points inside, their voxels relative to ``lower``, their chunk cells, those
    indices ordered by chunk, start of each chunk's run in that order)."""
    layer = dataset.segmentation_layer("no neuron is at any voxel of an image-only dataset")
    volume, lock = _volume(layer.url)
    points = np.asarray(voxels)
    if points.size == 0:
        points = points.reshape(0, 3)
    if points.dtype.kind == "O":  # Python ints beyond int64 (a client's JSON): as floats, they are outside
        try:
            points = points.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
    if points.ndim != 2 or points.shape[1] != 3 or points.dtype.kind not in "iuf":
        raise Invalid(f"voxels are numbers (x, y, z) per point, an (N, 3) array; got {points.dtype} {points.shape}")
    lower = np.asarray(dataset.voxel_offset, dtype=np.int64)
    upper = lower + np.asarray(dataset.volume_size, dtype=np.int64)
    if points.dtype.kind == "f":
        points = np.floor(points)
    with np.errstate(invalid="ignore"):  # NaN is outside; compared before any cast (huge values, uint64)
        inside = np.all((points >= lower) & (points < upper), axis=1)
    where = np.flatnonzero(inside)
    local = points[where].astype(np.int64) - lower
    chunk = np.asarray(volume.chunk_size, dtype=np.int64)
    grid = -(-(upper - lower) // chunk)
    cells = local // chunk
    keys = (cells[:, 2] * grid[1] + cells[:, 1]) * grid[0] + cells[:, 0]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else np.zeros(0, int)
    return volume, lock, lower, upper, chunk, len(points), where, local, cells, order, starts


def chunks_touched(dataset, voxels) -> int:
    """How many segmentation chunks :func:`supervoxels_at_voxels` would read for ``voxels`` (points outside
    the volume read none): a caller can refuse work sized by a client before doing it."""
    return len(_chunk_plan(dataset, voxels)[-1])


def supervoxels_at_voxels(dataset, voxels, *, budget=None) -> tuple[np.ndarray, np.ndarray]:
    """(supervoxel id per point as uint64, status per point as uint8) for full-resolution voxels (N,3) of ``dataset``.

    Status is :data:`INSIDE` (the supervoxel, 0 on background) or :data:`OUTSIDE` (supervoxel 0); no point
    raises. Each chunk of mip 0 holding points is read once, whole (clamped to the volume), one at a time;
    a missing chunk is background. ``budget`` (e.g. the module :mod:`segmentation.budget`): its ``check()``
    is called before each chunk read. NoSegmentation (409) for an image-only dataset.
    """
    volume, lock, lower, upper, chunk, count, where, local, cells, order, starts = _chunk_plan(dataset, voxels)
    labels = np.zeros(count, dtype=np.uint64)
    status = np.full(count, OUTSIDE, dtype=np.uint8)
    status[where] = INSIDE
    ends = np.append(starts[1:], len(order))
    for start, end in zip(starts.tolist(), ends.tolist()):
        members = order[start:end]
        corner = cells[members[0]] * chunk
        lo = lower + corner
        hi = np.minimum(lo + chunk, upper)
        if budget is not None:
            budget.check()
        with lock:
            block = np.asarray(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])[..., 0]
        offsets = local[members] - corner
        labels[where[members]] = block[offsets[:, 0], offsets[:, 1], offsets[:, 2]]
        del block
    return _as_supervoxels(labels), status
