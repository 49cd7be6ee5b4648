"""Id layout shared with PyChunkedGraph: the top 8 bits of a uint64 id are its layer.

Neuroglancer's ``graphene://`` source treats ``id >> 56 == 1`` as a supervoxel,
so supervoxels live in layer 1 and roots in :data:`ROOT_LAYER`.
"""

from __future__ import annotations

import fastremap
import numpy as np

from ..errors import Invalid

LAYER_SHIFT = 56
SUPERVOXEL_LAYER = 1
ROOT_LAYER = 10
_COUNTER_MASK = (1 << LAYER_SHIFT) - 1


def layer_of(node_id: int) -> int:
    return int(node_id) >> LAYER_SHIFT


def root_id(counter: int) -> int:
    return (ROOT_LAYER << LAYER_SHIFT) | int(counter)


def root_ids(counters) -> np.ndarray:
    """:func:`root_id` of many counters at once."""
    return np.asarray(counters, dtype=np.uint64) | np.uint64(ROOT_LAYER << LAYER_SHIFT)


def counter_of(node_id: int) -> int:
    """The counter part of an id (its low 56 bits)."""
    return int(node_id) & _COUNTER_MASK


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


class LabelLayoutError(Invalid):
    """A volume's labels do not fit the id layout (too large, or layered and plain ids mixed)."""


SHOWN_VALUES = 5


class LabelLayoutCheck:
    """Checks a volume's labels chunk by chunk, failing at the first chunk that breaks the layout.

    A volume holds either plain labels (below 2**56, given layer 1 at ingest) or layer-1
    supervoxel ids; labels of any other layer do not fit, and a mix of the two kinds is refused.
    """

    def __init__(self):
        self.seen_plain: tuple[int, str] | None = None  # (a plain label, where it was seen)
        self.seen_layered: tuple[int, str] | None = None

    def __call__(self, labels: np.ndarray, where: str) -> None:
        values = fastremap.unique(np.asarray(labels).astype(np.uint64, copy=False))
        values = values[values != 0]
        if not len(values):
            return
        layers = values >> np.uint64(LAYER_SHIFT)
        bad = values[(layers != 0) & (layers != SUPERVOXEL_LAYER)]
        if len(bad):
            raise LabelLayoutError(
                f"{where} has label(s) of 2**56 or more that are not layer-1 supervoxel ids: "
                f"{', '.join(str(int(v)) for v in bad[:SHOWN_VALUES])}"
                f"{f' … ({len(bad)} in all)' if len(bad) > SHOWN_VALUES else ''}; the id layout keeps 56 bits "
                "for a label (relabel the volume, e.g. with fastremap.renumber)"
            )
        plain, layered = values[layers == 0], values[layers == SUPERVOXEL_LAYER]
        if len(plain) and self.seen_plain is None:
            self.seen_plain = (int(plain[0]), where)
        if len(layered) and self.seen_layered is None:
            self.seen_layered = (int(layered[0]), where)
        if self.seen_plain and self.seen_layered:
            (p, p_at), (q, q_at) = self.seen_plain, self.seen_layered
            raise LabelLayoutError(
                f"labels mix plain ids and layered (layer-1) ids: plain {p} in {p_at}, layered {q} "
                f"(= layer 1, label {q & _COUNTER_MASK}) in {q_at}; a volume must use one or the other"
            )
