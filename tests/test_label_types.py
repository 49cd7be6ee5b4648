"""Every label type labs store, served through the graph: uint8/16/32/64 × raw/compressed_segmentation
× sharded/unsharded × an odd and a wide chunk shape.

Each combination holds the demo's neurons (its phantom at a small size: 23 supervoxels of 16
neurons), written with CloudVolume's own encoders with labels near the top of the type (a view
that kept the stored width would clip root ids), and is ingested with a body table (supervoxel →
neuron). Every view that can carry root ids (now, ``@time``, ``@supervoxels``) must declare
``uint64`` and read back, with CloudVolume and with tensorstore, as exactly the expected labels,
before and after a merge; proofreading goes through caveclient, links and tags follow edits.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import urllib.request

import numpy as np
import pytest
import tinybrain
from cloudvolume import CloudVolume

from segmentation.config import Settings, sqlite_url
from segmentation.graph import Graph
from segmentation.graph.ids import supervoxel_ids
from tests.layers import sharding, write_layer

SHAPE = (80, 64, 16)
CHUNKS = {"odd": dict(chunk=(17, 13, 7), offset=(5, 3, 2)), "wide": dict(chunk=(64, 64, 4), offset=(0, 0, 0))}
TOP = {"uint8": 0, "uint16": 65000, "uint32": 2**32 - 100, "uint64": 2**56 - 100}  # labels are TOP + 1 … 23
ENCODINGS = {
    "uint8": ["raw"],
    "uint16": ["raw"],
    "uint32": ["raw", "compressed_segmentation"],
    "uint64": ["raw", "compressed_segmentation"],
}
COMBOS = [
    f"{dtype}-{encoding[:4]}-{'shd' if sharded else 'uns'}-{chunk}"
    for dtype in TOP
    for encoding in ENCODINGS[dtype]
    for sharded in (False, True)
    for chunk in CHUNKS
]


def combo(name: str) -> tuple[str, str, bool, str]:
    dtype, encoding, sharded, chunk = name.split("-")
    return dtype, "raw" if encoding == "raw" else "compressed_segmentation", sharded == "shd", chunk


@functools.lru_cache(maxsize=1)
def demo_neurons():
    """The demo's phantom at a small size: 23 supervoxels of 16 neurons (some in several pieces)."""
    from segmentation.demo.phantom import make_phantom

    phantom = make_phantom(seed=2, neuron_count=16, shape=SHAPE)
    return phantom.labels, phantom.supervoxel_to_neuron


def labels_of(dtype: str) -> np.ndarray:
    """The demo's supervoxels as TOP + 1 … TOP + 23 in ``dtype`` (0 stays background)."""
    plain, _ = demo_neurons()
    return np.where(plain == 0, 0, plain.astype(np.uint64) + np.uint64(TOP[dtype])).astype(dtype)


def bodies_of(dtype: str) -> dict[int, int]:
    """The body table: each supervoxel label → its demo neuron."""
    _, neuron_of = demo_neurons()
    return {TOP[dtype] + sv: neuron for sv, neuron in neuron_of.items()}


def supervoxel_of_neuron(dtype: str, rank: int) -> int:
    """The graph id of the first supervoxel of the ``rank``-th neuron (neurons in id order)."""
    bodies = bodies_of(dtype)
    neuron = sorted(set(bodies.values()))[rank]
    return int(supervoxel_ids(np.uint64(min(label for label, n in bodies.items() if n == neuron))))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset
    from segmentation.graph.agglomeration import read_agglomeration
    from server import create_app
    from server.runner import BackgroundServer

    root = tmp_path_factory.mktemp("label-types")
    settings = Settings.load(home=root / "home", database_url=sqlite_url(root / "axonlink.sqlite"))
    app = create_app(settings)
    levels = {}
    for name in COMBOS:
        dtype, encoding, sharded, chunk = combo(name)
        labels = labels_of(dtype)
        levels[name] = [labels, *tinybrain.downsample_segmentation(labels, (2, 2, 1), num_mips=1)]
        url = write_layer(
            root / name,
            levels[name],
            encoding=encoding,
            block_size=(8, 8, 4),
            shard=sharding() if sharded else None,
            **CHUNKS[chunk],
        )
        table = root / f"{name}.csv"
        table.write_text("sv_id,body_id\n" + "".join(f"{sv},{body}\n" for sv, body in bodies_of(dtype).items()))
        Datasets(settings.database_url).add(name.replace("-", "_"), segmentation=url)
        ingest_dataset(
            settings.database_url, name.replace("-", "_"), agglomeration=read_agglomeration(str(table)), progress=False
        )
    with BackgroundServer(app) as server:
        server.settings, server.levels = settings, levels
        yield server


