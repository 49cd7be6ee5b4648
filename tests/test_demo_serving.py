"""The demo dataset served over HTTP and read back by CloudVolume and tensorstore: every mip, both layouts."""

from __future__ import annotations

import json
import struct
import urllib.request

import numpy as np
import pytest
from cloudvolume import CloudVolume

LAYERS = ["image", "segmentation", "segmentation_sharded"]


def mips_of(path):
    return range(len(CloudVolume(path, progress=False).info["scales"]))


def as_served(demo_home, layer, array):
    """What the server should answer: images as stored, supervoxels mapped to their current roots."""
    if layer == "image":
        return array
    import fastremap

    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    graph = Graph.open(demo_home.database_url, "demo")
    labels = np.asarray(array)
    unique = fastremap.unique(labels)
    unique = unique[unique != 0]
    mapping = dict(zip(unique.tolist(), graph.roots(supervoxel_ids(unique)).tolist()))
    return fastremap.remap(labels, mapping, preserve_missing_labels=True)


@pytest.mark.parametrize("layer", LAYERS)
def test_cloudvolume_over_http_equals_files_at_every_mip(demo_home, demo_server, layer):
    local = f"file://{demo_home.demo_dir / layer}"
    for mip in mips_of(local):
        served = CloudVolume(f"{demo_server.url}/data/demo/{layer}", mip=mip, progress=False)[:, :, :]
        direct = as_served(demo_home, layer, CloudVolume(local, mip=mip, progress=False)[:, :, :])
        assert served.shape == direct.shape
        assert np.array_equal(served, direct), (layer, mip)


@pytest.mark.parametrize("layer", LAYERS)
def test_tensorstore_over_http_equals_files_at_every_mip(demo_home, demo_server, layer):
    ts = pytest.importorskip("tensorstore")
    local = f"file://{demo_home.demo_dir / layer}"
    for mip in mips_of(local):
        store = ts.open(
            {
                "driver": "neuroglancer_precomputed",
                "kvstore": f"{demo_server.url}/data/demo/{layer}/",
                "scale_index": mip,
            },
            read=True,
        ).result()
        served = store.read().result()
        direct = as_served(demo_home, layer, CloudVolume(local, mip=mip, progress=False)[:, :, :])
        assert served.shape == direct.shape
        assert np.array_equal(served, direct), (layer, mip)
        assert served.any()


def test_sharded_and_unsharded_layouts_serve_the_same_labels(demo_server):
    for mip in (0, 1):
        a = CloudVolume(f"{demo_server.url}/data/demo/segmentation", mip=mip, progress=False)[:, :, :]
        b = CloudVolume(f"{demo_server.url}/data/demo/segmentation_sharded", mip=mip, progress=False)[:, :, :]
        assert np.array_equal(a, b)


def test_sharded_layout_served_by_range_requests(demo_home, tmp_path):
    """Without a graph a sharded layer is served as stored: shard files read with Range requests."""
    from segmentation.config import Settings, sqlite_url
    from segmentation.datasets import Datasets
    from server import create_app
    from server.runner import BackgroundServer

    settings = Settings.load(home=tmp_path, database_url=sqlite_url(tmp_path / "plain.sqlite"))
    app = create_app(settings)
    demo = demo_home.demo_dir
    Datasets(settings.database_url).add(
        "plain", image=str(demo / "image"), segmentation=str(demo / "segmentation_sharded")
    )
    with BackgroundServer(app) as server:
        info = json.load(urllib.request.urlopen(f"{server.url}/data/plain/segmentation/info"))
        assert info["scales"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
        for mip in mips_of(f"file://{demo / 'segmentation_sharded'}"):
            cv = CloudVolume(f"{server.url}/data/plain/segmentation", mip=mip, progress=False)
            assert cv.image.is_sharded(mip)
            direct = CloudVolume(f"file://{demo / 'segmentation'}", mip=mip, progress=False)[:, :, :]
            assert np.array_equal(cv[:, :, :], direct)
        ts = pytest.importorskip("tensorstore")
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": f"{server.url}/data/plain/segmentation/"}, read=True
        ).result()
        assert np.array_equal(
            store.read().result(), CloudVolume(f"file://{demo / 'segmentation'}", progress=False)[:, :, :]
        )


def test_live_view_of_a_sharded_layer_is_unsharded(demo_server):
    info = json.load(urllib.request.urlopen(f"{demo_server.url}/data/demo/segmentation_sharded/info"))
    assert all("sharding" not in scale for scale in info["scales"])


def test_root_mesh_manifest_lists_its_supervoxels_fragments(demo_home, demo_server):
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    truth = json.loads((demo_home.demo_dir / "ground_truth.json").read_text())
    a, b = truth["false_merges"][0]
    graph = Graph.open(demo_home.database_url, "demo")
    root = int(graph.roots(supervoxel_ids(np.array([a], dtype=np.uint64)))[0])
    leaves = graph.leaves(root)
    assert len(leaves) == 2
    with urllib.request.urlopen(f"{demo_server.url}/data/demo/segmentation/mesh/{root}:0") as response:
        manifest = json.load(response)
        assert "immutable" in response.headers["Cache-Control"]
    assert sorted(f.split(":")[0] for f in manifest["fragments"]) == sorted([str(a), str(b)])
    mesh = CloudVolume(f"{demo_server.url}/data/demo/segmentation", progress=False).mesh.get(root)
    mesh = mesh[root] if isinstance(mesh, dict) else mesh
    assert len(mesh.vertices) > 0
    layered = int(supervoxel_ids(np.array([a], dtype=np.uint64))[0])
    with urllib.request.urlopen(f"{demo_server.url}/data/demo@supervoxels/segmentation/mesh/{layered}:0") as response:
        assert [f.split(":")[0] for f in json.load(response)["fragments"]] == [str(a)]


def test_meshes_are_served_in_legacy_format(demo_home, demo_server):
    info = json.load(urllib.request.urlopen(f"{demo_server.url}/data/demo/segmentation/info"))
    assert info["mesh"]
    truth = json.loads((demo_home.demo_dir / "ground_truth.json").read_text())
    segid = int(next(iter(truth["supervoxel_to_neuron"])))
    base = f"{demo_server.url}/data/demo/segmentation/{info['mesh']}"
    with urllib.request.urlopen(f"{base}/{segid}:0") as response:
        assert response.headers["Content-Type"] == "application/json"
        manifest = json.load(response)
    assert manifest["fragments"]
    fragment = urllib.request.urlopen(f"{base}/{manifest['fragments'][0]}").read()
    (num_vertices,) = struct.unpack_from("<I", fragment)
    assert num_vertices > 0
    assert (len(fragment) - 4 - 12 * num_vertices) % 12 == 0
    mesh = CloudVolume(f"{demo_server.url}/data/demo/segmentation", progress=False).mesh.get(segid)
    mesh = mesh[segid] if isinstance(mesh, dict) else mesh
    assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
