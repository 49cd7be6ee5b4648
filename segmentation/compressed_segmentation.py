"""Remap labels inside Neuroglancer's ``compressed_segmentation`` encoding without decoding voxels.

A compressed_segmentation chunk stores, per block, bit-packed indices into a
lookup table of uint64 labels. Relabelling a chunk (supervoxel → root) only has
to rewrite those tables: the packed indices stay as they are. That keeps the
live segmentation path at table size, not voxel count.

Layout (uint32 little-endian words): one channel offset per channel, then per
block a header ``[table_offset | bits << 24, values_offset]`` (offsets in words
from the channel start); tables hold uint64 labels as (low, high) word pairs.
"""
from __future__ import annotations

import numpy as np


def _table_positions(words: np.ndarray, shape, block_size) -> np.ndarray:
    """Word index of the low half of every lookup-table entry (each once) in a 1-channel chunk."""
    channel = int(words[0])
    blocks = int(np.prod([-(-s // b) for s, b in zip(shape, block_size)]))
    headers = words[channel:channel + 2 * blocks].reshape(blocks, 2)
    table_starts = (headers[:, 0] & 0xFFFFFF).astype(np.int64) + channel
    bits = (headers[:, 0] >> 24).astype(np.int64)
    value_starts = headers[:, 1].astype(np.int64) + channel
    block_voxels = int(np.prod(block_size))
    value_ends = value_starts + -(-(block_voxels * bits) // 32)
    boundaries = np.unique(np.concatenate([table_starts, value_starts, value_ends, [len(words)]]))
    tables = np.unique(table_starts)
    ends = boundaries[np.searchsorted(boundaries, tables, side="right")]
    counts = (ends - tables) // 2
    if np.any(counts < 1):
        raise ValueError("malformed compressed_segmentation chunk")
    starts = np.repeat(tables, counts) + 2 * (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    return starts


def table_labels(data: bytes, shape, block_size) -> np.ndarray:
    """Every label the chunk's lookup tables hold (the labels present, possibly repeated)."""
    words = np.frombuffer(data, dtype="<u4")
    positions = _table_positions(words, shape, block_size)
    return words[positions].astype(np.uint64) | (words[positions + 1].astype(np.uint64) << np.uint64(32))


def remap(data: bytes, shape, block_size, old: np.ndarray, new: np.ndarray) -> bytes:
    """The same chunk with each label ``old[i]`` replaced by ``new[i]`` (others unchanged)."""
    words = np.frombuffer(data, dtype="<u4").copy()
    positions = _table_positions(words, shape, block_size)
    labels = words[positions].astype(np.uint64) | (words[positions + 1].astype(np.uint64) << np.uint64(32))
    order = np.argsort(old)
    old_sorted, new_sorted = np.asarray(old, dtype=np.uint64)[order], np.asarray(new, dtype=np.uint64)[order]
    where = np.searchsorted(old_sorted, labels)
    where = np.minimum(where, max(len(old_sorted) - 1, 0))
    hit = old_sorted[where] == labels if len(old_sorted) else np.zeros(len(labels), dtype=bool)
    labels = np.where(hit, new_sorted[where] if len(new_sorted) else labels, labels)
    words[positions] = (labels & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    words[positions + 1] = (labels >> np.uint64(32)).astype(np.uint32)
    return words.tobytes()
