"""The pieces a split made, stored with its operation so that replaying it needs no graph search.

A split (or an undone merge) cuts a root into components. The process that commits it has
computed them; every other process, a compaction and a process starting later would compute
them again from the adjacency of the whole root (hundreds of milliseconds for a neuron of
10^5 supervoxels, in every server worker). So the operation row keeps every component but the
largest, as sorted supervoxel ids: delta-encoded (a neuron's ids are close together, so the
deltas are small) and zlib-compressed. The largest is "the rest of the touched roots".

Pieces larger than :data:`MAX_STORED` supervoxels in all are not stored (the row stays small;
replay then searches the graph as before). Decoding never produces more than that, whatever the
bytes claim.
"""

from __future__ import annotations

import zlib

import numpy as np

from .base import BaseError

MAX_STORED = 1_000_000  # supervoxels in all the stored pieces of one operation
_HEADER = np.dtype("<u4")


def encode(components: list[np.ndarray], supervoxels: np.ndarray) -> bytes | None:
    """Every component but the largest (positions → supervoxel ids), or None when too large or
    when there is a single component."""
    if len(components) < 2:
        return None
    largest = max(range(len(components)), key=lambda k: len(components[k]))
    pieces = [components[k] for k in range(len(components)) if k != largest]
    if sum(len(p) for p in pieces) > MAX_STORED:
        return None
    header = np.array([len(pieces), *(len(p) for p in pieces)], dtype=_HEADER)
    ids = [np.asarray(supervoxels[np.asarray(p, dtype=np.int64)], dtype=np.uint64) for p in pieces]
    deltas = [np.diff(piece, prepend=np.uint64(0)) for piece in ids]  # sorted: wraps never happen
    return zlib.compress(header.tobytes() + b"".join(d.astype("<u8").tobytes() for d in deltas), 1)


def decode(blob: bytes) -> list[np.ndarray]:
    """The stored pieces as sorted supervoxel ids (:class:`BaseError` for bytes that do not hold them)."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, 4 * (MAX_STORED + 1) + 8 * MAX_STORED + 4)
    except zlib.error as error:
        raise BaseError(f"stored split pieces cannot be read ({error})") from None
    if inflater.unconsumed_tail or len(raw) < 4:
        raise BaseError("stored split pieces are larger than they may be")
    count = int(np.frombuffer(raw, dtype=_HEADER, count=1)[0])
    if not 0 < count <= MAX_STORED or len(raw) < 4 * (count + 1):
        raise BaseError("stored split pieces have a damaged header")
    sizes = np.frombuffer(raw, dtype=_HEADER, count=count, offset=4).astype(np.int64)
    start = 4 * (count + 1)
    if start + 8 * int(sizes.sum()) != len(raw):
        raise BaseError("stored split pieces do not have the sizes their header says")
    values = np.frombuffer(raw, dtype="<u8", offset=start).astype(np.uint64)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [np.cumsum(values[bounds[k] : bounds[k + 1]], dtype=np.uint64) for k in range(count)]