def as_roots(labels: np.ndarray, graph: Graph) -> np.ndarray:
    plain = np.unique(labels)
    plain = plain[plain != 0].astype(np.uint64)
    lookup = np.zeros(len(plain) + 1, dtype=np.uint64)
    lookup[1:] = graph.roots(supervoxel_ids(plain).tolist())
    where = np.searchsorted(plain, labels.astype(np.uint64))
    return np.where(labels == 0, np.uint64(0), lookup[np.minimum(where, len(plain) - 1) + 1])


def read_cloudvolume(site, ref: str, mip: int) -> np.ndarray:
    volume = CloudVolume(f"{site.url}/data/{ref}/segmentation", mip=mip, progress=False, cache=False)
    assert volume.dtype == np.uint64
    return np.asarray(volume[volume.bounds])[..., 0]


def read_tensorstore(site, ref: str) -> np.ndarray:
    ts = pytest.importorskip("tensorstore")
    store = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": f"{site.url}/data/{ref}/segmentation/",
            "context": {"cache_pool": {"total_bytes_limit": 0}},
        },
        read=True,
    ).result()
    assert store.dtype.numpy_dtype == np.uint64
    return np.asarray(store.read().result())[..., 0]


def info_of(site, ref: str) -> dict:
    with urllib.request.urlopen(f"{site.url}/data/{ref}/segmentation/info") as response:
        return json.load(response)


@pytest.mark.parametrize("name", COMBOS)
def test_every_view_is_uint64_and_reads_back_before_and_after_an_edit(site, name):
    dataset = name.replace("-", "_")
    dtype, _, _, _ = combo(name)
    graph = Graph.open(site.settings.database_url, dataset)
    levels = site.levels[name]
    moment = datetime.datetime.now(datetime.UTC)
    then = f"{dataset}@{moment.timestamp():.6f}"
    for ref in (dataset, f"{dataset}@supervoxels", then):
        info = info_of(site, ref)
        assert info["data_type"] == "uint64" and all("sharding" not in s for s in info["scales"])
    before = [as_roots(level, graph) for level in levels]
    neurons = len(set(bodies_of(dtype).values()))
    assert len(np.unique(before[0][before[0] != 0])) == neurons  # the body table's neurons, exactly
    for mip in (0, 1):
        assert np.array_equal(read_cloudvolume(site, dataset, mip), before[mip])
        assert np.array_equal(
            read_cloudvolume(site, f"{dataset}@supervoxels", mip), supervoxel_ids(levels[mip].astype(np.uint64))
        )
    assert np.array_equal(read_tensorstore(site, dataset), before[0])
    assert np.array_equal(read_tensorstore(site, f"{dataset}@supervoxels"), supervoxel_ids(levels[0].astype(np.uint64)))

    graph.merge(supervoxel_of_neuron(dtype, 0), supervoxel_of_neuron(dtype, 1), user="t")
    after = [as_roots(level, graph) for level in levels]
    assert len(np.unique(after[0][after[0] != 0])) == neurons - 1
    for mip in (0, 1):
        assert np.array_equal(read_cloudvolume(site, dataset, mip), after[mip])
        assert np.array_equal(read_cloudvolume(site, then, mip), before[mip])
    assert np.array_equal(read_tensorstore(site, dataset), after[0])
    assert np.array_equal(read_tensorstore(site, then), before[0])


def test_the_chunkedgraph_info_declares_uint64(site):
    for name in ("uint16-raw-uns-odd", "uint32-comp-shd-odd"):
        with urllib.request.urlopen(f"{site.url}/segmentation/table/{name.replace('-', '_')}/info") as answer:
            info = json.load(answer)
        assert info["data_type"] == "uint64"
        assert info_of(site, f"{name.replace('-', '_')}@supervoxels")["data_type"] == "uint64"


