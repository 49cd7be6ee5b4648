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


@pytest.mark.parametrize("layer", LAYERS)
def test_cloudvolume_over_http_equals_files_at_every_mip(demo_home, demo_server, layer):
    local = f"file://{demo_home.demo_dir / layer}"
    for mip in mips_of(local):
        served = CloudVolume(f"{demo_server.url}/data/demo/{layer}", mip=mip, progress=False)[:, :, :]
        direct = CloudVolume(local, mip=mip, progress=False)[:, :, :]
        assert served.shape == direct.shape
        assert np.array_equal(served, direct), (layer, mip)


@pytest.mark.parametrize("layer", LAYERS)
def test_tensorstore_over_http_equals_files_at_every_mip(demo_home, demo_server, layer):
    ts = pytest.importorskip("tensorstore")
    local = f"file://{demo_home.demo_dir / layer}"
    for mip in mips_of(local):
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": f"{demo_server.url}/data/demo/{layer}/",
             "scale_index": mip},
            read=True,
        ).result()
        served = store.read().result()
        direct = np.asarray(CloudVolume(local, mip=mip, progress=False)[:, :, :])
        assert served.shape == direct.shape
        assert np.array_equal(served, direct), (layer, mip)
        assert served.any()


def test_sharded_and_unsharded_layouts_serve_the_same_labels(demo_server):
    for mip in (0, 1):
        a = CloudVolume(f"{demo_server.url}/data/demo/segmentation", mip=mip, progress=False)[:, :, :]
        b = CloudVolume(f"{demo_server.url}/data/demo/segmentation_sharded", mip=mip, progress=False)[:, :, :]
        assert np.array_equal(a, b)


def test_sharded_info_and_shard_ranges(demo_server):
    info = json.load(urllib.request.urlopen(f"{demo_server.url}/data/demo/segmentation_sharded/info"))
    scale = info["scales"][0]
    assert scale["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    cv = CloudVolume(f"{demo_server.url}/data/demo/segmentation_sharded", progress=False)
    assert cv.image.is_sharded(0)


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
