"""The live view serves exactly the chunks of its grid, from sharded and unsharded layers, and refuses the rest.

Four datasets with a graph share one odd grid (17×13×7 chunks from voxel offset (5, 3, 2),
61×45×23 voxels, two mips): unsharded compressed_segmentation and raw, sharded
compressed_segmentation (identity hash, gzip) and sharded raw (MurmurHash3, gzip minishard
index). Every chunk of every view reads back with CloudVolume; names off the grid are 404
without allocating; corrupt stored bytes are a 5xx while other chunks keep being served.
"""

from __future__ import annotations

import datetime
import gzip
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tinybrain
from cloudvolume import CloudVolume, chunks

from segmentation.config import Settings, sqlite_url
from segmentation.graph import Graph
from segmentation.graph.ids import supervoxel_ids
from tests.layers import blank_image, sharding, write_layer, write_sparse_sharded

SHAPE, OFFSET, CHUNK = (61, 45, 23), (5, 3, 2), (17, 13, 7)
KINDS = {
    "uns": dict(encoding="compressed_segmentation", block_size=(8, 8, 4)),
    "unsraw": dict(encoding="raw"),
    "shd": dict(encoding="compressed_segmentation", shard=sharding()),
    "mmh": dict(
        encoding="raw",
        shard=sharding("murmurhash3_x86_128", preshift_bits=0, minishard_bits=2, shard_bits=3, data_encoding="raw"),
    ),
}
AGGLOMERATION = [[1, 2], [1, 8], [10, 11]]


