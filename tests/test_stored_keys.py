"""Stored layers answer only the files their grid can hold: off-grid chunk names are 404 unread.

A dataset without a graph serves its layers as stored (no decoding), yet a chunk name is still
checked against its scale's grid, a sharded scale serves its shard files and nothing named like a
chunk, and a layer served live never leaks its stored supervoxel files under another name.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.layers import blank_image, sharding, write_layer

SHAPE, OFFSET, CHUNK = (61, 45, 23), (5, 3, 2), (17, 13, 7)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from segmentation.config import Settings, sqlite_url
    from segmentation.datasets import Datasets
    from server import create_app

    root = tmp_path_factory.mktemp("stored-keys")
    settings = Settings.load(home=root / "home", database_url=sqlite_url(root / "a.sqlite"))
    labels = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 7 + 1).astype(np.uint32)
    image = blank_image(root / "image", SHAPE, chunk=CHUNK, offset=OFFSET)
    plain = write_layer(root / "plain", [labels], encoding="compressed_segmentation", chunk=CHUNK, offset=OFFSET)
    sharded = write_layer(root / "sharded", [labels], encoding="raw", chunk=CHUNK, offset=OFFSET, shard=sharding())
    app = create_app(settings)
    Datasets(settings.database_url).add("stored", image=image, segmentation=plain, extra_layers={"sharded": sharded})
    return app.test_client()


@pytest.mark.parametrize(
    "name",
    [
        "0-100000_0-100000_0-1000",  # the whole world
        "0-17_0-13_0-7",  # the grid without its offset
        "5-22_3-16_2-8",  # one voxel short
        "56-73_3-16_2-9",  # across the volume's edge (x ends at 66)
        "6-23_3-16_2-9",  # shifted by a voxel
        "-12-5_3-16_2-9",  # before the first chunk
        "5-22_3-16_2-9.gz",  # a stored file name, not a chunk name
        "000005-22_3-16_2-9",  # a non-canonical spelling
    ],
)
def test_off_grid_names_are_404_on_stored_layers(client, name):
    for layer in ("image", "segmentation"):
        answer = client.get(f"/data/stored/{layer}/8_8_40/{name}")
        assert answer.status_code == 404, (layer, name, answer.status_code)


def test_on_grid_chunks_and_shards_are_served(client):
    assert client.get("/data/stored/segmentation/8_8_40/5-22_3-16_2-9").status_code == 200
    assert client.get("/data/stored/segmentation/8_8_40/56-66_42-48_23-25").status_code == 200  # the clipped corner
    assert client.get("/data/stored/image/8_8_40/22-39_16-29_9-16").status_code == 200
    info = client.get("/data/stored/sharded/info").get_json()
    assert "sharding" in info["scales"][0]
    # a sharded scale holds shard files, read by ranges, and no chunk files
    assert client.get("/data/stored/sharded/8_8_40/5-22_3-16_2-9").status_code == 404
    shards = [
        k
        for k in ("0.shard", "1.shard", "2.shard", "3.shard")
        if client.get(f"/data/stored/sharded/8_8_40/{k}", headers={"Range": "bytes=0-15"}).status_code == 206
    ]
    assert shards
    assert client.get("/data/stored/sharded/8_8_40/not-a.shard").status_code == 404


def test_a_live_layer_never_serves_its_stored_chunk_files(cg_server):
    """Supervoxel chunks of a layer served live exist only through the live view (roots, or @supervoxels)."""
    from tests.helpers import call

    status, _ = call(f"{cg_server.url}/data/cg/segmentation/8_8_40/0-16_0-16_0-8")
    assert status == 200
    for name in ("0-16_0-16_0-8.gz", "0-16_0-16_0-8.br", "anything"):
        status, body = call(f"{cg_server.url}/data/cg/segmentation/8_8_40/{name}")
        assert status == 404, (name, body[:100])
