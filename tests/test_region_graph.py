"""Region graph built chunk by chunk equals cc3d's over the whole volume; ingest stores it."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, GraphError, ingest_dataset
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.region_graph import region_graph
from tests.helpers import write_volume


@pytest.mark.parametrize("block", [None, (16, 16, 8), (32, 16, 8)])  # None: one read (the default's minimum)
def test_chunked_contacts_equal_whole_volume_contacts(tmp_path, block):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, size=(40, 36, 20)).astype(np.uint64)
    url = write_volume(
        tmp_path / "seg",
        labels,
        layer_type="segmentation",
        encoding="compressed_segmentation",
        mips=1,
        chunk=(16, 16, 8),
    )
    supervoxels, a, b, area, boxes = region_graph(url, progress=False, chunk=block)
    got = {(int(x), int(y)): float(w) for x, y, w in zip(a, b, area)}
    whole = cc3d.contacts(labels, connectivity=6, surface_area=True, anisotropy=(8, 8, 40))
    want = {(min(k), max(k)): v for k, v in whole.items() if k[0] and k[1]}
    assert got == want
    assert supervoxels.tolist() == [1, 2, 3, 4, 5, 6]
    for label, box in zip(supervoxels.tolist(), boxes.tolist()):
        where = np.argwhere(labels == label)
        assert box == [*where.min(axis=0).tolist(), *(where.max(axis=0) + 1).tolist()]


def test_ingest_dataset_gives_layer_one_ids_and_agglomeration(settings, small_volumes, tmp_path):
    db.upgrade(settings.database_url)
    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    labels[:16] = 11
    labels[16:, :16] = 5
    labels[16:, 16:] = 42
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1)
    Datasets(settings.database_url).add("s", image=small_volumes["image"], segmentation=seg)
    with pytest.raises(GraphError, match=r"not in the volume \(row 0; e.g. label\(s\) 999\)"):
        ingest_dataset(settings.database_url, "s", agglomeration=[[11, 999]], progress=False)
    labels[20:22, 20:22, :] = 7  # inside 42: touches 42 only
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1)
    with pytest.raises(GraphError, match=r"1 agglomeration pair\(s\) are not touching .*\(row 1\)"):
        ingest_dataset(settings.database_url, "s", agglomeration=[[11, 42], [7, 11]], progress=False)
    summary = ingest_dataset(settings.database_url, "s", agglomeration=[[11, 42]], progress=False)
    assert {k: summary[k] for k in ("supervoxels", "edges", "active_edges")} == {
        "supervoxels": 4,
        "edges": 4,
        "active_edges": 1,
    }
    graph = Graph(settings.database_url, "s")
    svs = supervoxel_ids(np.array([11, 42, 5], dtype=np.uint64)).tolist()
    roots = graph.roots(svs)
    assert roots[0] == roots[1] != roots[2]
    with pytest.raises(GraphError, match=r"already has a graph \(use --replace\)"):
        ingest_dataset(settings.database_url, "s", progress=False)


def test_ingest_refuses_mixed_id_layouts(settings, small_volumes):
    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add("m", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    with pytest.raises(GraphError, match="mix plain ids"):
        ingest_dataset(settings.database_url, "m", progress=False)


def test_cli_ingest_graph(tmp_path, small_volumes):
    import json
    import subprocess
    import sys

    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    labels[:16], labels[16:] = 3, 4
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1)
    home = tmp_path / "home"

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args, "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert cli("add-dataset", "c", "--image", small_volumes["image"], "--segmentation", seg).returncode == 0
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("3,4\n")
    done = cli("ingest-graph", "c", "--agglomeration", str(pairs))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["agglomeration"].startswith("1 pairs row(s)")
    assert {k: summary[k] for k in ("supervoxels", "edges", "active_edges", "draco_fragments")} == {
        "supervoxels": 2,
        "edges": 1,
        "active_edges": 1,
        "draco_fragments": 0,
    }  # no meshes in this volume
    again = cli("ingest-graph", "c")
    assert again.returncode == 1 and "already has a graph" in again.stderr
    missing = cli("ingest-graph", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr
