"""The chunkedgraph API driven by the real caveclient against a live server."""

from __future__ import annotations

import datetime
import json
import urllib.request

import numpy as np
import pytest

from tests.helpers import CG_RESOLUTION as RES
from tests.helpers import CG_SV as SV
from tests.helpers import cg_point_nm as centre_nm

caveclient = pytest.importorskip("caveclient")


def client_for(server):
    return caveclient.CAVEclient(
        datastack_name="cg", server_address=server.url, write_server_cache=False, auth_token=server.token
    )


def test_caveclient_roots_leaves_merge_split_undo(cg_server):
    cg = client_for(cg_server).chunkedgraph
    assert cg.segmentation_info["graph"]["n_bits_for_layer_id"] == 8
    roots = cg.get_roots(SV)
    assert roots[0] == roots[1] != roots[2] == roots[3]
    assert cg.get_root_id(SV[0]) == roots[0]
    assert sorted(cg.get_leaves(roots[0]).tolist()) == SV[:2]
    assert sorted(cg.get_leaves_many([roots[2]])[roots[2]].tolist()) == SV[2:]
    before = datetime.datetime.now(datetime.UTC)

    # merge by points: caveclient multiplies voxel coordinates by `resolution`
    voxel = [np.array(centre_nm(2)) / RES, np.array(centre_nm(3)) / RES]
    merged = cg.do_merge([SV[1], SV[2]], voxel, resolution=RES)
    (new_root,) = [int(r) for r in merged["new_root_ids"]]
    assert set(cg.get_roots(SV).tolist()) == {new_root}
    assert cg.is_latest_roots([new_root, roots[0]]).tolist() == [True, False]

    # preview then split, giving only the root and points (the server finds the supervoxels)
    source_cc, sink_cc, success = cg.preview_split([centre_nm(1)], [centre_nm(4)], new_root)
    assert success and SV[0] in source_cc and SV[3] in sink_cc
    assert sorted([*source_cc, *sink_cc]) == SV
    op_id, split_roots = cg.execute_split([centre_nm(1)], [centre_nm(4)], new_root)
    assert len(split_roots) == 2
    assert cg.get_root_id(SV[0]) != cg.get_root_id(SV[3])

    # time travel and history
    assert cg.get_roots(SV, timestamp=before).tolist() == roots.tolist()
    latest = cg.get_latest_roots(roots[0])
    assert cg.get_root_id(SV[0]) in latest.tolist()
    lineage = cg.get_lineage_graph(new_root)
    assert {n["id"] for n in lineage["nodes"]} >= {new_root, int(roots[0]), *split_roots}
    log = cg.get_change_log(split_roots[0])
    assert log["n_mergers"] == 1 and log["n_splits"] == 1
    details = cg.get_operation_details([op_id])
    assert details[str(op_id)]["removed_edges"] and details[str(op_id)]["user"] == "tester"
    old, new = cg.get_delta_roots(before)
    assert set(old.tolist()) == {int(r) for r in set(roots.tolist())} and set(new.tolist()) == set(split_roots)
    stamps = cg.get_root_timestamps([new_root])
    assert stamps[0] > before

    undone = cg.undo_operation(op_id)
    assert set(cg.get_roots(SV).tolist()) == set(int(r) for r in undone["new_root_ids"])


