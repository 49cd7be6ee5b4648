"""Connectivity over HTTP, through the real caveclient, and from the command line: import,
partners, matrices, CAVE's synapse table (synapse_query, query_table, live_live_query), the
annotation layer's files, privacy and the 4xx answers to bad requests."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
import requests

from segmentation.graph.ids import supervoxel_ids
from tests.helpers import (
    add_wired_dataset,
    random_synapses,
    synapse_csv,
    wired_synapse_server,
    write_volume,
)

caveclient = pytest.importorskip("caveclient")


@pytest.fixture
def wired_server(settings, tmp_path, monkeypatch):
    """Dataset ``wired`` with 300 random synapses imported over HTTP, served live (tests/helpers.py)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient writes its caches under ~
    with wired_synapse_server(settings, tmp_path, 300) as server:
        yield server


def svs_at(labels, columns, name):
    xyz = np.stack([np.asarray(columns[f"{name}_{a}"]).astype(int) for a in "xyz"], axis=1)
    return supervoxel_ids(labels[xyz[:, 0], xyz[:, 1], xyz[:, 2]].astype(np.uint64))


def roots_of(server, svs, at=None):
    body = {"node_ids": [str(s) for s in svs]}
    params = {"timestamp": at.timestamp()} if at else {}
    answer = requests.post(f"{server.url}/segmentation/api/v1/table/wired/roots", json=body, params=params)
    return np.array([int(r) for r in answer.json()["root_ids"]], dtype=np.uint64)


def brute_roots(server, name, at=None):
    svs = svs_at(server.labels, server.columns, name)
    roots = np.zeros(len(svs), dtype=np.uint64)
    roots[svs != 0] = roots_of(server, svs[svs != 0], at)
    return roots


def client(server, token=None):
    return caveclient.CAVEclient(
        datastack_name="wired", server_address=server.url, write_server_cache=False, auth_token=token
    )