def test_combos_cover_every_type_encoding_sharding_and_chunk_shape():
    seen = {combo(name) for name in COMBOS}
    assert {c[0] for c in seen} == set(TOP) and {c[2] for c in seen} == {False, True}
    assert ("uint32", "compressed_segmentation", True, "odd") in seen
    assert len(seen) == len(list(itertools.chain.from_iterable(ENCODINGS.values()))) * 2 * len(CHUNKS)


def voxel_of(site, name: str, supervoxel: int) -> np.ndarray:
    """A voxel (absolute coordinates) of ``supervoxel`` in the volume of combination ``name``."""
    label = int(supervoxel) & ((1 << 56) - 1)
    where = np.argwhere(site.levels[name][0] == label)
    return where[len(where) // 2] + np.array(CHUNKS[combo(name)[3]]["offset"])


@pytest.mark.parametrize(
    "name", ["uint8-raw-uns-wide", "uint16-raw-shd-odd", "uint32-comp-uns-odd", "uint32-comp-shd-wide"]
)
def test_proofreading_through_caveclient(site, name, tmp_path, monkeypatch):
    """Merge by points and split by points on labels of every width, as a proofreader's client does."""
    caveclient = pytest.importorskip("caveclient")
    from tests.helpers import proofreader_token

    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient writes its caches under ~
    dataset = name.replace("-", "_")
    dtype = combo(name)[0]
    resolution = np.array([8, 8, 40])
    cg = caveclient.CAVEclient(
        datastack_name=dataset,
        server_address=site.url,
        write_server_cache=False,
        auth_token=proofreader_token(site.settings.database_url, dataset),
    ).chunkedgraph
    four, five = supervoxel_of_neuron(dtype, 2), supervoxel_of_neuron(dtype, 3)  # two neurons
    assert cg.get_root_id(four) != cg.get_root_id(five)
    points = [voxel_of(site, name, four), voxel_of(site, name, five)]
    merged = cg.do_merge([four, five], points, resolution=resolution)
    (root,) = [int(r) for r in merged["new_root_ids"]]
    assert cg.get_roots([four, five]).tolist() == [root, root]
    served = read_cloudvolume(site, dataset, 0)
    graph = Graph.open(site.settings.database_url, dataset)
    assert np.array_equal(served, as_roots(site.levels[name][0], graph))
    _, parts = cg.execute_split([points[0] * resolution], [points[1] * resolution], root)
    assert len(parts) == 2 and cg.get_root_id(four) != cg.get_root_id(five)
    assert np.array_equal(read_tensorstore(site, dataset), as_roots(site.levels[name][0], graph))


@pytest.mark.parametrize("name", ["uint16-raw-shd-odd", "uint32-comp-uns-wide", "uint8-raw-uns-odd"])
def test_links_and_tags_follow_an_edit_on_every_label_type(site, name):
    """A voxel link and a cell-type tag on narrow labels find their supervoxel, and follow a merge."""
    from tests.helpers import call, proofreader_token

    dataset = name.replace("-", "_")
    dtype = combo(name)[0]
    eleven, twelve = supervoxel_of_neuron(dtype, 4), supervoxel_of_neuron(dtype, 5)
    token = proofreader_token(site.settings.database_url, dataset)
    status, body = call(
        f"{site.url}/api/v1/links/at",
        json.dumps({"dataset": dataset, "voxel": voxel_of(site, name, eleven).tolist()}).encode(),
        token=token,
    )
    assert status == 201, body
    link = json.loads(body)
    assert link["anchors"][0]["supervoxel_id"] == str(eleven)
    status, body = call(
        f"{site.url}/api/v1/datasets/{dataset}/tags",
        json.dumps({"position": voxel_of(site, name, twelve).tolist(), "term": "astrocyte"}).encode(),
        token=token,
    )
    assert status == 201, body
    graph = Graph.open(site.settings.database_url, dataset)
    assert json.loads(body)["root_id"] == str(graph.roots([twelve])[0])

    (merged,) = graph.merge(eleven, twelve, user="t").new_root_ids
    now = json.loads(call(f"{site.url}/api/v1/states/{link['short_id']}/now.json", token=token)[1])
    assert [layer for layer in now["layers"] if layer["type"] == "segmentation"][0]["segments"] == [str(merged)]
    tags = json.loads(call(f"{site.url}/api/v1/datasets/{dataset}/tags", token=token)[1])["tags"]
    assert [tag["root_id"] for tag in tags] == [str(merged)]
