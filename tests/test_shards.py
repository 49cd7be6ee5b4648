"""The shard reader returns exactly CloudVolume's bytes, and refuses corrupt shards without allocating.

Layers are written with CloudVolume's shard pieces (tests/layers.py): identity and
MurmurHash3 hashes, raw and gzip minishard indexes and data, uint32 and uint64,
compressed_segmentation and raw, an odd 17×13×7 grid from a non-zero offset.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc

import numpy as np
import pytest
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification
from cloudvolume.datasource.precomputed.sharding import ShardReader as CloudVolumeShardReader

from segmentation.chunk_grid import ChunkGrid, max_chunk_bytes
from segmentation.shards import BytesLRU, ShardingSpec, ShardReader
from segmentation.storage import CloudLayerStore, CorruptStoredData, FileLayerStore
from tests.layers import sharding, write_layer

LAYERS = {
    "cseg_u64_identity_gzip": dict(dtype=np.uint64, encoding="compressed_segmentation", shard=sharding()),
    "raw_u32_murmur_raw": dict(
        dtype=np.uint32,
        encoding="raw",
        shard=sharding(
            "murmurhash3_x86_128",
            preshift_bits=0,
            minishard_bits=3,
            shard_bits=5,
            minishard_index_encoding="raw",
            data_encoding="raw",
        ),
    ),
    "raw_u64_murmur_gzip_index": dict(
        dtype=np.uint64,
        encoding="raw",
        shard=sharding("murmurhash3_x86_128", preshift_bits=2, minishard_bits=1, shard_bits=1, data_encoding="raw"),
    ),
    "cseg_u32_one_shard": dict(
        dtype=np.uint32,
        encoding="compressed_segmentation",
        block_size=(4, 4, 2),
        shard=sharding(preshift_bits=0, minishard_bits=0, shard_bits=0),
    ),
}


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(11)
    labels = rng.integers(1, 60, size=(61, 45, 23)).astype(np.uint64)
    labels[:, :, 10:] = 2**40 + 7
    written = {}
    for name, spec in LAYERS.items():
        url = write_layer(
            root / name,
            [labels.astype(spec["dtype"])],
            encoding=spec["encoding"],
            block_size=spec.get("block_size", (8, 8, 8)),
            shard=spec["shard"],
        )
        written[name] = (root / name, url)
    return written


def reader_for(path, store=None, cache=None, mip=0):
    info = json.loads((path / "info").read_text())
    scale = info["scales"][mip]
    grid = ChunkGrid.from_scale(scale)
    spec = ShardingSpec.from_dict(scale["sharding"])
    cap = max_chunk_bytes(grid, scale, info["data_type"])
    reader = ShardReader(
        store or FileLayerStore(path),
        scale["key"],
        spec,
        grid,
        cap,
        cache=cache if cache is not None else BytesLRU(2**20),
    )
    return reader, grid, scale


def all_codes(grid):
    return [grid.morton_code(grid.gridpoint(grid.locate(name)[0])) for name in grid.names()]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_chunk_equals_cloudvolumes(layers, name):
    path, url = layers[name]
    reader, grid, scale = reader_for(path)
    theirs = CloudVolumeShardReader(
        url, CloudVolume(url, progress=False).cache, ShardingSpecification.from_dict(scale["sharding"])
    )
    codes = all_codes(grid)
    assert len(codes) == 4 * 4 * 4
    for code in codes:
        mine = reader.chunk(code)
        assert mine is not None and mine == theirs.get_data(code, scale["key"]), code
    unused = max(codes) + 1
    assert reader.chunk(unused) is None and theirs.get_data(unused, scale["key"]) is None


def test_remote_layers_are_read_the_same_way(layers):
    """Through CloudFiles (file:// and an http:// static server with Range support) as from disk."""
    from bench.static_server import StaticServer

    path, url = layers["raw_u32_murmur_raw"]
    local, grid, _ = reader_for(path)
    with StaticServer(path.parent) as static:
        for store in (CloudLayerStore(url), CloudLayerStore(f"{static.url}/{path.name}")):
            remote, _, _ = reader_for(path, store=store)
            for code in all_codes(grid)[:20]:
                assert remote.chunk(code) == local.chunk(code)


def test_missing_shard_means_missing_chunks(layers, tmp_path):
    path = copy_layer(layers["raw_u32_murmur_raw"][0], tmp_path)
    reader, grid, scale = reader_for(path)
    codes = all_codes(grid)
    gone = sorted((path / scale["key"]).glob("*.shard"))[0]
    gone.unlink()
    answers = [reader.chunk(code) for code in codes]
    assert any(a is None for a in answers) and any(a is not None for a in answers)


def test_indexes_are_cached_within_a_byte_bound(layers):
    path, _ = layers["cseg_u64_identity_gzip"]
    cache = BytesLRU(4096)
    reader, grid, _ = reader_for(path, cache=cache)
    for code in all_codes(grid):
        reader.chunk(code)
        assert cache.nbytes <= 4096
    assert cache.nbytes > 0


# ---- corruption ---------------------------------------------------------------------------


def copy_layer(path, tmp_path):
    target = tmp_path / path.name
    shutil.copytree(path, target)
    return target


class Shard:
    """A shard file opened for surgery with plain numpy (independent of the reader under test)."""

    def __init__(self, path, minishard_bits, raw_index: bool):
        self.path = path
        self.data = bytearray(path.read_bytes())
        self.index_end = 16 << minishard_bits
        self.fixed = np.frombuffer(bytes(self.data[: self.index_end]), dtype="<u8").reshape(-1, 2)
        self.raw_index = raw_index

    def nonempty_minishard(self) -> int:
        return int(np.flatnonzero(self.fixed[:, 1] > self.fixed[:, 0])[0])

    def set_fixed(self, minishard, start, end):
        self.data[16 * minishard : 16 * minishard + 16] = np.array([start, end], dtype="<u8").tobytes()

    def minishard_index(self, minishard):
        start, end = (int(v) + self.index_end for v in self.fixed[minishard])
        assert self.raw_index
        return start, np.frombuffer(bytes(self.data[start:end]), dtype="<u8").reshape(3, -1).copy()

    def set_minishard_index(self, minishard, table):
        start, _ = self.minishard_index(minishard)
        raw = np.ascontiguousarray(table, dtype="<u8").tobytes()
        self.data[start : start + len(raw)] = raw

    def save(self, size=None):
        self.path.write_bytes(bytes(self.data))
        if size is not None:  # a sparse tail: a huge file that costs no disk
            os.truncate(self.path, size)


def assert_refused_cheaply(reader, codes, match=None):
    """Some chunk raises CorruptStoredData; reading every chunk never allocates more than 2 MiB."""
    tracemalloc.start()
    refused = 0
    try:
        for code in codes:
            try:
                reader.chunk(code)
            except CorruptStoredData as error:
                refused += 1
                if match:
                    assert match in error.reason, error.reason
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused, "no chunk was refused"
    assert peak < 2 * 2**20, peak


def surgery(layers, tmp_path, name="raw_u32_murmur_raw"):
    path = copy_layer(layers[name][0], tmp_path)
    reader, grid, scale = reader_for(path)
    shard_path = sorted((path / scale["key"]).glob("*.shard"))[0]
    spec = scale["sharding"]
    shard = Shard(shard_path, spec["minishard_bits"], spec["minishard_index_encoding"] == "raw")
    return reader, all_codes(grid), shard


def test_shard_shorter_than_its_index(layers, tmp_path):
    reader, codes, shard = surgery(layers, tmp_path)
    shard.data = shard.data[: shard.index_end - 3]
    shard.save()
    assert_refused_cheaply(reader, codes, "shard index")


def test_minishard_index_past_the_end_of_the_shard(layers, tmp_path):
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    shard.set_fixed(m, 0, 2**63)
    shard.save()
    assert_refused_cheaply(reader, codes, "outside")


def test_minishard_index_start_after_end(layers, tmp_path):
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    shard.set_fixed(m, int(shard.fixed[m, 1]) + 48, int(shard.fixed[m, 1]))
    shard.save()
    assert_refused_cheaply(reader, codes, "outside")


def test_huge_minishard_index_inside_a_huge_shard(layers, tmp_path):
    """8 GiB claimed by a minishard index of a (sparse) 16 GiB shard: refused by the cap, not read."""
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    shard.set_fixed(m, 0, 8 * 2**30)
    shard.save(size=16 * 2**30)
    assert_refused_cheaply(reader, codes, "cap")


def test_minishard_index_not_whole_entries(layers, tmp_path):
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    shard.set_fixed(m, int(shard.fixed[m, 0]), int(shard.fixed[m, 1]) - 5)
    shard.save()
    assert_refused_cheaply(reader, codes, "entries")


@pytest.mark.parametrize(
    "row, value, reason",
    [
        (2, 2**62, "past the end"),  # a chunk size far past the end of the shard
        (1, 2**64 - 1, "overflow"),  # an offset delta that wraps around
        (1, 2**40, "past the end"),  # an offset far past the end
    ],
)
def test_minishard_entries_that_lie(layers, tmp_path, row, value, reason):
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    _, table = shard.minishard_index(m)
    assert table.shape[1] >= 2
    table[row, -1] = value
    shard.set_minishard_index(m, table)
    shard.save()
    assert_refused_cheaply(reader, codes, reason)


def test_chunk_ids_in_any_order_are_found_as_cloudvolume_finds_them(layers, tmp_path):
    """The spec does not require sorted ids (their deltas add modulo 2**64): swap two entries' ids."""
    path = copy_layer(layers["raw_u32_murmur_raw"][0], tmp_path)
    reader, grid, scale = reader_for(path)
    spec = scale["sharding"]
    swapped = 0
    for shard_path in sorted((path / scale["key"]).glob("*.shard")):
        shard = Shard(shard_path, spec["minishard_bits"], raw_index=True)
        for m in np.flatnonzero(shard.fixed[:, 1] > shard.fixed[:, 0]):
            _, table = shard.minishard_index(int(m))
            if table.shape[1] >= 2:
                ids = np.cumsum(table[0], dtype=np.uint64)
                ids[[0, 1]] = ids[[1, 0]]
                table[0] = np.diff(ids, prepend=np.uint64(0))  # wraps: the second delta is "negative"
                shard.set_minishard_index(int(m), table)
                swapped += 1
        shard.save()
    assert swapped
    theirs = CloudVolumeShardReader(
        f"file://{path}", CloudVolume(f"file://{path}", progress=False).cache, ShardingSpecification.from_dict(spec)
    )
    for code in all_codes(grid):
        assert reader.chunk(code) == theirs.get_data(code, scale["key"])


def test_huge_chunk_inside_a_huge_shard(layers, tmp_path):
    """A minishard entry claiming 4 GiB of data in a (sparse) 16 GiB shard: over the chunk cap."""
    reader, codes, shard = surgery(layers, tmp_path)
    m = shard.nonempty_minishard()
    _, table = shard.minishard_index(m)
    table[2, -1] = 4 * 2**30
    shard.set_minishard_index(m, table)
    shard.save(size=16 * 2**30)
    assert_refused_cheaply(reader, codes, "cap")


def test_flipped_bytes_in_a_gzip_minishard_index(layers, tmp_path):
    reader, codes, shard = surgery(layers, tmp_path, "cseg_u64_identity_gzip")
    m = shard.nonempty_minishard()
    start = int(shard.fixed[m, 0]) + shard.index_end
    for i in range(start + 10, start + 20):
        shard.data[i] ^= 0xFF
    shard.save()
    assert_refused_cheaply(reader, codes, "gzip")


def test_gzip_chunk_that_inflates_past_the_cap(layers, tmp_path):
    """Chunk data replaced by a gzip bomb of the same stored length (the index still agrees)."""
    import zlib

    path = copy_layer(layers["cseg_u64_identity_gzip"][0], tmp_path)
    reader, grid, scale = reader_for(path)
    codes = all_codes(grid)
    # find one chunk's byte range with a reader that has not cached anything yet
    code = codes[0]
    shard_name, minishard = reader.spec.location(code)
    shard_path = path / scale["key"] / shard_name
    data = bytearray(shard_path.read_bytes())
    minishard_data = reader._minishard(f"{scale['key']}/{shard_name}", len(data), minishard)
    i = int(np.searchsorted(minishard_data.ids, code))
    start, end = int(minishard_data.starts[i]), int(minishard_data.ends[i])
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = compressor.compress(bytes(2**20)) + compressor.flush()
    assert len(bomb) <= end - start or pytest.skip("chunk too small to hold the bomb")
    data[start : start + len(bomb)] = bomb
    shard_path.write_bytes(bytes(data))
    fresh, _, _ = reader_for(path)
    assert_refused_cheaply(fresh, [code], "cap")


def test_unusable_sharding_specs_are_corrupt_info():
    good = sharding()
    for change in [
        {"@type": "x"},
        {"hash": "md5"},
        {"shard_bits": 60, "minishard_bits": 10},
        {"preshift_bits": -1},
        {"data_encoding": "zstd"},
        {"minishard_bits": "2"},
    ]:
        with pytest.raises(CorruptStoredData):
            ShardingSpec.from_dict({**good, **change})