def test_partners_over_http_follow_a_merge_and_answer_the_moment_before(wired_server):
    server = wired_server
    pre, post = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    neuron = int(Counter(pre.tolist()).most_common(1)[0][0])
    answer = requests.get(f"{server.url}/api/v1/datasets/wired/neurons/{neuron}/partners", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    outputs = {int(p["root_id"]): p["synapses"] for p in found["outputs"]["partners"]}
    assert outputs == dict(Counter(post[pre == neuron].tolist()))
    assert found["outputs"]["synapses"] == int((pre == neuron).sum())
    counts = [p["synapses"] for p in found["outputs"]["partners"]]
    assert counts == sorted(counts, reverse=True)  # most synapses first
    before = datetime.now(UTC)
    time.sleep(0.01)
    other = int(next(r for r in np.unique(post).tolist() if r not in (0, neuron)))
    a = supervoxel_ids(np.array([1], dtype=np.uint64))  # merge through the proofreading API
    sv_neuron = int(svs_at(server.labels, server.columns, "pre_pt_position")[pre == neuron][0])
    sv_other = int(svs_at(server.labels, server.columns, "post_pt_position")[post == other][0])
    merged = requests.post(
        f"{server.url}/segmentation/api/v1/table/wired/merge",
        json=[[str(sv_neuron), 0, 0, 0], [str(sv_other), 0, 0, 0]],
        headers={"Authorization": f"Bearer {server.proofreader}"},
    )
    assert merged.status_code == 200, merged.text and a
    new_root = int(merged.json()["new_root_ids"][0])
    now = requests.get(f"{server.url}/api/v1/datasets/wired/neurons/{new_root}/partners", params={"limit": 1000}).json()
    pre2, post2 = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    assert {int(p["root_id"]): p["synapses"] for p in now["outputs"]["partners"]} == dict(
        Counter(post2[pre2 == new_root].tolist())
    )
    assert {int(p["root_id"]): p["synapses"] for p in now["inputs"]["partners"]} == dict(
        Counter(pre2[post2 == new_root].tolist())
    )
    old = requests.get(f"{server.url}/api/v1/datasets/wired/neurons/{neuron}/partners")
    assert old.status_code == 400 and "not neuron root" in old.json()["message"]
    then = requests.get(
        f"{server.url}/api/v1/datasets/wired/neurons/{neuron}/partners",
        params={"t": before.isoformat(), "limit": 1000},
    ).json()
    assert {int(p["root_id"]): p["synapses"] for p in then["outputs"]["partners"]} == outputs


def test_caveclient_synapse_query_query_table_and_live_live_query(wired_server):
    server = wired_server
    cave = client(server)
    assert cave.info.get_datastack_info()["synapse_table"] == "synapses"
    assert sorted(cave.materialize.get_tables()) == ["cell_types", "synapses"]
    pre, post = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    neuron = int(Counter(pre.tolist()).most_common(1)[0][0])
    df = cave.materialize.synapse_query(pre_ids=neuron)
    autapses = int(((pre == neuron) & (post == neuron)).sum())
    assert len(df) == int((pre == neuron).sum()) - autapses  # synapse_query drops autapses
    assert set(df["pre_pt_root_id"]) == {neuron}
    assert Counter(df["post_pt_root_id"].tolist()) == Counter(post[(pre == neuron) & (post != neuron)].tolist())
    first = df.sort_values("id").iloc[0]
    i = int(first["id"]) - 1  # ids were given in file order from 1
    assert list(first["pre_pt_position"]) == [int(server.columns[f"pre_pt_position_{a}"][i]) for a in "xyz"]
    table = cave.materialize.query_table("synapses", filter_in_dict={"post_pt_root_id": [neuron]}, split_positions=True)
    assert len(table) == int((post == neuron).sum()) and "post_pt_position_x" in table.columns
    assert cave.materialize.get_table_metadata("synapses")["schema_type"] == "synapse"
    stamp = datetime.now(UTC)
    live = cave.materialize.live_live_query(
        "synapses", stamp, filter_equal_dict={"synapses": {"pre_pt_root_id": neuron}}
    )
    assert sorted(live["id"].tolist()) == sorted((np.flatnonzero(pre == neuron) + 1).tolist())
    everything = cave.materialize.query_table("synapses")
    assert len(everything) == 300 and everything["size"].isna().sum() == len(range(0, 300, 7))


def test_matrix_between_cell_types_and_neurons(wired_server):
    server = wired_server
    pre, post = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    roots = [int(r) for r in np.unique(np.concatenate([pre, post])) if r]
    types = {roots[0]: "astrocyte", roots[1]: "astrocyte", roots[2]: "microglia"}
    for root, term in types.items():  # tag a voxel of each neuron
        svs = svs_at(server.labels, server.columns, "pre_pt_position")
        i = int(np.flatnonzero(pre == root)[0]) if (pre == root).any() else None
        if i is None:
            i = int(np.flatnonzero(post == root)[0])
            position = [int(server.columns[f"post_pt_position_{a}"][i]) for a in "xyz"]
        else:
            position = [int(server.columns[f"pre_pt_position_{a}"][i]) for a in "xyz"]
        tagged = requests.post(
            f"{server.url}/api/v1/datasets/wired/tags",
            json={"position": position, "term": term},
            headers={"Authorization": f"Bearer {server.proofreader}"},
        )
        assert tagged.status_code == 201, tagged.text and svs is not None
    answer = requests.post(
        f"{server.url}/api/v1/datasets/wired/connectivity",
        json={"pre": {"cell_types": ["astrocyte", "microglia"]}, "post": {"root_ids": [str(r) for r in roots[:5]]}},
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    astro = [r for r, t in types.items() if t == "astrocyte"]
    expected = [
        [int((np.isin(pre, astro) & (post == b)).sum()) for b in roots[:5]],
        [int(((pre == roots[2]) & (post == b)).sum()) for b in roots[:5]],
    ]
    assert found["counts"] == expected and found["neurons"]["pre"] == [2, 1]
    assert found["pre"] == ["astrocyte", "microglia"]
    grouped = requests.get(f"{server.url}/api/v1/connectivity/search", params={"q": "inputs to astrocyte"}).json()
    (answer,) = grouped["datasets"]
    onto = np.isin(post, astro)
    by_type = Counter()
    for partner, n in Counter(pre[onto].tolist()).items():
        by_type[types.get(partner, "(untyped)")] += n
    assert {g["cell_type"]: g["synapses"] for g in answer["groups"]} == dict(by_type)
    assert answer["neurons"] == 2 and answer["synapses"] == int(onto.sum())
    refused = requests.get(f"{server.url}/api/v1/connectivity/search", params={"q": "inputs to astrocyte OR microglia"})
    assert refused.status_code == 400 and "one cell type" in refused.json()["message"]
    import pyarrow as pa

    arrow = requests.post(
        f"{server.url}/api/v1/datasets/wired/connectivity",
        params={"format": "arrow"},
        json={"pre": {"cell_types": ["astrocyte", "microglia"]}, "post": {"root_ids": [str(r) for r in roots[:5]]}},
    )
    cells = pa.ipc.open_stream(arrow.content).read_all().to_pydict()
    assert {(a, b): n for a, b, n in zip(cells["pre"], cells["post"], cells["synapses"])} == {
        (found["pre"][i], found["post"][j]): n for i, row in enumerate(found["counts"]) for j, n in enumerate(row) if n
    }


def test_annotation_layer_files_name_the_neurons_of_the_moment(wired_server):
    from segmentation.connectivity import annotations

    server = wired_server
    base = f"{server.url}/annotations/wired/synapses"
    info = requests.get(f"{base}/info").json()
    assert info["@type"] == "neuroglancer_annotations_v1" and info["annotation_type"] == "LINE"
    assert requests.get(f"{base}/spatial0/0_0_0").content == annotations.EMPTY_CHUNK
    pre, post = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    neuron = int(Counter(pre.tolist()).most_common(1)[0][0])
    body = requests.get(f"{base}/rel_pre/{neuron}").content
    count = int(np.frombuffer(body[:8], "<u8")[0])
    assert count == int((pre == neuron).sum())
    records = np.frombuffer(body[8 : 8 + 28 * count], "<f4").reshape(count, 7)
    ids = np.frombuffer(body[8 + 28 * count :], "<u8")
    expected_ids = np.flatnonzero(pre == neuron) + 1
    assert sorted(ids.tolist()) == sorted(expected_ids.tolist())
    first = int(np.argmin(ids))
    i = int(ids[first]) - 1
    assert records[first, :3].tolist() == [float(server.columns[f"pre_pt_position_{a}"][i]) + 0.5 for a in "xyz"]
    one = requests.get(f"{base}/by_id/{ids[first]}").content
    assert len(one) == 28 + 4 + 8 + 4 + (8 if post[i] else 0)
    assert int(np.frombuffer(one[32:40], "<u8")[0]) == neuron
    assert requests.get(f"{base}/rel_post/12345").content == annotations.EMPTY_CHUNK  # not a root: none
    assert requests.get(f"{base}/by_id/99999").status_code == 404
    assert requests.get(f"{base}/rel_pre/notanumber").status_code == 404
    assert requests.get(f"{server.url}/annotations/wired@supervoxels/synapses/info").status_code == 404


def test_bad_requests_are_clear_4xx_and_writes_need_the_admin_role(wired_server):
    server = wired_server
    url = f"{server.url}/api/v1/datasets/wired"
    for path, params, words in (
        ("/synapses", {}, "root_id"),
        ("/synapses", {"root_id": "x"}, "root id"),
        ("/synapses", {"root_id": "5", "side": "up"}, "side"),
        ("/neurons/5/partners", {}, "not neuron root"),
        ("/neurons/5/partners", {"limit": "0"}, "limit"),
        ("/neurons/0/partners", {}, "root id"),
        (f"/neurons/{2**64}/partners", {}, "not an id"),
        ("/neurons/5/partners", {"t": "yesterday"}, "timestamp"),
        ("/synapses/export", {"format": "xls"}, "format"),
    ):
        answer = requests.get(url + path, params=params)
        assert answer.status_code == 400 and words in answer.json()["message"], (path, answer.text)
    for body, words in (
        ({"pre": {"cell_types": ["astrocyte"]}}, '"post"'),
        ({"pre": {"cell_types": []}, "post": {"root_ids": ["1"]}}, "non-empty"),
        ({"pre": {"cell_types": ["astrocyte"] * 1001}, "post": {"root_ids": ["1"]}}, "at most"),
        ({"pre": {"cell_types": ["no such type"]}, "post": {"cell_types": ["astrocyte"]}}, "no such type"),
        ({"pre": {"root_ids": ["1"]}, "post": {"cell_types": ["astrocyte"]}}, "not neuron root"),
    ):
        answer = requests.post(f"{url}/connectivity", json=body)
        assert 400 <= answer.status_code < 500 and words in answer.json()["message"], (body, answer.text)
    headers = {"Authorization": f"Bearer {server.proofreader}", "Content-Type": "text/csv"}
    refused = requests.post(f"{url}/synapses/import", data=b"a,b\n", headers=headers)
    assert refused.status_code == 403
    admin = {"Authorization": f"Bearer {server.admin}", "Content-Type": "text/csv"}
    not_a_table = requests.post(f"{url}/synapses/import", data=b"a,b\n1,2\n", headers=admin)
    assert not_a_table.status_code == 400 and "pre-synaptic" in not_a_table.json()["message"]
    removed = requests.post(
        f"{url}/synapses/remove", json={"ids": [1, 2]}, headers={"Authorization": f"Bearer {server.admin}"}
    )
    assert removed.json() == {"removed": 2}
    assert (
        requests.post(
            f"{url}/synapses/remove", json={"ids": ["1"]}, headers={"Authorization": f"Bearer {server.admin}"}
        ).status_code
        == 400
    )


def test_export_round_trips_and_private_datasets_stay_private(wired_server, tmp_path):
    import pyarrow.parquet as pq

    from segmentation.access import Accounts
    from segmentation.connectivity import read_table

    server = wired_server
    url = f"{server.url}/api/v1/datasets/wired"
    exported = requests.get(f"{url}/synapses/export", params={"format": "parquet"})
    assert exported.status_code == 200
    table = pq.read_table(io.BytesIO(exported.content))
    assert table.num_rows == 300 and "pre_pt_root_id" in table.column_names
    again = read_table(exported.content)  # what we export, we read back
    assert len(again) == 300 and again.pre_sv is not None
    csv = requests.get(f"{url}/synapses/export").text
    assert csv.splitlines()[0].startswith('"id","created"') and len(csv.splitlines()) == 301
    Accounts(server.settings.database_url).set_public("wired", False, by="tests")
    for path in ("/synapses/export", "/neurons/1/partners", "/synapses?root_id=1"):
        answer = requests.get(url + path)
        assert answer.status_code == 404, (path, answer.status_code)
    assert requests.get(f"{server.url}/annotations/wired/synapses/info").status_code == 404
    mine = requests.get(f"{url}/synapses/export", headers={"Authorization": f"Bearer {server.proofreader}"})
    assert mine.status_code == 200 and "private" in mine.headers["Cache-Control"]


def test_command_line_import_export_partners_and_matrix(settings, tmp_path):
    from segmentation import db

    db.upgrade(settings.database_url)
    image = write_volume(tmp_path / "img", np.zeros((64, 48, 16), np.uint8), layer_type="image", encoding="raw", mips=1)
    labels = add_wired_dataset(settings.database_url, image, tmp_path)
    columns = random_synapses(labels, 100, np.random.default_rng(12))
    source = tmp_path / "synapses.csv"
    source.write_bytes(synapse_csv(columns))
    env = {"AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}

    def axonlink(*args):
        import os

        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, env={**os.environ, **env}
        )

    done = axonlink("synapses", "import", "wired", str(source))
    assert done.returncode == 0 and "added 100 synapse(s)" in done.stdout, done.stderr
    out = tmp_path / "out.parquet"
    assert axonlink("synapses", "export", "wired", "-o", str(out)).returncode == 0
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 100
    svs = svs_at(labels, columns, "pre_pt_position")
    from segmentation.graph.registry import Graphs

    graph = Graphs(settings.database_url).open("wired")
    neuron = int(Counter(graph.roots(svs[svs != 0]).tolist()).most_common(1)[0][0])
    shown = axonlink("partners", "wired", str(neuron), "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    pre = graph.roots(svs)
    assert found["outputs_total"] == int((pre == neuron).sum())
    table = axonlink("connectivity", "wired", "--roots", "--pre", str(neuron), "--post", str(neuron))
    assert table.returncode == 0 and str(neuron) in table.stdout
    grouped = axonlink("search", "outputs of astrocyte")  # nothing tagged: every partner untyped
    assert grouped.returncode == 0, grouped.stderr
    assert "wired: 0 synapse(s) from 0 astrocyte neuron(s)" in grouped.stdout
    refused = axonlink("synapses", "import", "nope", str(source))
    assert refused.returncode == 1 and "no dataset" in refused.stderr.lower()


def test_queries_without_neurons_read_the_table_a_chunk_at_a_time(wired_server, monkeypatch):
    from segmentation.connectivity import cave as synapse_table

    monkeypatch.setattr(synapse_table, "CHUNK_ROWS", 37)  # 300 synapses: 9 chunks
    server = wired_server
    cave = client(server)
    sizes = np.asarray(server.columns["size"])
    page = cave.materialize.query_table("synapses", limit=50, offset=10, filter_greater_dict={"size": 250})
    wanted = np.flatnonzero(sizes > 250) + 1  # ids in file order
    assert sorted(page["id"].tolist()) == sorted(wanted[10:60].tolist())
    url = f"{server.url}/materialize/api/v3/datastack/wired/version/1/table/synapses/query"
    body = {"filter_greater_dict": {"synapses": {"size": 250}}}
    counted = requests.post(url, json=body, params={"count": "true", "return_pyarrow": "false"})
    assert counted.json() == [{"count": len(wanted)}]
    sample = requests.post(url, json={}, params={"random_sample": 20, "return_pyarrow": "false"}).json()
    assert len(sample) == 20 and len({row["id"] for row in sample}) == 20
    everything = cave.materialize.query_table(
        "synapses", filter_spatial_dict={"post_pt_position": [[0, 0, 0], [32, 48, 16]]}
    )
    post_x = np.asarray(server.columns["post_pt_position_x"])
    assert len(everything) == int((post_x <= 32).sum())


def test_pages_show_partners_types_and_a_heatmap(wired_server):
    import re

    server = wired_server
    pre, post = brute_roots(server, "pre_pt_position"), brute_roots(server, "post_pt_position")
    neuron = int(Counter(pre.tolist()).most_common(1)[0][0])
    i = int(np.flatnonzero(pre == neuron)[0])
    position = [int(server.columns[f"pre_pt_position_{a}"][i]) for a in "xyz"]
    tagged = requests.post(
        f"{server.url}/api/v1/datasets/wired/tags",
        json={"position": position, "term": "astrocyte"},
        headers={"Authorization": f"Bearer {server.proofreader}"},
    )
    assert tagged.status_code == 201
    page = requests.get(f"{server.url}/datasets/wired/neurons/{neuron}").text
    outputs = page[page.index('id="partners-outputs"') :]
    outputs = outputs[: outputs.index("</section>")]
    shown = dict(re.findall(r'<tr data-root="(\d+)">\s*<td>.*?</td>\s*<td>(\d+)</td>', outputs, re.S))
    expected = Counter(post[pre == neuron].tolist())
    top = dict(expected.most_common(20))
    assert {int(k): int(v) for k, v in shown.items()} == {k: v for k, v in top.items()}
    assert f"{int((pre == neuron).sum())} synapse" in outputs
    grouped = requests.get(f"{server.url}/search", params={"q": "outputs of astrocyte"})
    assert grouped.status_code == 200 and 'id="connectivity-summary"' in grouped.text
    assert f"{int((pre == neuron).sum())} synapse" in grouped.text
    partner = next(r for r, _ in expected.most_common() if r not in (0, neuron))
    j = int(np.flatnonzero(post == partner)[0])
    spot = [int(server.columns[f"post_pt_position_{a}"][j]) for a in "xyz"]
    requests.post(
        f"{server.url}/api/v1/datasets/wired/tags",
        json={"position": spot, "term": "microglia"},
        headers={"Authorization": f"Bearer {server.proofreader}"},
    )
    params = {"pre": "astrocyte, microglia", "post": "astrocyte, microglia", "dataset": "wired"}
    heat = requests.get(f"{server.url}/search", params=params)
    counts = [int(c) for c in re.findall(r'class="cell" data-count="(\d+)"', heat.text)]
    pair = lambda a, b: int(((pre == a) & (post == b)).sum())  # noqa: E731
    assert counts == [pair(neuron, neuron), pair(neuron, partner), pair(partner, neuron), pair(partner, partner)]
    assert counts[1] == expected[partner] > 0
    wrong = requests.get(f"{server.url}/search", params={"pre": "no such type", "post": "astrocyte"})
    assert wrong.status_code == 400 and 'id="heatmap-problem"' in wrong.text
    bad = requests.get(f"{server.url}/search", params={"q": "inputs to astrocyte user:bob"})
    assert bad.status_code == 400 and "dataset: and t: only" in bad.text


def test_default_state_and_voxel_links_carry_the_synapse_layer(wired_server):
    import urllib.parse

    server = wired_server
    state = requests.get(f"{server.url}/api/v1/datasets/wired/state").json()
    synapse_layer = next(layer for layer in state["layers"] if layer["name"] == "synapses")
    assert synapse_layer["source"].endswith("/annotations/wired/synapses")
    assert set(synapse_layer["linkedSegmentationLayer"]) == {"pre_synaptic_cell", "post_synaptic_cell"}
    moment = datetime.now(UTC).timestamp()
    answer = requests.get(f"{server.url}/at/wired/4,4,4", params={"t": moment}, allow_redirects=False)
    assert answer.status_code == 302
    pinned = json.loads(urllib.parse.unquote(answer.headers["Location"].split("#!", 1)[1]))
    synapse_layer = next(layer for layer in pinned["layers"] if layer["name"] == "synapses")
    assert f"/annotations/wired@{moment:.6f}/synapses" in synapse_layer["source"]
    body = requests.get(synapse_layer["source"].removeprefix("precomputed://") + "/info")
    assert body.status_code == 200 and body.json()["annotation_type"] == "LINE"