def test_bad_requests_are_clear_4xx(cg_server):
    base = f"{cg_server.url}/segmentation/api/v1/table/cg"

    def post(path, body: bytes):
        request = urllib.request.Request(
            base + path, data=body, method="POST", headers={"Authorization": f"Bearer {cg_server.token}"}
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    assert post("/merge", b"not json")[0] == 400
    status, body = post("/merge", json.dumps([[SV[0], 1, 2, 3]]).encode())
    assert status == 400 and "two points" in body["message"]
    status, body = post("/merge", json.dumps([[SV[0], 0, 0, 0], [SV[1], 0, 0, 0]]).encode())
    assert status == 400 and "already belong" in body["message"]
    status, body = post("/split", json.dumps({"sources": [[SV[0], 0, 0, 0]], "sinks": [[SV[0], 0, 0, 0]]}).encode())
    assert status == 400 and "both source and sink" in body["message"]
    status, body = post("/merge", json.dumps([[0, 1e9, 0, 0], [SV[1], 0, 0, 0]]).encode())
    assert status == 400 and "outside the volume" in body["message"]
    status, body = post("/undo", json.dumps({"operation_id": 999}).encode())
    assert status == 400 and "no operation 999" in body["message"]
    assert post("/roots_binary", b"123")[0] == 400
    try:
        urllib.request.urlopen(f"{cg_server.url}/segmentation/api/v1/table/nope/node/{SV[0]}/root")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    # roots_binary with int64_as_str and a Neuroglancer-style body with no Content-Type
    request = urllib.request.Request(
        base + "/node/leaves_many?int64_as_str=1", data=json.dumps({"node_ids": [str(SV[0])]}).encode(), method="POST"
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response) == {str(SV[0]): [str(SV[0])]}


def test_leaves_within_bounds(cg_server):
    cg = client_for(cg_server).chunkedgraph
    root = int(cg.get_root_id(SV[0]))  # plain labels 1 (x 0-8) and 2 (x 8-16)
    assert sorted(cg.get_leaves(root).tolist()) == SV[:2]
    assert cg.get_leaves(root, bounds=np.array([[0, 4], [0, 32], [0, 8]])).tolist() == [SV[0]]
    assert cg.get_leaves(root, bounds=np.array([[7, 9], [0, 32], [0, 8]])).tolist() == SV[:2]
    assert cg.get_leaves(root, bounds=np.array([[20, 30], [0, 32], [0, 8]])).tolist() == []
    many = cg.get_leaves_many([root], bounds=np.array([[9, 16], [0, 32], [0, 8]]))
    assert many[root].tolist() == [SV[1]]
    bad = urllib.request.Request(
        f"{cg_server.url}/segmentation/api/v1/table/cg/node/{root}/leaves?bounds=1-2_3", method="GET"
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(bad)
    assert error.value.code == 400


def test_history_tables_user_operations_valid_nodes_and_level2_graph(cg_server):
    cg = client_for(cg_server).chunkedgraph
    start = datetime.datetime.now(datetime.UTC)
    roots = [int(r) for r in cg.get_roots(SV)]
    merged = cg.do_merge([SV[1], SV[2]], [np.array(centre_nm(2)) / RES, np.array(centre_nm(3)) / RES], resolution=RES)
    (merged_root,) = [int(r) for r in merged["new_root_ids"]]
    op_id, (left, right) = cg.execute_split([centre_nm(1)], [centre_nm(4)], merged_root)
    after_split = int(cg.get_root_id(SV[0]))

    table = cg.get_tabular_change_log([after_split])[after_split]
    assert table["operation_id"].tolist() == [merged["operation_id"], op_id]
    assert table["is_merge"].tolist() == [True, False]
    assert table["after_root_ids"].tolist() == [[merged_root], [after_split]]
    assert sorted(table["before_root_ids"].iloc[0]) == sorted({roots[0], roots[2]})
    assert table["timestamp"].iloc[0] >= start.timestamp() * 1000 - 1000
    merge_log = cg.get_merge_log(after_split)
    assert merge_log["merge_edges"] == [[[SV[1], SV[2]]]]

    ops = cg.get_user_operations(0, timestamp_start=start)
    assert ops["operation_id"].tolist() == [merged["operation_id"], op_id]
    assert (ops["timestamp"] >= start - datetime.timedelta(seconds=1)).all()

    # valid = alive at some moment between the two timestamps (default: 2000 to now)
    assert cg.is_valid_nodes([merged_root, after_split, 12345, SV[0]]).tolist() == [True, True, False, True]
    now = datetime.datetime.now(datetime.UTC)
    assert cg.is_valid_nodes([merged_root, after_split], start_timestamp=now).tolist() == [False, True]
    assert cg.is_valid_nodes([merged_root], end_timestamp=start).tolist() == [False]

    # the finest level under a root is the supervoxel here: its active edges, bounds honoured
    assert cg.level2_chunk_graph(roots[0]) == [[SV[0], SV[1]]]
    assert cg.level2_chunk_graph(roots[0], bounds=np.array([[0, 4], [0, 32], [0, 8]])) == []
