"""The supervoxel adjacency graph of a segmentation volume, built chunk by chunk.

Inside each chunk cc3d counts face contacts (``cc3d.contacts`` with surface
area); across each chunk's lower x, y and z faces the touching label pairs are
counted with numpy against the last plane of the neighbouring chunk, so every
contact is counted exactly once and no voxel loop runs in Python.
"""

from __future__ import annotations

import itertools

import cc3d
import fastremap
import numpy as np
from tqdm import tqdm


def _face_contacts(here: np.ndarray, before: np.ndarray, area: float, into: dict) -> None:
    """Add contacts between two touching planes (same shape) to ``into``."""
    touching = (here != before) & (here != 0) & (before != 0)
    if not touching.any():
        return
    a, b = here[touching], before[touching]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    for (x, y), count in zip(unique.tolist(), counts.tolist()):
        into[(x, y)] = into.get((x, y), 0.0) + count * area


def _update_boxes(core: np.ndarray, origin, boxes: dict[int, list[int]]) -> None:
    """Grow each label's [x0, y0, z0, x1, y1, z1) voxel box by its extent in this chunk."""
    small, mapping = fastremap.renumber(core, start=1, preserve_zero=True)
    stats = cc3d.statistics(small.astype(np.uint32, copy=False))["bounding_boxes"]
    for label, index in mapping.items():
        if label == 0 or index >= len(stats) or stats[index] is None:
            continue
        lo = [s.start + o for s, o in zip(stats[index], origin)]
        hi = [s.stop + o for s, o in zip(stats[index], origin)]
        box = boxes.get(int(label))
        if box is None:
            boxes[int(label)] = lo + hi
        else:
            boxes[int(label)] = [min(a, b) for a, b in zip(box[:3], lo)] + [max(a, b) for a, b in zip(box[3:], hi)]


BLOCK_VOXELS = (256, 256, 64)  # at least this much is read at a time (16 Mi voxels: 128 MiB of uint64)


def region_graph(volume, mip: int = 0, chunk=None, progress: bool = True, check_labels=None):
    """(supervoxel ids, edge_a, edge_b, contact area in nm², voxel boxes) of a CloudVolume ``volume``.

    The boxes are one ``[x0, y0, z0, x1, y1, z1)`` row per supervoxel (voxels at ``mip``),
    for leaves-within-bounds queries. ``check_labels(labels, where)`` (e.g. an
    :class:`~segmentation.graph.ids.LabelLayoutCheck`) sees each block's labels as they are
    read and may raise, so a bad volume fails at its first bad block, not at the end.
    """
    from cloudvolume import CloudVolume

    if isinstance(volume, str):
        volume = CloudVolume(volume, mip=mip, progress=False, fill_missing=True)
    rx, ry, rz = (float(r) for r in volume.resolution)
    if chunk is None:  # whole chunks, enough of them per read that per-read costs (shard lookups) stay small
        underlying = np.array(volume.underlying, dtype=int)
        chunk = underlying * np.maximum(1, -(-np.array(BLOCK_VOXELS) // underlying))
    chunk = np.array(chunk, dtype=int)
    lower = np.array(volume.voxel_offset, dtype=int)
    upper = lower + np.array(volume.volume_size, dtype=int)
    starts = [range(lo, hi, c) for lo, hi, c in zip(lower, upper, chunk)]
    contacts: dict[tuple[int, int], float] = {}
    boxes: dict[int, list[int]] = {}
    blocks = list(itertools.product(*starts))
    for x0, y0, z0 in tqdm(blocks, desc="region graph", unit="chunk", disable=not progress):
        x1, y1, z1 = (min(s + c, u) for s, c, u in zip((x0, y0, z0), chunk, upper))
        # one voxel more on each lower face, to see across the chunk border
        ex, ey, ez = max(x0 - 1, lower[0]), max(y0 - 1, lower[1]), max(z0 - 1, lower[2])
        block = np.asarray(volume[ex:x1, ey:y1, ez:z1])[..., 0]
        dx, dy, dz = x0 - ex, y0 - ey, z0 - ez
        core = block[dx:, dy:, dz:]
        if check_labels is not None:
            check_labels(core, f"the block at voxel {x0},{y0},{z0} (to {x1},{y1},{z1})")
        _update_boxes(core, (x0, y0, z0), boxes)
        for (a, b), area in cc3d.contacts(core, connectivity=6, surface_area=True, anisotropy=(rx, ry, rz)).items():
            if a and b:
                key = (min(a, b), max(a, b))
                contacts[key] = contacts.get(key, 0.0) + area
        if dx:
            _face_contacts(core[0], block[0, dy:, dz:], ry * rz, contacts)
        if dy:
            _face_contacts(core[:, 0], block[dx:, 0, dz:], rx * rz, contacts)
        if dz:
            _face_contacts(core[:, :, 0], block[dx:, dy:, 0], rx * ry, contacts)
    supervoxels = np.array(sorted(boxes), dtype=np.uint64)
    box_rows = np.array([boxes[int(s)] for s in supervoxels], dtype=np.int64).reshape(-1, 6)
    if contacts:
        keys = np.array(list(contacts.keys()), dtype=np.uint64)
        areas = np.array(list(contacts.values()), dtype=np.float64)
    else:
        keys, areas = np.zeros((0, 2), dtype=np.uint64), np.zeros(0)
    return supervoxels, keys[:, 0], keys[:, 1], areas, box_rows
