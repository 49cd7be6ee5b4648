"""Coarser levels: one fragment per neuron per block of 2×2×2 fragments of the level below.

A neuron that spans many chunks is then listed by few fragments: its manifest takes, from the top
level down, every block fragment whose supervoxels are all the neuron's (:mod:`.cover`). A block
fragment is its children side by side at their full detail (as PyChunkedGraph's higher layers
are), so the viewer shows the same surface with fewer requests. Levels stop at
:data:`MAX_LEVEL` (blocks of 8×8×8 chunks), so that no fragment grows without bound.
"""

from __future__ import annotations

import numpy as np

from .surfaces import joined

MAX_LEVEL = 3
WAVE_BYTES = 256 << 20  # children's bytes joined at once (whole blocks: a larger block is one wave)


def level_count(grid_shape) -> int:
    """How many levels above the chunks: until one block covers the grid, at most :data:`MAX_LEVEL`."""
    level = 0
    while (1 << level) < max(grid_shape) and level < MAX_LEVEL:
        level += 1
    return level


def file_name(level: int, coords) -> str:
    """The fragment file of a chunk (level 0) or block: ``x_y_z`` or ``L<level>_x_y_z``."""
    name = "_".join(str(int(c)) for c in coords)
    return name if level == 0 else f"L{level}_{name}"


def coarser(children: dict, join, write) -> tuple[np.ndarray, dict]:
    """The level above ``children`` (arrays ``coords`` (n, 3), ``root``, ``offset``, ``nbytes``, ``level``):
    (each child's parent, the parents' arrays).

    ``join(parts)`` makes the fragments: ``parts`` lists, per parent, its children as ``(level, coords,
    offset, nbytes)``, and it returns one blob per parent (:func:`join_parts`, or the same spread over
    processes: the parents are independent); it is called once per wave of whole blocks holding
    about :data:`WAVE_BYTES` of children. ``write(level, coords, blob)`` stores one block's file."""
    level = int(children["level"]) + 1
    blocks = np.asarray(children["coords"], dtype=np.int64) // 2
    roots = np.asarray(children["root"], dtype=np.uint64)
    _, root_rank = np.unique(roots, return_inverse=True)
    keys = np.concatenate([blocks, root_rank.reshape(-1, 1)], axis=1)
    unique, parent_of = np.unique(keys, axis=0, return_inverse=True)
    parent_of = parent_of.reshape(-1)
    count = len(unique)
    parents = {
        "level": level,
        "coords": unique[:, :3].astype(np.int32),
        "root": np.zeros(count, dtype=np.uint64),
        "offset": np.zeros(count, dtype=np.int64),
        "nbytes": np.zeros(count, dtype=np.int64),
    }
    parents["root"][parent_of] = roots
    order = np.argsort(parent_of, kind="stable")
    bounds = np.flatnonzero(np.diff(parent_of[order])) + 1
    by_parent = dict(zip(parent_of[order][np.concatenate([[0], bounds])].tolist(), np.split(order, bounds)))
    coords = children["coords"]
    parts = [
        [
            (level - 1, tuple(int(c) for c in coords[k]), int(children["offset"][k]), int(children["nbytes"][k]))
            for k in by_parent.get(parent, [])
            if children["nbytes"][k]
        ]
        for parent in range(count)
    ]
    # parents of one block are stored in one file, one after the other (unique rows are sorted by
    # block); blocks are joined a wave at a time, so memory holds a wave, not the whole level
    block_keys = [tuple(row) for row in parents["coords"].tolist()]
    starts = [i for i in range(count) if i == 0 or block_keys[i] != block_keys[i - 1]] + [count]
    child_bytes = [sum(child[3] for child in children) for children in parts]
    block_bytes = [sum(child_bytes[a:b]) for a, b in zip(starts, starts[1:])]
    first = 0
    while first < len(block_bytes):
        last, held = first + 1, block_bytes[first]
        while last < len(block_bytes) and held + block_bytes[last] <= WAVE_BYTES:
            held += block_bytes[last]
            last += 1
        blobs = join(parts[starts[first] : starts[last]])
        for a, b in zip(starts[first:last], starts[first + 1 : last + 1]):
            mine = blobs[a - starts[first] : b - starts[first]]
            sizes = np.array([len(blob) for blob in mine], dtype=np.int64)
            parents["nbytes"][a:b] = sizes
            parents["offset"][a:b] = np.cumsum(sizes) - sizes
            write(level, block_keys[a], b"".join(mine))
        first = last
    return parent_of, parents


def join_parts(read, parts: list) -> list[bytes]:
    """One fragment per parent: its children's meshes side by side (``read(level, coords, offset,
    nbytes)`` gives a child's bytes). A parent with one child (a neuron within one block: most of
    them) is that child's bytes as they are, not decoded and encoded again."""
    return [read(*children[0]) if len(children) == 1 else joined([read(*c) for c in children]) for children in parts]


def batches(parts: list, count: int) -> list[list]:
    """``parts`` cut in about ``count`` consecutive runs of about equal bytes (what joining them
    costs), to spread over processes; concatenated, the runs are ``parts`` again."""
    weights = np.array([sum(child[3] for child in children) for children in parts], dtype=np.float64)
    if not len(parts):
        return []
    edges = np.searchsorted(np.cumsum(weights), np.linspace(0, weights.sum(), count + 1)[1:-1], side="right")
    cuts = [0, *sorted(set(int(e) for e in edges if 0 < e < len(parts))), len(parts)]
    return [parts[a:b] for a, b in zip(cuts, cuts[1:])]
