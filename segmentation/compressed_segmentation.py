"""Remap labels inside Neuroglancer's ``compressed_segmentation`` encoding without decoding voxels.

A compressed_segmentation chunk stores, per block, bit-packed indices into a
lookup table of labels. Relabelling a chunk (supervoxel → root) only has to
rewrite those tables: the packed indices stay as they are. That keeps the live
segmentation path at table size, not voxel count.

Layout (uint32 little-endian words): one channel offset per channel, then per
block a header ``[table_offset | bits << 24, values_offset]`` (offsets in words
from the channel start); tables hold uint64 labels as (low, high) word pairs,
or uint32 labels as one word each.

The chunk is stored data, so nothing in it is believed before it is checked
against the buffer: every offset, bit width and table must lie inside the chunk
(:func:`validate`), or :class:`~segmentation.storage.CorruptStoredData` is raised
before anything sized by the header is allocated.
"""

from __future__ import annotations

import numpy as np

from .storage import CorruptStoredData

_BITS = np.array([0, 1, 2, 4, 8, 16, 32])


def _words_per_entry(dtype, key: str) -> int:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):  # the info's data_type is stored data too
        raise CorruptStoredData(key, f"compressed_segmentation holds uint32 or uint64 labels, not {dtype}")
    return dtype.itemsize // 4


_MAX_BLOCK_VOXELS = 2**30  # far above any real block (8×8×8 is usual); keeps offsets in int64


def _blocks(shape, block_size, key: str) -> tuple[int, int]:
    """(number of blocks, voxels per block) of a chunk; the block size comes from the stored info."""
    if len(shape) != 3 or len(block_size) != 3 or min(shape) < 1 or min(block_size) < 1:
        raise CorruptStoredData(key, f"chunk shape {shape} / block size {block_size} are not three positive sizes")
    block_voxels = int(block_size[0]) * int(block_size[1]) * int(block_size[2])
    if block_voxels > _MAX_BLOCK_VOXELS:
        raise CorruptStoredData(key, f"compressed_segmentation block size {block_size} is absurd")
    blocks = 1
    for s, b in zip(shape, block_size):
        blocks *= -(-int(s) // int(b))
    return blocks, block_voxels


def _table_positions(words: np.ndarray, shape, block_size, dtype=np.uint64, key: str = "chunk") -> np.ndarray:
    """Word index of the first word of every lookup-table entry (each once) in a 1-channel chunk.

    Table lengths are not stored: a table runs to the next table, values region or
    the end of the chunk. Raises CorruptStoredData when the chunk's headers do not fit it.
    """
    per_entry = _words_per_entry(dtype, key)
    blocks, block_voxels = _blocks(shape, block_size, key)
    n = len(words)
    if n < 1:
        raise CorruptStoredData(key, "compressed_segmentation chunk is empty")
    channel = int(words[0])
    if channel != 1:
        raise CorruptStoredData(key, f"compressed_segmentation channel offset {channel}, not 1 (one channel)")
    headers_end = channel + 2 * blocks
    if headers_end > n:
        raise CorruptStoredData(key, f"{blocks} block headers need {headers_end} words, the chunk has {n}")
    headers = words[channel:headers_end].reshape(blocks, 2)
    bits = (headers[:, 0] >> 24).astype(np.int64)
    if not np.all(np.isin(bits, _BITS)):
        raise CorruptStoredData(
            key, f"bit widths {sorted(set(bits.tolist()) - set(_BITS.tolist()))} are not 0, 1, 2, 4, 8, 16 or 32"
        )
    table_starts = (headers[:, 0] & 0xFFFFFF).astype(np.int64) + channel
    value_starts = headers[:, 1].astype(np.int64) + channel
    value_ends = value_starts + -(-(block_voxels * bits) // 32)
    if np.any(table_starts < headers_end) or np.any(value_starts < headers_end):
        raise CorruptStoredData(key, "a lookup table or values region overlaps the block headers")
    if np.any(table_starts + per_entry > n):
        raise CorruptStoredData(key, "a lookup table starts outside the chunk")
    if np.any(value_ends > n):
        raise CorruptStoredData(key, "a block's packed values run past the end of the chunk")
    boundaries = np.unique(np.concatenate([table_starts, value_starts, value_ends, [n]]))
    tables = np.unique(table_starts)
    ends = boundaries[np.searchsorted(boundaries, tables, side="right")]
    counts = (ends - tables) // per_entry
    if np.any(counts < 1):
        raise CorruptStoredData(key, "a lookup table holds no entry")
    if per_entry == 1:
        return np.repeat(tables, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    return np.repeat(tables, counts) + 2 * (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))


def widen(data: bytes, shape, block_size, key: str = "chunk") -> bytes:
    """The same uint32 chunk laid out for uint64 labels (each table entry a (low, high) word pair).

    Root ids need 64 bits, so a uint32 layer served through the graph is declared uint64
    and each chunk widened first: tables double in size, packed values are copied as they
    are, and every header's offsets move by the growth of the tables before them. Work is
    linear in the chunk's words, never in its voxels.
    """
    words = _words(data, key)
    table_positions = _table_positions(words, shape, block_size, np.uint32, key)
    blocks, _ = _blocks(shape, block_size, key)
    headers_end = 1 + 2 * blocks
    headers = words[1:headers_end].reshape(blocks, 2)
    is_table = np.zeros(len(words), dtype=bool)
    is_table[table_positions] = True
    is_table[:headers_end] = False
    # each word after the headers moves by the number of table words before it
    shift = np.concatenate([[0], np.cumsum(is_table)])
    new_words = np.zeros(len(words) + int(is_table.sum()), dtype="<u4")
    new_words[:headers_end] = words[:headers_end]
    body = np.arange(headers_end, len(words))
    moved = body + shift[body]
    new_words[moved] = words[body]  # a table entry's low word; its high word stays 0
    table_starts = (headers[:, 0] & 0xFFFFFF).astype(np.int64) + 1
    value_starts = headers[:, 1].astype(np.int64) + 1
    new_tables = table_starts + shift[table_starts] - 1
    new_values = value_starts + shift[value_starts] - 1
    if len(new_tables) and int(new_tables.max()) >= 1 << 24:
        raise CorruptStoredData(key, "compressed_segmentation chunk too large to widen to 64-bit labels")
    new_headers = new_words[1:headers_end].reshape(blocks, 2)
    new_headers[:, 0] = (headers[:, 0] & 0xFF000000) | new_tables.astype(np.uint32)
    new_headers[:, 1] = new_values.astype(np.uint32)
    return new_words.tobytes()


def _words(data: bytes, key: str) -> np.ndarray:
    if len(data) % 4:
        raise CorruptStoredData(key, f"compressed_segmentation chunk of {len(data)} bytes is not whole words")
    return np.frombuffer(data, dtype="<u4")


def validate(data: bytes, shape, block_size, dtype=np.uint64, key: str = "chunk") -> None:
    """Raise CorruptStoredData unless ``data`` is a structurally sound 1-channel chunk of ``shape``."""
    _table_positions(_words(data, key), shape, block_size, dtype, key)


def _read_labels(words: np.ndarray, positions: np.ndarray, per_entry: int) -> np.ndarray:
    if per_entry == 1:
        return words[positions].astype(np.uint64)
    return words[positions].astype(np.uint64) | (words[positions + 1].astype(np.uint64) << np.uint64(32))


def table_labels(data: bytes, shape, block_size, dtype=np.uint64, key: str = "chunk") -> np.ndarray:
    """Every label the chunk's lookup tables hold (the labels present, possibly repeated), as uint64."""
    words = _words(data, key)
    positions = _table_positions(words, shape, block_size, dtype, key)
    return _read_labels(words, positions, _words_per_entry(dtype, key))


def remap(
    data: bytes, shape, block_size, old: np.ndarray, new: np.ndarray, dtype=np.uint64, key: str = "chunk"
) -> bytes:
    """The same chunk with each label ``old[i]`` replaced by ``new[i]`` (others unchanged).

    A uint32 chunk's tables are one word per label, so a new label must fit in 32 bits
    (ValueError otherwise: widening the chunk to uint64 is not a table rewrite).
    """
    per_entry = _words_per_entry(dtype, key)
    words = _words(data, key).copy()
    positions = _table_positions(words, shape, block_size, dtype, key)
    labels = _read_labels(words, positions, per_entry)
    order = np.argsort(old)
    old_sorted, new_sorted = np.asarray(old, dtype=np.uint64)[order], np.asarray(new, dtype=np.uint64)[order]
    where = np.searchsorted(old_sorted, labels)
    where = np.minimum(where, max(len(old_sorted) - 1, 0))
    hit = old_sorted[where] == labels if len(old_sorted) else np.zeros(len(labels), dtype=bool)
    labels = np.where(hit, new_sorted[where] if len(new_sorted) else labels, labels)
    words[positions] = (labels & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    if per_entry == 2:
        words[positions + 1] = (labels >> np.uint64(32)).astype(np.uint32)
    elif len(labels) and int(labels.max()) >= 2**32:
        raise ValueError("a uint32 compressed_segmentation chunk cannot hold labels of 32 bits or more")
    return words.tobytes()
