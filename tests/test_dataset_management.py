"""Datasets as labs have them: several segmentation layers, no image, a vocabulary of their own,
removal that leaves nothing behind, and a default view framed to the volume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from cloudvolume import CloudVolume

from tests.helpers import SQLITE_ONLY, call, proofreader_token, write_volume

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def layered(settings, small_volumes, tmp_path):
    """Dataset `multi`: a graph over 4 slabs {1,2} {3,4}, a sharded-free copy of those supervoxels, and
    a ground-truth layer with different labels (7 and 9) that is not the graph's."""
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset
    from server import create_app
    from server.runner import BackgroundServer

    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    for label in range(1, 5):
        labels[(label - 1) * 8 : label * 8] = label
    truth = np.where(labels <= 2, 7, 9).astype(np.uint32)
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    copy = write_volume(tmp_path / "copy", labels, layer_type="segmentation", encoding="raw")
    gt = write_volume(tmp_path / "gt", truth, layer_type="segmentation", encoding="compressed_segmentation")
    app = create_app(settings)
    Datasets(settings.database_url).add(
        "multi",
        image=small_volumes["image"],
        segmentation=seg,
        supervoxel_layers={"copy": copy},
        extra_layers={"truth": gt},
    )
    ingest_dataset(settings.database_url, "multi", agglomeration=[[1, 2], [3, 4]], progress=False)
    with BackgroundServer(app) as server:
        server.labels, server.truth, server.database_url = labels, truth, settings.database_url
        yield server


def read(url):
    return CloudVolume(url, mip=0, progress=False)[:, :, :][..., 0]


@SQLITE_ONLY
def test_layers_that_are_not_the_graphs_are_served_as_stored(layered):
    base = f"{layered.url}/data/multi"
    np.testing.assert_array_equal(read(f"{base}/truth"), layered.truth)  # today: 409 "disagree"
    roots = read(f"{base}/segmentation")
    assert len(np.unique(roots)) == 2 and (roots >> np.uint64(56) == 10).all()  # two root ids
    np.testing.assert_array_equal(read(f"{base}/copy"), roots)  # another layout of the supervoxels: live too
    info = json.loads(call(f"{base}/truth/info")[1])
    assert info["data_type"] == "uint32"
    dataset = json.loads(call(f"{layered.url}/api/v1/datasets/multi")[1])
    assert dataset["graph_layer"] == "segmentation"
    assert {layer["name"]: layer["supervoxels"] for layer in dataset["layers"]} == {
        "image": False,
        "segmentation": True,
        "copy": True,
        "truth": False,
    }
    state = json.loads(call(f"{layered.url}/api/v1/datasets/multi/state")[1])
    shown = {layer["name"]: layer.get("visible", True) for layer in state["layers"]}
    assert shown == {"image": True, "segmentation": True, "truth": True}  # the copy is not listed twice
    assert [layer["name"] for layer in state["layers"]] == ["image", "truth", "segmentation"]  # proofread on top
    assert state["layers"][2]["source"].startswith("graphene://") and state["selectedLayer"]["layer"] == "segmentation"


