"""The demo dataset: what it holds, and that it looks like a segmented EM volume."""

from __future__ import annotations

import json
import struct
from collections import Counter
from datetime import UTC

import cc3d
import fastremap
import numpy as np
from cloudvolume import CloudVolume

from segmentation.demo import demo_is_built
from segmentation.demo.phantom import make_phantom


def read(demo_home, layer, mip=0):
    return CloudVolume(f"file://{demo_home.demo_dir / layer}", mip=mip, progress=False)[:, :, :][..., 0]


def truth(demo_home):
    return json.loads((demo_home.demo_dir / "ground_truth.json").read_text())


def test_neurons_are_cut_into_supervoxels(demo_home):
    mapping = {int(k): v for k, v in truth(demo_home)["supervoxel_to_neuron"].items()}
    per_neuron = Counter(mapping.values())
    assert 20 <= len(per_neuron) <= 60
    assert min(per_neuron.values()) >= 3
    labels = read(demo_home, "segmentation")
    assert labels.shape == (512, 512, 128) and labels.dtype == np.uint64
    present = set(int(x) for x in fastremap.unique(labels)) - {0}
    assert present == set(mapping)
    assert 0.3 < (labels != 0).mean() < 0.95  # densely packed, with some extracellular space


def test_each_supervoxel_is_one_connected_piece(demo_home):
    labels = read(demo_home, "segmentation")
    components = cc3d.connected_components(labels, connectivity=26)
    assert len(fastremap.unique(components)) == len(fastremap.unique(labels))


def test_image_looks_like_em(demo_home):
    image = read(demo_home, "image").astype(float)
    labels = read(demo_home, "segmentation")
    boundary = np.zeros(labels.shape, dtype=bool)
    boundary[1:] |= labels[1:] != labels[:-1]
    boundary[:-1] |= labels[1:] != labels[:-1]
    interior = (labels != 0) & ~boundary
    interior[1:-1] &= ~boundary[2:] & ~boundary[:-2]
    membrane_mean, cytoplasm_mean = image[boundary].mean(), image[interior].mean()
    assert cytoplasm_mean - membrane_mean > 40, (membrane_mean, cytoplasm_mean)
    assert image[labels == 0].mean() > cytoplasm_mean  # lighter extracellular space
    assert image[interior].std() > 5  # texture and noise, not flat fills


def test_every_mip_exists_and_downsamples(demo_home):
    for layer in ("image", "segmentation", "segmentation_sharded"):
        info = CloudVolume(f"file://{demo_home.demo_dir / layer}", progress=False).info
        assert [s["size"] for s in info["scales"]] == [[512, 512, 128], [256, 256, 128], [128, 128, 128], [64, 64, 128]]
    assert info["scales"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    assert len(list((demo_home.demo_dir / "segmentation_sharded" / "8_8_40").glob("*.shard"))) > 1
    assert read(demo_home, "image", mip=2).shape == (128, 128, 128)


def test_every_supervoxel_has_a_legacy_mesh(demo_home):
    mesh_dir = demo_home.demo_dir / "segmentation" / "mesh"
    bounds = np.array([512 * 8, 512 * 8, 128 * 40])
    for segid in truth(demo_home)["supervoxel_to_neuron"]:
        manifest = json.loads((mesh_dir / f"{segid}:0").read_text())
        data = (mesh_dir / manifest["fragments"][0]).read_bytes()
        (count,) = struct.unpack_from("<I", data)
        vertices = np.frombuffer(data, dtype="<f4", count=3 * count, offset=4).reshape(-1, 3)
        faces = np.frombuffer(data, dtype="<u4", offset=4 + 12 * count)
        assert count > 0 and len(faces) % 3 == 0 and faces.max() < count
        assert (vertices >= -40).all() and (vertices <= bounds + 40).all()


def test_demo_is_small_and_marked_complete(demo_home):
    total = sum(p.stat().st_size for p in demo_home.demo_dir.rglob("*") if p.is_file())
    assert total < 100 * 2**20
    assert demo_is_built(demo_home.demo_dir)


def test_phantom_is_deterministic():
    a = make_phantom(seed=3, neuron_count=5, shape=(64, 64, 16))
    b = make_phantom(seed=3, neuron_count=5, shape=(64, 64, 16))
    c = make_phantom(seed=4, neuron_count=5, shape=(64, 64, 16))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.image, b.image)
    assert a.supervoxel_to_neuron == b.supervoxel_to_neuron
    assert not np.array_equal(a.labels, c.labels)


def test_false_merges_join_different_neurons(demo_home):
    data = truth(demo_home)
    mapping = data["supervoxel_to_neuron"]
    assert len(data["false_merges"]) >= 3
    for a, b in data["false_merges"]:
        assert mapping[str(a)] != mapping[str(b)]


def test_demo_reuses_its_token_while_it_is_valid(fresh_demo):
    import os
    from datetime import datetime, timedelta

    from segmentation.access import Accounts
    from segmentation.demo.install import DEMO_TOKEN_FILE, demo_proofreader_token

    accounts = Accounts(fresh_demo.database_url)
    first = demo_proofreader_token(fresh_demo)
    assert demo_proofreader_token(fresh_demo) == first  # a second start: the same token
    assert os.stat(fresh_demo.home / DEMO_TOKEN_FILE).st_mode & 0o077 == 0  # only its owner reads it
    live = [t for t in accounts.tokens("proofreader") if not t["revoked"]]
    assert len(live) == 1
    accounts.revoke_token(first)
    second = demo_proofreader_token(fresh_demo)  # revoked: a new one
    assert second != first and accounts.authenticate(second).name == "proofreader"
    # one about to expire is replaced too
    _, soon = accounts.create_token("proofreader", expires_at=datetime.now(UTC) + timedelta(days=1))
    (fresh_demo.home / DEMO_TOKEN_FILE).write_text(soon)
    assert demo_proofreader_token(fresh_demo) not in (soon, second)
