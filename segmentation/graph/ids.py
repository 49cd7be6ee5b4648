"""Id layout shared with PyChunkedGraph: the top 8 bits of a uint64 id are its layer.

Neuroglancer's ``graphene://`` source treats ``id >> 56 == 1`` as a supervoxel,
so supervoxels live in layer 1 and roots in :data:`ROOT_LAYER`.
"""
from __future__ import annotations

import numpy as np

LAYER_SHIFT = 56
SUPERVOXEL_LAYER = 1
ROOT_LAYER = 10
_COUNTER_MASK = (1 << LAYER_SHIFT) - 1


def layer_of(node_id: int) -> int:
    return int(node_id) >> LAYER_SHIFT


def root_id(counter: int) -> int:
    return (ROOT_LAYER << LAYER_SHIFT) | int(counter)


def supervoxel_ids(plain: np.ndarray) -> np.ndarray:
    """Give plain labels (1, 2, 3 ...) the supervoxel layer; 0 (background) stays 0."""
    plain = np.asarray(plain, dtype=np.uint64)
    if np.any(plain > _COUNTER_MASK):
        raise ValueError("label too large for the 56-bit supervoxel counter")
    return np.where(plain == 0, np.uint64(0), plain | np.uint64(SUPERVOXEL_LAYER << LAYER_SHIFT))


def is_supervoxel(node_id: int) -> bool:
    return layer_of(node_id) == SUPERVOXEL_LAYER


def is_root(node_id: int) -> bool:
    return layer_of(node_id) == ROOT_LAYER
