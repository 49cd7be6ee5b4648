"""Neuroglancer multi-resolution meshes (``neuroglancer_multilod_draco``) for datasets without a graph.

A precomputed segmentation layer whose ``info`` names a mesh directory of this type is shown in
3D by stock Neuroglancer, label by label, fetching only the fragments in view. The meshing run
(:mod:`.build`, on the stored labels) already holds one fragment per label per chunk; here those
become the octree's nodes, and the run's coarser levels (:mod:`.levels`) its coarser levels of
detail. The files the viewer reads are made per label on first request and kept:

- ``<label>.index``: chunk shape, grid origin, levels, then per level the nodes' positions (in
  Z-order, z most significant) and their fragments' byte sizes (little-endian, see Neuroglancer's
  ``meshes.md``);
- ``<label>``: the fragments one after the other, Draco with integer positions: 0 … 2^16−1 across
  the node's box, in voxels of the volume (the ``transform`` scales them to nm).

Node boxes are the mesh chunks shifted by half a voxel: a chunk meshed with its one-voxel overlap
has surfaces from the centre of its first voxel to the centre of its overlap voxel, which is exactly
that box, so no vertex falls outside its node.
"""

from __future__ import annotations

import struct
from pathlib import Path

import DracoPy
import numpy as np

from .. import locations
from .store import Generation
from .surfaces import decode

MESH_DIR = "axonlink_meshes"  # the mesh directory the layer's info names
QUANTIZATION_BITS = 16
_TOP = (1 << QUANTIZATION_BITS) - 1


def info(generation: Generation) -> dict:
    """The mesh directory's ``info``: vertices are stored in voxels; the transform gives nm."""
    rx, ry, rz = generation.grid.resolution
    return {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": QUANTIZATION_BITS,
        "transform": [rx, 0, 0, 0, 0, ry, 0, 0, 0, 0, rz, 0],
        "lod_scale_multiplier": 1.0,
    }


def zorder(coords: np.ndarray) -> np.ndarray:
    """Morton codes of grid positions, bits interleaved ... z1 y1 x1 z0 y0 x0 (Neuroglancer's order)."""
    coords = np.asarray(coords, dtype=np.uint64).reshape(-1, 3)
    code = np.zeros(len(coords), dtype=np.uint64)
    for bit in range(21):
        for axis in range(3):
            code |= ((coords[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code


def label_files(generation: Generation, label: int) -> tuple[Path, Path] | None:
    """Paths of ``<label>.index`` and ``<label>`` (None: the label has no surface here), made once and kept."""
    folder = generation.cache / "multilod"  # made here from the run's fragments (per machine)
    index_path, data_path = folder / f"{int(label)}.index", folder / f"{int(label)}"
    if index_path.exists():
        return index_path, data_path
    made = _make(generation, int(label))
    if made is None:
        return None
    locations.put(str(data_path), made[1])  # the data first: an index is never found without its data
    locations.put(str(index_path), made[0])
    return index_path, data_path


def _groups_of(generation: Generation, label: int, level: int) -> np.ndarray:
    """The fragments of one label at one level (0: chunks), a binary search in a per-run sort."""
    index = generation.index()
    by_label = getattr(generation, "_groups_by_level_and_label", None)
    if by_label is None:  # (level, label) sorted once per run
        order = np.lexsort((index["group_root"], index["group_level"]))
        by_label = (index["group_level"][order].astype(np.int64), index["group_root"][order], order)
        generation._groups_by_level_and_label = by_label
    levels, roots, order = by_label
    lo, hi = np.searchsorted(levels, level, side="left"), np.searchsorted(levels, level, side="right")
    at = lo + np.searchsorted(roots[lo:hi], np.uint64(label), side="left")
    stop = lo + np.searchsorted(roots[lo:hi], np.uint64(label), side="right")
    return order[at:stop]


def _make(generation: Generation, label: int) -> tuple[bytes, bytes] | None:
    """One level of detail per mesh level: the chunks, then blocks of 2×2×2, 4×4×4 … chunks (each
    block's fragment is its children side by side, so it lies in its node's box and never crosses
    the planes between its octants, as Neuroglancer's partitioned decoding needs)."""
    index = generation.index()
    levels = int(index["group_level"].max()) + 1 if len(index["group_level"]) else 1
    if not len(_groups_of(generation, label, 0)):
        return None
    grid = generation.grid
    chunk = np.asarray(grid.chunk, dtype=np.float64)
    origin = np.asarray(grid.lower, dtype=np.float64) + 0.5  # node boxes: chunks shifted by half a voxel
    resolution = np.asarray(grid.resolution, dtype=np.float64)
    lod_positions, lod_sizes, blobs = [], [], []
    for level in range(levels):
        groups = _groups_of(generation, label, level)
        positions = index["group_coords"][groups].astype(np.int64)
        order = np.argsort(zorder(positions), kind="stable")
        groups, positions = groups[order], positions[order]
        node = chunk * (1 << level)
        sizes = []
        for group, position in zip(groups.tolist(), positions):
            blob = b""
            if index["group_nbytes"][group]:
                offset, nbytes = int(index["group_offset"][group]), int(index["group_nbytes"][group])
                vertices, faces = decode(generation.read_fragment(level, position, offset, nbytes))
                inside = (vertices / resolution - origin - position * node) / node  # 0 … 1 across the node
                stored = np.clip(np.rint(inside * _TOP), 0, _TOP).astype(np.uint16)
                try:
                    blob = DracoPy.encode(stored, faces.astype(np.uint32), quantization_bits=QUANTIZATION_BITS)
                except Exception:  # noqa: BLE001 — Draco refuses degenerate meshes: an empty node then
                    blob = b""
            blobs.append(blob)
            sizes.append(len(blob))
        lod_positions.append(positions)
        lod_sizes.append(sizes)
    manifest = struct.pack("<3f", *chunk) + struct.pack("<3f", *origin)
    manifest += struct.pack("<I", levels)
    manifest += struct.pack(f"<{levels}f", *(float(1 << level) for level in range(levels)))
    manifest += struct.pack(f"<{3 * levels}f", *([0.0] * 3 * levels))
    manifest += struct.pack(f"<{levels}I", *(len(p) for p in lod_positions))
    for positions, sizes in zip(lod_positions, lod_sizes):
        manifest += np.ascontiguousarray(positions.reshape(-1, 3).T, dtype="<u4").tobytes()  # x…, y…, z…
        manifest += np.asarray(sizes, dtype="<u4").tobytes()
    return manifest, b"".join(blobs)
