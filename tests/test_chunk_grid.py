"""Chunk names are checked against the scale's grid: every real chunk is found, nothing else is."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from cloudvolume import Bbox, Vec
from cloudvolume.datasource.precomputed.common import compressed_morton_code
from cloudvolume.datasource.precomputed.image.common import chunknames
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from segmentation.chunk_grid import CHUNK_NAME_SHAPE, ChunkGrid, max_chunk_bytes
from segmentation.storage import CorruptStoredData

triples = st.tuples


@st.composite
def grids(draw):
    chunk = draw(triples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 20)))
    offset = draw(triples(st.integers(-100, 100), st.integers(-100, 100), st.integers(-30, 30)))
    size = draw(triples(st.integers(1, 200), st.integers(1, 200), st.integers(1, 60)))
    return ChunkGrid(chunk, offset, size)


@settings(max_examples=300, deadline=None)
@given(grid=grids(), data=st.data())
def test_every_chunk_of_the_grid_is_found_with_its_shape(grid, data):
    point = tuple(data.draw(st.integers(0, n - 1)) for n in grid.shape)
    name = grid.name(point)
    origin, shape = grid.locate(name)
    for axis in range(3):
        assert origin[axis] == grid.offset[axis] + point[axis] * grid.chunk[axis]
        assert 1 <= shape[axis] <= grid.chunk[axis]
        assert origin[axis] + shape[axis] <= grid.offset[axis] + grid.size[axis]
    assert grid.gridpoint(origin) == point
    assert CHUNK_NAME_SHAPE.match(name)


@settings(max_examples=300, deadline=None)
@given(grid=grids(), data=st.data())
def test_names_off_the_grid_are_refused(grid, data):
    point = tuple(data.draw(st.integers(0, n - 1)) for n in grid.shape)
    values = [int(v) for pair in grid.name(point).split("_") for v in _pair(pair)]
    index = data.draw(st.integers(0, 5))
    delta = data.draw(st.integers(-3 * max(grid.chunk), 3 * max(grid.chunk)).filter(lambda d: d != 0))
    values[index] += delta
    name = "_".join(f"{values[i]}-{values[i + 1]}" for i in (0, 2, 4))
    assume(name not in set(grid.names()))
    assert grid.locate(name) is None


def _pair(text):
    """'a-b' with either side possibly negative → (a, b)."""
    cut = text.index("-", 1)
    return text[:cut], text[cut + 1 :]


@settings(max_examples=100, deadline=None)
@given(grid=grids())
def test_names_equal_cloudvolumes_chunk_names(grid):
    """The grid enumerates exactly the files CloudVolume writes for the volume (odd sizes, offsets)."""
    bounds = Bbox(grid.offset, tuple(o + s for o, s in zip(grid.offset, grid.size)))
    assume(np.prod(grid.shape) <= 2000)
    expected = set(chunknames(bounds, bounds, "", Vec(*grid.chunk)))
    assert set(grid.names()) == expected
    assert all(grid.locate(name) for name in expected)


def test_absurd_names_are_refused_cheaply():
    grid = ChunkGrid((64, 64, 64), (0, 0, 0), (1000, 1000, 300))
    tracemalloc.start()
    try:
        for name in [
            "0-100000_0-100000_0-1000",  # the one anonymous GET that used to allocate gigabytes
            "0-64_0-64_0-65",  # crosses the edge of its cell
            "1-65_0-64_0-64",  # shifted origin
            "960-1024_0-64_0-64",  # crosses the volume's edge (the real one ends at 1000)
            "960-1000_0-64_256-320",  # z beyond 300
            "1024-1088_0-64_0-64",  # beyond the volume
            "-64-0_0-64_0-64",  # negative: before the offset
            "0-0_0-64_0-64",  # empty
            "64-0_0-64_0-64",  # reversed
            "00-64_0-64_0-64",  # leading zero: not the chunk's name
            "0-064_0-64_0-64",
            "-0-64_0-64_0-64",
            "9" * 300 + "-" + "9" * 301 + "_0-64_0-64",  # absurdly long digits
            "0-64_0-64",
            "0-64_0-64_0-64_0-64",
            "a-b_c-d_e-f",
            "",
        ]:
            assert grid.locate(name) is None, name
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


def test_negative_voxel_offset_names_use_negative_numbers():
    grid = ChunkGrid((64, 64, 64), (-100, 0, 0), (300, 64, 64))
    assert list(grid.names())[:2] == ["-100--36_0-64_0-64", "-36-28_0-64_0-64"]
    assert grid.locate("-100--36_0-64_0-64") == ((-100, 0, 0), (64, 64, 64))
    assert grid.locate("156-200_0-64_0-64") == ((156, 0, 0), (44, 64, 64))


@settings(max_examples=200, deadline=None)
@given(grid=grids(), data=st.data())
def test_morton_code_equals_cloudvolumes(grid, data):
    point = tuple(data.draw(st.integers(0, n - 1)) for n in grid.shape)
    assert grid.morton_code(point) == int(compressed_morton_code([point], np.array(grid.shape))[0])


def test_unusable_scales_are_corrupt_info():
    for scale in [
        {"key": "s", "chunk_sizes": [[0, 64, 64]], "size": [10, 10, 10]},
        {"key": "s", "chunk_sizes": [[64, 64]], "size": [10, 10, 10]},
        {"key": "s", "chunk_sizes": [[64, 64, 64]], "size": [10, -1, 10]},
        {"key": "s", "chunk_sizes": [[64, 64, 64]], "size": [10, 10, 10], "voxel_offset": [0.5, 0, 0]},
        {"key": "s", "chunk_sizes": [[64, 64, 64]], "size": [10, 10, 2**70]},
        {"key": "s", "size": [10, 10, 10]},
    ]:
        with pytest.raises(CorruptStoredData):
            ChunkGrid.from_scale(scale)


def test_chunk_byte_cap_covers_the_worst_encodings():
    from cloudvolume import chunks

    grid = ChunkGrid((17, 13, 7), (0, 0, 0), (17, 13, 7))
    rng = np.random.default_rng(3)
    for dtype in (np.uint32, np.uint64):
        noise = rng.integers(0, 2**31, size=(17, 13, 7, 1)).astype(dtype)  # every voxel distinct
        for encoding, scale in [
            ("raw", {"encoding": "raw"}),
            (
                "compressed_segmentation",
                {"encoding": "compressed_segmentation", "compressed_segmentation_block_size": [8, 8, 8]},
            ),
        ]:
            encoded = chunks.encode(noise, encoding, block_size=scale.get("compressed_segmentation_block_size"))
            assert len(encoded) <= max_chunk_bytes(grid, scale, np.dtype(dtype).name)