def plain_labels() -> np.ndarray:
    """21 slabs (7 along x, 3 along y) of plain labels 1..21, background above z = 20."""
    x, y, _ = np.indices(SHAPE)
    labels = (1 + np.minimum(x // 9, 6) + 7 * np.minimum(y // 15, 2)).astype(np.uint64)
    labels[:, :, 20:] = 0
    return labels


def build_dataset(root: Path, settings, name: str, kind: str, image_url: str):
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    labels = plain_labels()
    levels = [labels, *tinybrain.downsample_segmentation(labels, (2, 2, 1), num_mips=1)]
    spec = KINDS[kind]
    url = write_layer(
        root / name,
        levels,
        encoding=spec["encoding"],
        chunk=CHUNK,
        offset=OFFSET,
        block_size=spec.get("block_size", (8, 8, 8)),
        shard=spec.get("shard"),
    )
    Datasets(settings.database_url).add(name, image=image_url, segmentation=url)
    ingest_dataset(settings.database_url, name, agglomeration=AGGLOMERATION, progress=False)
    return levels


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from server import create_app
    from server.runner import BackgroundServer

    root = tmp_path_factory.mktemp("live-grid")
    settings = Settings.load(home=root / "home", database_url=sqlite_url(root / "axonlink.sqlite"))
    image = blank_image(root / "image", SHAPE, chunk=CHUNK, offset=OFFSET)
    app = create_app(settings)
    levels = {name: build_dataset(root, settings, name, name, image) for name in KINDS}
    with BackgroundServer(app) as server:
        server.app, server.settings, server.root, server.image, server.levels = app, settings, root, image, levels
        yield server


def served(site, ref, mip):
    volume = CloudVolume(f"{site.url}/data/{ref}/segmentation", mip=mip, progress=False, cache=False)
    assert volume.bounds.minpt.tolist() == (np.array(OFFSET) // [2**mip, 2**mip, 1]).tolist()
    return np.asarray(volume[volume.bounds])[..., 0]


def as_roots(labels, graph):
    plain = np.unique(labels)
    plain = plain[plain != 0]
    roots = graph.roots(supervoxel_ids(plain).tolist())
    lookup = dict(zip(plain.tolist(), roots))
    lookup[0] = 0
    return np.vectorize(lookup.get, otypes=[np.uint64])(labels)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_chunk_of_every_view_reads_back(site, name):
    graph = Graph.open(site.settings.database_url, name)
    levels = site.levels[name]
    before = [as_roots(level, graph) for level in levels]
    for mip in (0, 1):
        assert np.array_equal(served(site, name, mip), before[mip])
        assert np.array_equal(served(site, f"{name}@supervoxels", mip), supervoxel_ids(levels[mip]))
    moment = datetime.datetime.now(datetime.UTC)
    graph.merge(int(supervoxel_ids(np.uint64(1))), int(supervoxel_ids(np.uint64(21))), user="t")
    after = [as_roots(level, graph) for level in levels]
    assert not np.array_equal(after[0], before[0])
    for mip in (0, 1):
        assert np.array_equal(served(site, name, mip), after[mip])
        assert np.array_equal(served(site, f"{name}@{moment.isoformat()}", mip), before[mip])


def off_grid_names(scale):
    """Names that are not chunks of ``scale``'s grid (offset, chunk 17×13×7, clipped at the edge)."""
    (ox, oy, oz), sx = scale["voxel_offset"], scale["size"][0]
    last_x = ox + (sx - 1) // 17 * 17
    return [
        "0-100000_0-100000_0-1000",  # the anonymous GET that allocated gigabytes on sharded layers
        f"0-{ox + 17}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # starts before the offset
        f"{ox + 1}-{ox + 18}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # shifted origin
        f"{ox}-{ox + 34}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # two chunks in one
        f"{last_x}-{last_x + 17}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # crosses the volume's edge
        f"{ox + sx}-{ox + sx + 17}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # beyond the volume
        f"{ox}-{ox + 17}_{oy}-{oy + 13}_{oz}-{oz + 6}",  # short of its cell
        "0" * 30 + f"{ox}-{ox + 17}_{oy}-{oy + 13}_{oz}-{oz + 7}",  # absurd digits
    ]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_names_off_the_grid_are_404_without_allocating(site, name):
    client = site.app.test_client()
    info = client.get(f"/data/{name}/segmentation/info").get_json()
    moment = "2030-01-01T00:00:00Z"
    for scale in info["scales"]:
        first = (
            f"{scale['voxel_offset'][0]}-{scale['voxel_offset'][0] + 17}_"
            f"{scale['voxel_offset'][1]}-{scale['voxel_offset'][1] + 13}_"
            f"{scale['voxel_offset'][2]}-{scale['voxel_offset'][2] + 7}"
        )
        for ref in (name, f"{name}@{moment}", f"{name}@supervoxels"):
            assert client.get(f"/data/{ref}/segmentation/{scale['key']}/{first}").status_code == 200
            tracemalloc.start()
            try:
                for bad in off_grid_names(scale):
                    response = client.get(f"/data/{ref}/segmentation/{scale['key']}/{bad}")
                    assert response.status_code == 404, (ref, bad, response.status_code)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 2 * 2**20, (ref, peak)


def test_a_huge_off_grid_request_on_a_huge_sharded_layer_allocates_nothing(tmp_path):
    """A 1024×1024×64 uint64 layer on paper (512 MiB) with two chunks stored: a volume-sized name is missing."""
    from segmentation.live import LiveSegmentation
    from segmentation.storage import open_layer_store

    rng = np.random.default_rng(2)
    cells = {(0, 0, 0): rng.integers(1, 5, size=(64, 64, 64)), (3, 1, 0): rng.integers(1, 5, size=(64, 64, 64))}
    url = write_sparse_sharded(tmp_path / "huge", size=(1024, 1024, 64), chunk=(64, 64, 64), cells=cells)
    live = LiveSegmentation(url, open_layer_store(url), graph=None)  # the supervoxel view needs no graph
    key = live.stored_info["scales"][0]["key"]
    tracemalloc.start()
    try:
        answers = [
            live.supervoxel_chunk(f"{key}/{name}")
            for name in ("0-1024_0-1024_0-64", "0-512_0-512_0-64", "0-100000_0-100000_0-1000", "1-65_0-64_0-64")
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert answers == [None] * 4
    body = live.supervoxel_chunk(f"{key}/192-256_64-128_0-64")
    got = chunks.decode(body, "raw", shape=(64, 64, 64, 1), dtype=np.uint64)[..., 0]
    assert np.array_equal(got, supervoxel_ids(cells[(3, 1, 0)].astype(np.uint64)))
    assert live.supervoxel_chunk(f"{key}/64-128_0-64_0-64") is None  # on the grid, not stored: 404


# ---- corrupt stored bytes: a 5xx for that chunk, the rest keeps being served --------------


@pytest.fixture
def fresh(site, tmp_path):
    """``make(kind)`` → (root, test client) serving a dataset of that kind of its own (files free to corrupt)."""
    from server import create_app

    def make(kind):
        settings = Settings.load(home=tmp_path / "home", database_url=sqlite_url(tmp_path / "axonlink.sqlite"))
        app = create_app(settings)
        build_dataset(tmp_path, settings, kind, kind, site.image)
        return tmp_path, app.test_client()

    return make


def chunk_file(root: Path, name: str, key: str) -> Path:
    base = root / name / key
    return base if base.exists() else base.with_name(base.name + ".gz")


def names_of(client, name):
    info = client.get(f"/data/{name}/segmentation/info").get_json()
    scale = info["scales"][0]
    from segmentation.chunk_grid import ChunkGrid

    return scale["key"], list(ChunkGrid.from_scale(scale).names())


@pytest.mark.parametrize("damage", ["bad header", "gzip bomb", "truncated gzip", "wrong length"])
@pytest.mark.parametrize("name", ["uns", "unsraw"])
def test_corrupt_unsharded_chunk_is_5xx_and_others_still_serve(fresh, name, damage):
    root, client = fresh(name)
    scale, names = names_of(client, name)
    victim, healthy = names[5], names[6:12]
    path = chunk_file(root, name, f"{scale}/{victim}")
    stored = path.read_bytes()
    plain = gzip.decompress(stored) if path.suffix == ".gz" else stored
    if damage == "bad header":
        words = np.frombuffer(plain, dtype="<u4").copy()
        words[0] = 2**30  # channel offset (cseg) / the first voxel (raw: still a valid chunk)
        words[3] = 0xFFFFFFFF
        body = words.tobytes()
        if name == "unsraw":
            body = plain + b"\0" * 8  # raw has no header: one voxel too many
    elif damage == "gzip bomb":
        body = None
        path.write_bytes(gzip.compress(bytes(64 * 2**20), compresslevel=1))
    elif damage == "truncated gzip":
        body = None
        path.write_bytes(gzip.compress(plain)[:-10])
    else:
        body = plain[:-4]
    if body is not None:
        path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)
    for ref in (name, f"{name}@supervoxels", f"{name}@2030-01-01T00:00:00Z"):
        tracemalloc.start()
        try:
            response = client.get(f"/data/{ref}/segmentation/{scale}/{victim}")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert response.status_code == 500, (ref, response.status_code)
        assert "is corrupt" in response.get_json()["message"]  # a clear reason, not "internal server error"
        assert peak < 8 * 2**20, peak
        for other in healthy:
            assert client.get(f"/data/{ref}/segmentation/{scale}/{other}").status_code == 200
        assert client.get(f"/data/{ref}/segmentation/{scale}/{victim}").status_code == 500  # never cached


@pytest.mark.parametrize("name", ["shd", "mmh"])
def test_corrupt_shard_is_5xx_and_other_shards_still_serve(fresh, name):
    root, client = fresh(name)
    scale, names = names_of(client, name)
    shards = sorted((root / name / scale).glob("*.shard"))
    victim = shards[0]
    data = bytearray(victim.read_bytes())
    minishard_bits = json.loads((root / name / "info").read_text())["scales"][0]["sharding"]["minishard_bits"]
    index = np.frombuffer(bytes(data[: 16 << minishard_bits]), dtype="<u8").reshape(-1, 2).copy()
    index[:, 1] = 2**62  # every minishard index claims to run far past the end of the shard
    data[: 16 << minishard_bits] = index.tobytes()
    victim.write_bytes(bytes(data))
    statuses = {}
    tracemalloc.start()
    try:
        for chunk in names:
            statuses[chunk] = client.get(f"/data/{name}/segmentation/{scale}/{chunk}").status_code
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(statuses.values()) == {200, 500}, statuses
    assert peak < 16 * 2**20
    healthy = [c for c, s in statuses.items() if s == 200]
    broken = [c for c, s in statuses.items() if s == 500]
    assert client.get(f"/data/{name}@supervoxels/segmentation/{scale}/{healthy[0]}").status_code == 200
    victim.unlink()  # the shard gone: its chunks are missing, not errors
    assert client.get(f"/data/{name}/segmentation/{scale}/{broken[0]}").status_code == 404