@SQLITE_ONLY
def test_a_dataset_without_an_image(settings, small_volumes, tmp_path):
    from segmentation.datasets import Datasets
    from server import create_app

    app = create_app(settings)
    dataset = Datasets(settings.database_url).add("segonly", segmentation=small_volumes["segmentation"])
    assert [layer.name for layer in dataset.layers] == ["segmentation"]
    client = app.test_client()
    state = client.get("/api/v1/datasets/segonly/state").get_json()
    assert [layer["name"] for layer in state["layers"]] == ["segmentation"]
    assert client.get("/data/segonly/segmentation/info").status_code == 200
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "add-dataset",
            "cli_segonly",
            "--segmentation",
            small_volumes["segmentation"],
            "--home",
            str(tmp_path / "clihome"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [layer["name"] for layer in json.loads(result.stdout)["layers"]] == ["segmentation"]


def test_removing_a_dataset_leaves_nothing_behind(layered, small_volumes, tmp_path):
    import sqlalchemy as sa

    from segmentation.access import Accounts, AuditLog
    from segmentation.celltypes.tags import CellTags
    from segmentation.datasets import Datasets
    from segmentation.db import engine_for
    from segmentation.graph import Graph, GraphNotIngested, ingest_dataset

    url, token = layered.database_url, proofreader_token(layered.database_url, "multi")
    assert (
        call(
            f"{layered.url}/api/v1/datasets/multi/tags",
            json.dumps({"position": [4, 16, 4], "term": "astrocyte"}).encode(),
            token=token,
        )[0]
        == 201
    )
    state = {
        "layers": [
            {
                "type": "segmentation",
                "name": "s",
                "segments": [str(Graph.open(url, "multi").root((1 << 56) | 1))],
                "source": f"precomputed://{layered.url}/data/multi/segmentation",
            }
        ]
    }
    status, body = call(f"{layered.url}/api/v1/states", json.dumps(state).encode())
    short = json.loads(body)["short_id"]
    other_process_graph = Graph(url, "multi")  # what another worker holds
    other_process_tags = CellTags(url)
    assert [t.term for t, _ in other_process_tags.of_dataset("multi")] == ["astrocyte"]

    removed = Datasets(url).remove("multi", by="tests")
    assert removed["tags"] == 1 and removed["supervoxels"] == 4 and removed["anchors"] == 1
    with engine_for(url).connect() as connection:
        for table in (
            "graph_supervoxels",
            "graph_edges",
            "graph_operations",
            "graph_state",
            "cell_tags",
            "grants",
            "layers",
            "state_anchors",
        ):
            assert connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 0, table
    assert AuditLog(url).entries(action="dataset.remove")[0]["dataset"] == "multi"
    assert call(f"{layered.url}/api/v1/datasets/multi")[0] == 404
    assert not Path(urlsplit(other_process_graph.base_url).path).exists()  # the graph's files are gone too
    assert call(f"{layered.url}/api/v1/states/{short}")[0] == 404  # its links read as missing
    with pytest.raises(GraphNotIngested):
        other_process_graph.roots([(1 << 56) | 1])  # a worker holding the old graph learns at its next read

    # a new dataset of the same name starts clean, in this process and in the others
    again = write_volume(tmp_path / "again", layered.labels, layer_type="segmentation", encoding="raw")
    Datasets(url).add("multi", segmentation=again)
    ingest_dataset(url, "multi", progress=False)
    assert other_process_tags.of_dataset("multi") == [] and CellTags(url).of_dataset("multi") == []
    assert call(f"{layered.url}/api/v1/states/{short}")[0] == 404  # old links do not show the new dataset
    assert Accounts(url).grants("multi") == []


@SQLITE_ONLY
def test_remove_dataset_from_the_cli_asks_first(layered, tmp_path):
    env_args = ["--database-url", layered.database_url, "--home", str(tmp_path)]
    asked = subprocess.run(
        [sys.executable, "-m", "server.cli", "remove-dataset", "multi", *env_args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert asked.returncode == 1 and "--yes" in asked.stderr
    assert call(f"{layered.url}/api/v1/datasets/multi")[0] == 200
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "remove-dataset", "multi", "--yes", *env_args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == "multi"


@SQLITE_ONLY
def test_a_fly_dataset_speaks_fly_and_unknown_terms_say_how_to_add_them(settings, small_volumes, tmp_path):
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset
    from server import create_app

    app = create_app(settings)
    labels = np.zeros((32, 32, 8), dtype=np.uint32)
    labels[:16], labels[16:] = 1, 2
    seg = write_volume(tmp_path / "fly", labels, layer_type="segmentation", encoding="compressed_segmentation")
    Datasets(settings.database_url).add("fly", segmentation=seg, vocabulary="fly")
    ingest_dataset(settings.database_url, "fly", progress=False)
    token = proofreader_token(settings.database_url, "fly")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/v1/datasets/fly/tags", json={"position": [4, 4, 4], "term": "KC"}, headers=headers)
    assert made.status_code == 201 and made.get_json()["term"] == "Kenyon cell"
    refused = client.post(
        "/api/v1/datasets/fly/tags", json={"position": [4, 4, 4], "term": "L2/3 PC"}, headers=headers
    ).get_json()
    assert "unknown cell type" in refused["message"]
    assert "vocabularies/fly.json" in refused["how_to_add"] and '"name": "L2/3 PC"' in refused["how_to_add"]
    assert client.get("/api/v1/vocabulary?dataset=fly").get_json()["terms"][0]["name"] == "neuron"
    assert "Kenyon cell" in json.dumps(client.get("/api/v1/vocabulary?dataset=fly").get_json())
    with pytest.raises(ValueError, match="no vocabulary named 'worm'"):
        Datasets(settings.database_url).add("worm", segmentation=seg, vocabulary="worm")


def test_the_default_view_frames_the_volume():
    from frontend_config import default_state
    from segmentation.datasets import Dataset, Layer

    def view(size, resolution):
        dataset = Dataset(
            "d",
            "",
            "",
            "",
            list(resolution),
            list(size),
            [0, 0, 0],
            "",
            layers=(Layer("segmentation", "segmentation", "file:///x", True),),
        )
        state = default_state(dataset, "http://h")
        return state["crossSectionScale"], state["projectionScale"]

    small, large = view((64, 48, 20), (8, 8, 40)), view((40_000, 40_000, 4_000), (4, 4, 40))
    assert small == (0.125, 150.0)  # 800 nm across 800 screen pixels: 1 nm (1/8 voxel) per pixel
    assert large[0] == pytest.approx(50.0) and large[1] == pytest.approx(60_000.0)
    assert large[0] / small[0] == pytest.approx(400) and large[1] / small[1] == pytest.approx(400)


@SQLITE_ONLY
def test_no_favicon_404(app, client):
    assert client.get("/favicon.ico").status_code == 204
    for page in ("/login", "/datasets"):
        assert b'<link rel="icon" href="data:,">' in client.get(page).data
