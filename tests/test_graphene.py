"""The graphene:// source as Neuroglancer's graphene datasource reads it: info, Draco fragments, manifests.

What the stock client asks is summarised in ../shared/docs/neuroglancer-protocols.md; the viewer
itself is driven in tests/test_graphene_browser.py.
"""

from __future__ import annotations

import json

import DracoPy
import numpy as np
import pytest

from tests.helpers import call, proofreader_token


@pytest.fixture
def demo(fresh_demo):
    from segmentation.graph import Graph
    from server import create_app
    from server.runner import BackgroundServer

    with BackgroundServer(create_app(fresh_demo)) as server:
        server.graph = Graph.open(fresh_demo.database_url, "demo")
        server.token = proofreader_token(fresh_demo.database_url, "demo")
        server.settings = fresh_demo
        yield server


def get_json(url):
    status, body = call(url)
    assert status == 200, (url, status, body[:200])
    return json.loads(body)


def test_info_names_a_plain_data_dir_with_a_draco_mesh_directory(demo):
    info = get_json(f"{demo.url}/segmentation/table/demo/info")
    assert info["data_dir"] == f"{demo.url}/data/demo@supervoxels/segmentation"  # a kvstore URL, no scheme prefix
    assert 1 in info["app"]["supported_api_versions"] and len(info["graph"]["chunk_size"]) == 3
    assert info["type"] == "segmentation" and info["scales"][0]["resolution"] == [8, 8, 40]
    assert get_json(f"{info['data_dir']}/{info['mesh']}/info") == {"@type": "neuroglancer_legacy_mesh", "sharding": {}}
    properties = get_json(f"{demo.url}/segmentation/table/demo/{info['segment_properties']}/info")
    assert properties["@type"] == "neuroglancer_segment_properties" and properties["inline"]["ids"]


def test_manifest_lists_the_roots_supervoxels_as_draco_fragments_in_nm(demo):
    graph = demo.graph
    root = graph.root(int(graph.index.sv_ids[0]))
    leaves = sorted(graph.leaves(root).tolist())
    manifest_url = f"{demo.url}/meshing/api/v1/table/demo/manifest/{root}:0?verify=1&prepend_seg_ids=1"
    status, body = call(manifest_url)
    assert status == 200
    assert sorted(int(f) for f in json.loads(body)["fragments"]) == leaves
    # immutable: a root's supervoxels never change
    assert call(manifest_url, headers={"If-None-Match": f'"manifest-{root}"'})[0] == 304
    info = get_json(f"{demo.url}/segmentation/table/demo/info")
    resolution = np.array(info["scales"][0]["resolution"], dtype=float)
    box = graph.index.boxes[graph.index.index_of([leaves[0]])[0]]  # voxel box of the supervoxel
    status, fragment = call(f"{info['data_dir']}/{info['mesh']}/dynamic/{leaves[0]}")
    assert status == 200
    mesh = DracoPy.decode(fragment)
    points = np.asarray(mesh.points)
    assert len(points) > 3 and len(np.asarray(mesh.faces)) > 1
    low, high = np.array(box[:3]) * resolution, np.array(box[3:]) * resolution
    assert (points.min(axis=0) >= low - resolution).all() and (points.max(axis=0) <= high + resolution).all()
    # made once, then kept: the next answer is the same bytes, from <home>/graphene/demo/
    assert (demo.settings.home / "graphene" / "demo" / f"{leaves[0]}.drc").read_bytes() == fragment
    assert call(f"{info['data_dir']}/{info['mesh']}/dynamic/12345")[0] == 404
    assert call(f"{info['data_dir']}/{info['mesh']}/dynamic/..%2Finfo")[0] in (400, 404)
    assert call(f"{demo.url}/meshing/api/v1/table/demo/manifest/{root}:1")[0] == 400
    assert call(f"{demo.url}/meshing/api/v1/table/demo/manifest/{(10 << 56) + 999999}:0")[0] == 404


def test_a_merge_gives_a_new_manifest_at_once_and_old_roots_keep_theirs(demo):
    graph = demo.graph
    svs = graph.index.sv_ids
    a = int(svs[0])
    b = next(int(s) for s in svs if graph.root(int(s)) != graph.root(a))
    root_a, root_b = graph.root(a), graph.root(b)
    before = {
        root: sorted(get_json(f"{demo.url}/meshing/api/v1/table/demo/manifest/{root}:0")["fragments"])
        for root in (root_a, root_b)
    }
    status, body = call(
        f"{demo.url}/segmentation/api/v1/table/demo/merge?int64_as_str=1",
        json.dumps([[str(a), 0, 0, 0], [str(b), 0, 0, 0]]).encode(),
        token=demo.token,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )  # what the viewer sends
    assert status == 200, body
    (merged,) = json.loads(body)["new_root_ids"]
    assert isinstance(merged, str)
    after = sorted(get_json(f"{demo.url}/meshing/api/v1/table/demo/manifest/{merged}:0")["fragments"])
    assert after == sorted(before[root_a] + before[root_b])
    for root in (root_a, root_b):  # a retired root still names what it was
        assert sorted(get_json(f"{demo.url}/meshing/api/v1/table/demo/manifest/{root}:0")["fragments"]) == before[root]
    latest = json.loads(
        call(
            f"{demo.url}/segmentation/api/v1/table/demo/is_latest_roots",
            json.dumps({"node_ids": [merged, str(root_a)]}).encode(),
        )[1]
    )
    assert latest["is_latest"] == [True, False]
    assert json.loads(call(f"{demo.url}/segmentation/api/v1/table/demo/is_latest_roots", b'{"node_ids": []}')[1]) == {
        "is_latest": []
    }


def test_private_graphene_source_is_hidden_like_the_rest(demo):
    from segmentation.access import Accounts

    Accounts(demo.settings.database_url).set_public("demo", False)
    for path in (
        "/segmentation/table/demo/info",
        "/meshing/api/v1/table/demo/manifest/1:0",
        "/data/demo@supervoxels/segmentation/graphene_meshes/info",
        "/segmentation/table/demo/segment_properties/info",
    ):
        assert call(demo.url + path)[0] == 404, path
    assert call(demo.url + "/segmentation/table/demo/info", token=demo.token)[0] == 200


def test_cli_undo_takes_back_the_newest_edit_and_redo_brings_it_back(fresh_demo, capsys):
    from segmentation.access import AuditLog
    from segmentation.graph import Graph
    from server.cli import main

    where = ["--home", str(fresh_demo.home), "--database-url", fresh_demo.database_url]
    assert main(["undo", "demo", *where]) == 1
    assert "no edit to undo" in capsys.readouterr().err
    graph = Graph.open(fresh_demo.database_url, "demo")
    svs = graph.index.sv_ids
    a = int(svs[0])
    b = next(int(s) for s in svs if graph.root(int(s)) != graph.root(a))
    merged = graph.merge(a, b, "someone")
    assert main(["undo", "demo", "--user", "nobody", *where]) == 1
    capsys.readouterr()
    assert main(["undo", "demo", *where]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["undone"] == merged.operation_id
    graph.sync()
    assert graph.root(a) != graph.root(b)
    assert main(["redo", "demo", str(merged.operation_id), *where]) == 0
    graph.sync()
    assert graph.root(a) == graph.root(b)
    entries = AuditLog(fresh_demo.database_url).entries(action="graph.*")
    assert [e["action"] for e in entries[:3]] == ["graph.redo", "graph.undo", "graph.merge"]
    assert entries[0]["user"].startswith("cli:") and entries[0]["origin"] == "cli"
