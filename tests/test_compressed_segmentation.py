"""Remapping inside compressed_segmentation equals decode → remap → encode (checked with CloudVolume's codec).

Corrupt chunks (stored data) are refused with CorruptStoredData before anything sized by
their headers is allocated, for uint64 (two-word table entries) and uint32 (one word).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from cloudvolume import chunks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation import compressed_segmentation as cseg
from segmentation.storage import CorruptStoredData


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 20)),
    labels=st.integers(1, 300),
    block=st.sampled_from([(8, 8, 8), (4, 4, 4), (8, 8, 4)]),
)
def test_remap_tables_equals_remap_voxels(seed, shape, labels, block):
    rng = np.random.default_rng(seed)
    values = rng.choice(
        np.array([0, 1, 2**56 + 3, 2**63 + 7, *range(5, 5 + labels)], dtype=np.uint64), size=shape + (1,)
    )
    encoded = chunks.encode(values, "compressed_segmentation", block_size=block)
    present = np.unique(values)
    assert set(cseg.table_labels(encoded, shape, block).tolist()) == set(present.tolist())
    old = present[rng.random(len(present)) < 0.7]
    new = rng.integers(0, 2**63, size=len(old), dtype=np.uint64)
    remapped = cseg.remap(encoded, shape, block, old, new)
    decoded = chunks.decode(remapped, "compressed_segmentation", shape=shape + (1,), dtype=np.uint64, block_size=block)
    mapping = dict(zip(old.tolist(), new.tolist()))
    expected = np.vectorize(lambda v: mapping.get(int(v), int(v)), otypes=[np.uint64])(values)
    assert np.array_equal(decoded, expected)


def test_malformed_chunk_is_refused():
    with pytest.raises(CorruptStoredData):
        cseg.table_labels(np.array([1, 0xFF000005, 3], dtype="<u4").tobytes(), (8, 8, 8), (8, 8, 8))


BLOCKS = [(8, 8, 8), (4, 4, 4), (8, 8, 4), (3, 5, 2)]


def _chunk(seed, shape, labels, dtype):
    rng = np.random.default_rng(seed)
    pool = np.array(
        [0, 1, *range(5, 5 + labels)] + ([2**56 + 3, 2**63 + 7] if dtype == np.uint64 else [2**31 + 3, 2**32 - 1]),
        dtype=dtype,
    )
    values = rng.choice(pool, size=shape + (1,))
    values[: shape[0] // 2] = pool[2]  # uniform blocks too (0-bit encodings)
    return values


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 20)),
    labels=st.integers(1, 300),
    block=st.sampled_from(BLOCKS),
    dtype=st.sampled_from([np.uint32, np.uint64]),
)
def test_tables_hold_exactly_the_decoded_labels(seed, shape, labels, block, dtype):
    values = _chunk(seed, shape, labels, dtype)
    encoded = chunks.encode(values, "compressed_segmentation", block_size=block)
    decoded = chunks.decode(encoded, "compressed_segmentation", shape=shape + (1,), dtype=dtype, block_size=block)
    tables = cseg.table_labels(encoded, shape, block, dtype)
    assert tables.dtype == np.uint64
    assert set(tables.tolist()) == set(np.unique(decoded).tolist())
    cseg.validate(encoded, shape, block, dtype)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 30), st.integers(1, 30), st.integers(1, 12)),
    block=st.sampled_from(BLOCKS),
)
def test_uint32_tables_remap_in_place(seed, shape, block):
    values = _chunk(seed, shape, 50, np.uint32)
    encoded = chunks.encode(values, "compressed_segmentation", block_size=block)
    present = np.unique(values)
    new = (present[::-1] + np.uint32(1)).astype(np.uint64)  # still 32-bit labels
    remapped = cseg.remap(encoded, shape, block, present, new, np.uint32)
    decoded = chunks.decode(remapped, "compressed_segmentation", shape=shape + (1,), dtype=np.uint32, block_size=block)
    mapping = dict(zip(present.tolist(), new.tolist()))
    assert np.array_equal(decoded, np.vectorize(mapping.get, otypes=[np.uint32])(values))
    with pytest.raises(ValueError, match="32"):
        cseg.remap(encoded, shape, block, present[:1], np.array([2**40], dtype=np.uint64), np.uint32)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 30), st.integers(1, 30), st.integers(1, 12)),
    labels=st.integers(1, 300),
    block=st.sampled_from(BLOCKS),
)
def test_widened_uint32_chunk_decodes_as_the_same_uint64_labels(seed, shape, labels, block):
    """A uint32 chunk served as uint64 (root ids need 64 bits) holds the same labels, then takes 64-bit ones."""
    values = _chunk(seed, shape, labels, np.uint32)
    values[values != 0] += np.uint32(2**32 - 400)  # near the top of the type
    encoded = chunks.encode(values, "compressed_segmentation", block_size=block)
    wide = cseg.widen(encoded, shape, block)
    decoded = chunks.decode(wide, "compressed_segmentation", shape=shape + (1,), dtype=np.uint64, block_size=block)
    assert np.array_equal(decoded, values.astype(np.uint64))
    present = np.unique(values)
    roots = np.uint64(10 << 56) + np.arange(len(present), dtype=np.uint64)
    remapped = cseg.remap(wide, shape, block, present.astype(np.uint64), roots, np.uint64)
    decoded = chunks.decode(remapped, "compressed_segmentation", shape=shape + (1,), dtype=np.uint64, block_size=block)
    assert np.array_equal(decoded, roots[np.searchsorted(present, values)])


def test_widening_a_corrupt_chunk_is_corrupt_stored_data():
    encoded = _words(np.full(SHAPE + (1,), 7, dtype=np.uint32), BLOCK, np.uint32)
    encoded[1] = 0xFFFFFF  # the first table offset far past the end
    with pytest.raises(CorruptStoredData):
        cseg.widen(encoded.tobytes(), SHAPE, BLOCK)


def _words(values, block, dtype=np.uint64):
    return np.frombuffer(chunks.encode(values, "compressed_segmentation", block_size=block), dtype="<u4").copy()


SHAPE, BLOCK = (17, 13, 7), (8, 8, 4)
BLOCK_COUNT = 3 * 2 * 2


def _valid(dtype=np.uint64):
    rng = np.random.default_rng(5)
    values = rng.integers(1, 9, size=SHAPE + (1,)).astype(dtype)
    values[:8, :8, :4] = 3  # one uniform block: a 0-bit encoding
    return _words(values, BLOCK, dtype)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize(
    "corrupt",
    [
        "empty",
        "not whole words",
        "channel offset far away",
        "two channels",
        "headers cut off",
        "table offset past the end",
        "values offset past the end",
        "bits 3",
        "bits 64",
        "table inside the headers",
        "truncated values",
        "table at the very end without room",
    ],
)
def test_corrupt_chunks_raise_corrupt_stored_data(dtype, corrupt):
    words = _valid(dtype)
    n = len(words)
    header = 1 + 2 * 5  # block 5's header word
    bits_of = lambda w: int(w) >> 24  # noqa: E731
    data = {
        "empty": lambda: b"",
        "not whole words": lambda: words.tobytes()[:-1],
        "channel offset far away": lambda: _set(words, 0, 2**31),
        "two channels": lambda: _set(words, 0, 2),
        "headers cut off": lambda: words[: 1 + BLOCK_COUNT].tobytes(),
        "table offset past the end": lambda: _set(words, header, (words[header] & 0xFF000000) | 0xFFFFFF),
        "values offset past the end": lambda: _set(words, header + 1, n + 100),
        "bits 3": lambda: _set(words, header, (words[header] & 0xFFFFFF) | (3 << 24)),
        "bits 64": lambda: _set(words, header, (words[header] & 0xFFFFFF) | (64 << 24)),
        "table inside the headers": lambda: _set(words, header, (words[header] & 0xFF000000) | 2),
        "truncated values": lambda: words[: n // 2].tobytes(),
        "table at the very end without room": lambda: _set(
            words, header, (words[header] & 0xFF000000) | (n - 1 - 1 + (1 if dtype == np.uint32 else 0))
        ),
    }[corrupt]()
    assert bits_of(words[header]) in (1, 2, 4)  # block 5 really has packed values
    tracemalloc.start()
    try:
        for call in (
            lambda: cseg.table_labels(data, SHAPE, BLOCK, dtype),
            lambda: cseg.remap(data, SHAPE, BLOCK, np.array([3], np.uint64), np.array([4], np.uint64), dtype),
        ):
            with pytest.raises(CorruptStoredData):
                call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def _set(words, index, value):
    out = words.copy()
    out[index] = value
    return out.tobytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from([np.uint32, np.uint64]),
    index=st.integers(0, 1 + 2 * BLOCK_COUNT - 1),
    value=st.integers(0, 2**32 - 1),
    cut=st.integers(0, 40),
)
def test_any_damaged_header_is_corrupt_or_readable_never_a_crash(dtype, index, value, cut):
    words = _valid(dtype)
    words[index] = value
    data = words.tobytes()[: len(words) * 4 - 4 * cut]
    try:
        labels = cseg.table_labels(data, SHAPE, BLOCK, dtype)
    except CorruptStoredData:
        return
    assert len(labels) <= len(data) // 4
    cseg.remap(data, SHAPE, BLOCK, labels[:1], labels[:1], dtype)
