"""Cell-type tags through CAVE's materialization API, driven by the real caveclient."""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.request

import pytest
import requests

from tests.helpers import CG_SV as SV

caveclient = pytest.importorskip("caveclient")
pa = pytest.importorskip("pyarrow")

MAT = "/materialize/api/v3/datastack"


def client_for(server):
    return caveclient.CAVEclient(
        datastack_name="cg", server_address=server.url, write_server_cache=False, auth_token=server.token
    )


def call(url, body=None, method=None, token=None):
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(
        url, data=data, method=method or ("POST" if data is not None else "GET"), headers=headers
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def tag(server, position, term):
    status, _, body = call(
        f"{server.url}/api/v1/datasets/cg/tags", {"position": position, "term": term}, token=server.token
    )
    assert status == 201, body
    return json.loads(body)


def merge(server, a, b):
    status, _, body = call(
        f"{server.url}/segmentation/api/v1/table/cg/merge", [[a, 0, 0, 0], [b, 0, 0, 0]], token=server.token
    )
    assert status == 200, body
    return json.loads(body)["new_root_ids"][0]


def now():
    time.sleep(0.01)
    moment = datetime.datetime.now(datetime.UTC)
    time.sleep(0.01)
    return moment


def by_id(df):
    return df.sort_values("id").reset_index(drop=True)


def test_versions_tables_and_metadata(cg_server):
    mat = client_for(cg_server).materialize
    assert str(mat.server_version) == "5.26.4" and mat.api_version == 3
    assert mat.get_versions() == [1] and mat.version == 1
    assert mat.get_tables() == ["cell_types"]
    meta = mat.get_table_metadata("cell_types")
    assert meta["voxel_resolution"] == [8.0, 8.0, 40.0] and meta["schema_type"] == "cell_type_local"
    assert meta["reference_table"] is None
    stamp = mat.get_timestamp()
    assert stamp <= datetime.datetime.now(datetime.UTC)
    assert mat.get_versions_metadata()[0]["expires_on"] > stamp

    merge(cg_server, SV[1], SV[2])  # an edit makes version 2, and version 1 stays as it was
    assert client_for(cg_server).materialize.get_versions() == [1, 2]
    assert mat.get_version_metadata(2)["time_stamp"] > stamp == mat.get_timestamp(1)
    assert mat.get_annotation_count("cell_types") == 0
    pinned = caveclient.CAVEclient(
        datastack_name="cg",
        server_address=cg_server.url,
        write_server_cache=False,
        auth_token=cg_server.token,
        version=1,
    )  # caveclient pins its timestamp too
    assert pinned.materialize.version == 1 and pinned.timestamp == stamp
    assert len(mat.get_tables_metadata()) == 1


def test_live_query_follows_a_merge_at_any_moment(cg_server):
    client = client_for(cg_server)
    mat = client.materialize
    pyramidal = tag(cg_server, [4, 16, 4], "L2/3 pyramidal")  # label 1
    astrocyte = tag(cg_server, [20, 16, 4], "astrocyte")  # label 3
    before_roots = [int(r) for r in client.chunkedgraph.get_roots([SV[0], SV[2]])]
    assert before_roots[0] != before_roots[1]
    mat.get_versions_metadata()  # cached for hours by the client: live_query must still be right
    before = now()
    merged = merge(cg_server, SV[1], SV[2])
    after = now()

    for m in (mat, client_for(cg_server).materialize):  # versions seen before and after the edit
        df = by_id(m.live_query("cell_types", after))
        assert df["id"].tolist() == [pyramidal["id"], astrocyte["id"]]
        assert df["pt_root_id"].tolist() == [merged, merged]
        assert df["pt_supervoxel_id"].tolist() == [SV[0], SV[2]]
        assert df["cell_type"].tolist() == ["L2/3 pyramidal", "astrocyte"]
        assert [list(p) for p in df["pt_position"]] == [[4, 16, 4], [20, 16, 4]]
        past = by_id(m.live_query("cell_types", before))
        assert past["pt_root_id"].tolist() == before_roots

    split = by_id(mat.live_query("cell_types", after, split_positions=True, desired_resolution=[1, 1, 1]))
    assert split[["pt_position_x", "pt_position_y", "pt_position_z"]].values.tolist() == [
        [32.0, 128.0, 160.0],
        [160.0, 128.0, 160.0],
    ]
    assert split.attrs["dataframe_resolution"] == [1.0, 1.0, 1.0]

    # a root-id filter at a moment is mapped to the version's roots and back
    only = mat.live_query("cell_types", before, filter_equal_dict={"pt_root_id": before_roots[1]})
    assert only["id"].tolist() == [astrocyte["id"]] and only["pt_root_id"].tolist() == [before_roots[1]]
    both = mat.live_query("cell_types", after, filter_in_dict={"pt_root_id": [merged]})
    assert sorted(both["id"].tolist()) == [pyramidal["id"], astrocyte["id"]]

    # query_table answers the newest version: the roots of its moment, i.e. now
    fresh = client_for(cg_server).materialize
    assert fresh.version == 2
    assert set(fresh.query_table("cell_types")["pt_root_id"].tolist()) == {merged}


def test_query_table_filters_columns_offset_limit(cg_server):
    mat = client_for(cg_server).materialize
    first = tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    second = tag(cg_server, [12, 16, 4], "L2/3 pyramidal")  # label 2: the same neuron as label 1
    third = tag(cg_server, [28, 16, 4], "astrocyte")  # label 4
    ids = [first["id"], second["id"], third["id"]]
    root_12, root_34 = int(first["root_id"]), int(third["root_id"])

    assert by_id(mat.query_table("cell_types"))["id"].tolist() == ids
    assert mat.query_table("cell_types", filter_equal_dict={"cell_type": "astrocyte"})["id"].tolist() == [ids[2]]
    assert sorted(mat.query_table("cell_types", filter_in_dict={"pt_root_id": [root_12]})["id"]) == ids[:2]
    assert mat.query_table("cell_types", filter_out_dict={"pt_root_id": [root_12]})["id"].tolist() == [ids[2]]
    assert mat.query_table("cell_types", filter_regex_dict={"cell_type": "^L2"})["id"].tolist() == ids[:2]
    assert (
        mat.query_table(
            "cell_types",
            filter_spatial_dict={"pt_position": [[0, 0, 0], [16, 32, 8]]},
        )["id"].tolist()
        == ids[:2]
    )
    assert mat.query_table("cell_types", limit=1, offset=1)["id"].tolist() == [ids[1]]
    picked = mat.query_table(
        "cell_types", select_columns=["cell_type", "pt_root_id"], filter_equal_dict={"pt_root_id": root_34}
    )
    assert list(picked.columns) == ["cell_type", "pt_root_id"]
    assert picked.values.tolist() == [["astrocyte", root_34]]
    assert mat.query_table("cell_types", desired_resolution=[4, 4, 40])["pt_position"].iloc[0].tolist() == [8, 32, 4]
    assert mat.query_table("cell_types", random_sample=2).shape[0] == 2
    assert mat.query_table("cell_types", return_df=False)[0]["id"] == ids[0]


def test_live_live_query_uses_the_tags_and_roots_of_its_moment(cg_server):
    mat = client_for(cg_server).materialize
    kept = tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    before = now()
    late = tag(cg_server, [20, 16, 4], "astrocyte")
    merged = merge(cg_server, SV[1], SV[2])
    call(f"{cg_server.url}/api/v1/tags/{kept['id']}", method="DELETE", token=cg_server.token)
    after = now()

    past = mat.live_live_query("cell_types", before)
    assert past["id"].tolist() == [kept["id"]] and past["pt_root_id"].tolist() == [int(kept["root_id"])]
    present = mat.live_live_query("cell_types", after, filter_equal_dict={"cell_types": {"pt_root_id": merged}})
    assert present["id"].tolist() == [late["id"]] and present["pt_root_id"].tolist() == [merged]
    # caveclient's live_query moves roots to its moment but not tags: it reads the tags in force now
    assert mat.live_query("cell_types", before)["id"].tolist() == [late["id"]]
    with pytest.raises(requests.HTTPError, match="not roots at"):
        mat.live_live_query("cell_types", before, filter_equal_dict={"cell_types": {"pt_root_id": merged}})


def test_answers_are_arrow_streams_as_cave_sends_them(cg_server):
    tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    status, headers, body = call(
        f"{cg_server.url}{MAT}/cg/version/1/table/cell_types/query"
        "?return_pyarrow=True&arrow_format=True&split_positions=True",
        {},
        token=cg_server.token,
    )
    assert status == 200 and headers["Content-Type"] == "data.arrow"
    assert headers["dataframe_resolution"] == "8.0, 8.0, 40.0"
    table = pa.ipc.open_stream(body).read_all()
    assert table.column_names == [
        "id",
        "created",
        "valid",
        "classification_system",
        "cell_type",
        "pt_position_x",
        "pt_position_y",
        "pt_position_z",
        "pt_supervoxel_id",
        "pt_root_id",
    ]
    assert table.schema.field("pt_root_id").type == pa.int64()
    status, _, body = call(
        f"{cg_server.url}{MAT}/cg/version/1/table/cell_types/query?count=true", {}, token=cg_server.token
    )
    assert pa.ipc.open_stream(body).read_all().to_pydict() == {"count": [1]}


def test_bad_requests_are_clear_4xx(cg_server):
    mat = client_for(cg_server).materialize
    with pytest.raises(requests.HTTPError, match="404") as raised:
        mat.query_table("synapses")
    assert "no table" in str(raised.value) and "synapses" in str(raised.value)

    base = f"{cg_server.url}{MAT}/cg/version/1/table/cell_types/query"
    for url, body, status, words in [
        (f"{cg_server.url}{MAT}/nope/versions", None, 404, "nope"),
        (f"{cg_server.url}{MAT}/nope/version/1/table/cell_types/query", {}, 404, "nope"),
        (f"{cg_server.url}{MAT}/cg/version/9/table/cell_types/query", {}, 404, "no version 9"),
        (f"{cg_server.url}{MAT}/cg/version/1/table/synapses/metadata", None, 404, "no table"),
        (base, b"not json", 400, "JSON"),
        (base, [1, 2], 400, "JSON object"),
        (base, {"filter_equal_dict": {"cell_types": {"colour": "red"}}}, 400, "unknown column"),
        (base, {"filter_equal_dict": {"synapses": {"id": 1}}}, 400, "this query is on"),
        (base, {"filter_equal_dict": {"cell_types": {"pt_root_id": "abc"}}}, 400, "integer ids"),
        (base, {"filter_in_dict": {"cell_types": {"cell_type": "astrocyte"}}}, 400, "lists"),
        (base, {"filter_regex_dict": {"cell_types": {"cell_type": "("}}}, 400, "regular expression"),
        (base, {"filter_spatial_dict": {"cell_types": {"pt_position": [[5, 5, 5], [1, 1, 1]]}}}, 400, "min < max"),
        (base, {"limit": 0}, 400, "limit"),
        (base, {"select_columns": ["nope"]}, 400, "unknown column"),
        (base, {"desired_resolution": [1, 1]}, 400, "desired_resolution"),
        (base + "?random_sample=-3", {}, 400, "random_sample"),
        (base + "?return_pyarrow=maybe", {}, 400, "return_pyarrow"),
        (f"{cg_server.url}{MAT}/cg/query", {"table": "cell_types"}, 400, "timestamp"),
        (f"{cg_server.url}{MAT}/cg/query", {"table": "cell_types", "timestamp": "yesterday"}, 400, "timestamp"),
        (
            f"{cg_server.url}{MAT}/cg/query",
            {"table": "cell_types", "timestamp": "2001-01-01T00:00:00Z"},
            400,
            "before the graph",
        ),
        (f"{cg_server.url}{MAT}/cg/query", {"table": "nope", "timestamp": "2001-01-01T00:00:00Z"}, 404, "no table"),
    ]:
        got, headers, answer = call(url, body)
        assert got == status, (url, body, answer)
        assert headers["Content-Type"] == "application/json" and words in json.loads(answer)["message"], answer


def test_without_pyarrow_arrow_is_501_and_json_still_works(cg_server, monkeypatch):
    import sys

    tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # the server's lazy import now fails
    base = f"{cg_server.url}{MAT}/cg/version/1/table/cell_types/query"
    status, _, body = call(base + "?return_pyarrow=True", {})
    assert status == 501 and "install pyarrow" in json.loads(body)["message"]
    status, _, body = call(base + "?return_pyarrow=False", {"select_columns": ["cell_type", "pt_position"]})
    assert status == 200 and json.loads(body) == [
        {"cell_type": "L2/3 pyramidal", "pt_position_x": 4, "pt_position_y": 16, "pt_position_z": 4}
    ]


CATASTROPHIC = r"^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*Z"  # Python's re backtracks for hours on 14 characters


def test_regex_filters_run_in_linear_time_and_cannot_stop_the_server(cg_server):
    import threading

    tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    base = f"{cg_server.url}{MAT}/cg/version/1/table/cell_types/query?return_pyarrow=False"
    body = {"filter_regex_dict": {"cell_types": {"cell_type": CATASTROPHIC}}}
    answers = []
    attackers = [threading.Thread(target=lambda: answers.append(call(base, body)[0])) for _ in range(2)]
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join(timeout=60)
    assert answers == [200, 200]  # answered (no row matches), not still running
    status, _, found = call(base, {"filter_regex_dict": {"cell_types": {"cell_type": "^L2/3"}}})
    assert status == 200 and [r["cell_type"] for r in json.loads(found)] == ["L2/3 pyramidal"]
    for pattern, words in (("a" * 1001, "1000 characters"), (r"(a)\1", "RE2 syntax"), ("(?<=a)b", "RE2 syntax")):
        status, _, answer = call(base, {"filter_regex_dict": {"cell_types": {"cell_type": pattern}}})
        assert status == 400 and words in json.loads(answer)["message"], answer
    status, _, answer = call(base, {"filter_in_dict": {"cell_types": {"id": list(range(10_001))}}})
    assert status == 400 and "10,000" in json.loads(answer)["message"]
