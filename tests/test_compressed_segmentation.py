"""Remapping inside compressed_segmentation equals decode → remap → encode (checked with CloudVolume's codec)."""
from __future__ import annotations

import numpy as np
import pytest
from cloudvolume import chunks
from hypothesis import given, settings, strategies as st

from segmentation import compressed_segmentation as cseg


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2 ** 32 - 1),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 20)),
    labels=st.integers(1, 300),
    block=st.sampled_from([(8, 8, 8), (4, 4, 4), (8, 8, 4)]),
)
def test_remap_tables_equals_remap_voxels(seed, shape, labels, block):
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array([0, 1, 2 ** 56 + 3, 2 ** 63 + 7, *range(5, 5 + labels)], dtype=np.uint64),
                        size=shape + (1,))
    encoded = chunks.encode(values, "compressed_segmentation", block_size=block)
    present = np.unique(values)
    assert set(cseg.table_labels(encoded, shape, block).tolist()) == set(present.tolist())
    old = present[rng.random(len(present)) < 0.7]
    new = rng.integers(0, 2 ** 63, size=len(old), dtype=np.uint64)
    remapped = cseg.remap(encoded, shape, block, old, new)
    decoded = chunks.decode(remapped, "compressed_segmentation", shape=shape + (1,), dtype=np.uint64,
                            block_size=block)
    mapping = dict(zip(old.tolist(), new.tolist()))
    expected = np.vectorize(lambda v: mapping.get(int(v), int(v)), otypes=[np.uint64])(values)
    assert np.array_equal(decoded, expected)


def test_malformed_chunk_is_refused():
    with pytest.raises((ValueError, IndexError)):
        cseg.table_labels(np.array([1, 0xFF000005, 3], dtype="<u4").tobytes(), (8, 8, 8), (8, 8, 8))
