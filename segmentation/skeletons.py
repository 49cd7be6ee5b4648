"""Skeletons of a segmentation's labels: made with kimimaro block by block, joined per label, stored
as Neuroglancer precomputed skeletons (``<layer>/skeletons/<label>``), and a root's skeleton as the
union of its supervoxels' (so it follows merges and splits as meshes do).

Vertices are nm in the volume's frame, at voxel centres ((i + ½) × resolution, where Neuroglancer
draws voxel i). kimimaro's ``fix_borders`` makes the skeletons of one label in two neighbouring
blocks (each read with one voxel more on its high faces) end at the same point of their shared
plane, so the pieces join into one tree when merged.
"""

from __future__ import annotations

import numpy as np
from cloudvolume import Skeleton

SKELETON_DIR = "skeletons"
# kimimaro's TEASAR settings as igneous uses them for EM neurons (physical units, nm): a vertex's
# invalidation ball is 4 × its distance to the boundary + 500 nm
TEASAR = {
    "scale": 4,
    "const": 500,
    "pdrf_scale": 100000,
    "pdrf_exponent": 4,
    "soma_acceptance_threshold": 3500,
    "soma_detection_threshold": 750,
    "soma_invalidation_const": 300,
    "soma_invalidation_scale": 2,
}
DUST_VOXELS = 20  # pieces smaller than this within one block are left out (a corner clipped by the block)
MAX_UNION_PARTS = 20_000  # a root's skeleton joins at most this many supervoxel skeletons per request


def info() -> dict:
    """``skeletons/info``: vertex positions in nm (identity transform), a radius per vertex."""
    return {
        "@type": "neuroglancer_skeletons",
        "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        "vertex_attributes": [
            {"id": "radius", "data_type": "float32", "num_components": 1},
            {"id": "vertex_types", "data_type": "uint8", "num_components": 1},
        ],
    }


def skeletonize_block(labels: np.ndarray, start_voxel, resolution) -> dict[int, Skeleton]:
    """The skeleton of every label in ``labels`` (x, y, z, first voxel ``start_voxel``), in nm."""
    import kimimaro

    if not labels.any():
        return {}
    found = kimimaro.skeletonize(
        np.asfortranarray(labels),
        teasar_params=TEASAR,
        anisotropy=tuple(float(r) for r in resolution),
        dust_threshold=DUST_VOXELS,
        fix_branching=True,
        fix_borders=True,
        progress=False,
        parallel=1,
    )
    shift = (np.asarray(start_voxel, dtype=np.float64) + 0.5) * np.asarray(resolution, dtype=np.float64)
    out = {}
    for label, skeleton in found.items():
        skeleton.vertices = (skeleton.vertices.astype(np.float64) + shift).astype(np.float32)
        skeleton.id = int(label)
        out[int(label)] = skeleton
    return out


def joined(pieces: list[Skeleton], label: int) -> Skeleton:
    """One label's pieces from several blocks as one skeleton (the points they share made one)."""
    skeleton = Skeleton.simple_merge(pieces).consolidate() if len(pieces) > 1 else pieces[0]
    skeleton.id = int(label)
    return skeleton


def encode(skeleton: Skeleton) -> bytes:
    return skeleton.to_precomputed()


def decode(data: bytes, label: int = 0) -> Skeleton:
    return Skeleton.from_precomputed(data, segid=label)


def union(blobs: list[bytes], label: int) -> bytes:
    """The precomputed skeleton of a root: its supervoxels' skeletons side by side (b"": none has one)."""
    pieces = [decode(blob) for blob in blobs if blob]
    pieces = [piece for piece in pieces if len(piece.vertices)]
    if not pieces:
        return b""
    skeleton = Skeleton.simple_merge(pieces) if len(pieces) > 1 else pieces[0]
    skeleton.id = int(label)
    return encode(skeleton)
