"""Share links through a live server: stored states, CAVE's state service, /s/ and /at/ links, anchors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from tests.helpers import CG_SV as SV
from tests.helpers import proofreader_token

caveclient = pytest.importorskip("caveclient")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(url, body: bytes | None = None, method: str | None = None, follow=True, token: str | None = None):
    """(status, headers, body bytes) of one request, errors included (``token``: a Bearer token)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, data=body, method=method or ("POST" if body is not None else "GET"), headers=headers
    )
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def segmentation_state(server, segments, position=(4, 16, 4)) -> dict:
    return {
        "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]},
        "position": [p + 0.5 for p in position],
        "layers": [
            {"type": "image", "source": f"precomputed://{server.url}/data/cg/image", "name": "image"},
            {
                "type": "segmentation",
                "source": f"precomputed://{server.url}/data/cg/segmentation",
                "segments": [str(s) for s in segments],
                "name": "cells",
            },
        ],
        "layout": "xy",
    }


def roots_now(server, svs):
    status, _, body = call(f"{server.url}/segmentation/api/v1/table/cg/roots", json.dumps({"node_ids": svs}).encode())
    assert status == 200
    return json.loads(body)["root_ids"]


def edit(server, route, body):
    status, _, answer = call(
        f"{server.url}/segmentation/api/v1/table/cg/{route}", json.dumps(body).encode(), token=server.token
    )
    assert status == 200, answer
    return json.loads(answer)


def test_state_is_stored_exactly_deduplicated_and_reachable_by_both_ids(cg_server):
    raw = b'{"position":[4.5,16.5,4.5],"layers":[],"crossSectionScale":1.0000,"big":18446744073709551615}'
    status, _, body = call(f"{cg_server.url}/api/v1/states?title=mine", raw)
    assert status == 201
    made = json.loads(body)
    assert len(made["short_id"]) <= 8 and made["short_url"].endswith(f"/s/{made['short_id']}")
    for ref in (made["short_id"], str(made["id"])):
        status, headers, stored = call(f"{cg_server.url}/api/v1/states/{ref}")
        assert status == 200 and stored == raw and headers["Content-Type"] == "application/json"
    # the same state with other whitespace and key order: the same ids, nothing new stored
    again = json.dumps(json.loads(raw), indent=2, sort_keys=True).encode()
    status, _, body = call(f"{cg_server.url}/api/v1/states", again)
    assert status == 200 and json.loads(body)["id"] == made["id"]
    status, _, body = call(f"{cg_server.url}/api/v1/states/{made['short_id']}/info")
    info = json.loads(body)
    assert info["title"] == "mine" and info["raw_bytes"] == len(raw) and info["owner"] == "anonymous"
    assert info["views"] == 2  # the two reads above; posting the same state again is not a view
    assert call(f"{cg_server.url}/api/v1/states/zzzzzzz")[0] == 404
    assert call(f"{cg_server.url}/api/v1/states/999999")[0] == 404


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"not json", 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (b'{"a": NaN}', 400, "NaN"),
        (b"\xff\xfe{}", 400, "UTF-8"),
        (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "deep"),
        (b"", 400, ""),
    ],
)
def test_bad_states_are_refused_and_nothing_is_stored(cg_server, body, status, words):
    got, _, answer = call(f"{cg_server.url}/api/v1/states", body, method="POST")
    assert got == status, answer
    assert words.lower() in json.loads(answer)["message"].lower()
    assert call(f"{cg_server.url}/api/v1/states/1")[0] == 404  # nothing stored


def test_state_over_the_limit_is_413_with_the_limit(settings, tmp_path):
    from dataclasses import replace

    from server import create_app
    from server.runner import BackgroundServer

    app = create_app(replace(settings, max_state_bytes=1000))
    with BackgroundServer(app) as server:
        big = json.dumps({"layers": [], "pad": "x" * 2000}).encode()
        status, _, answer = call(f"{server.url}/api/v1/states", big)
        assert status == 413 and "1000 bytes" in json.loads(answer)["message"]
        status, _, answer = call(f"{server.url}/nglstate/api/v1/post", big)
        assert status == 413
        assert call(f"{server.url}/api/v1/states", b'{"layers": []}')[0] == 201  # still serving


def test_caveclient_state_service_round_trip(cg_server):
    client = caveclient.CAVEclient(
        datastack_name="cg", server_address=cg_server.url, write_server_cache=False, auth_token=cg_server.token
    )
    state = segmentation_state(cg_server, [roots_now(cg_server, [SV[0]])[0]])
    state_id = client.state.upload_state_json(state)
    assert isinstance(state_id, int)
    assert client.state.get_state_json(state_id) == state
    url = client.state.build_neuroglancer_url(state_id)
    assert url.startswith(cg_server.url) and f"/nglstate/api/v1/{state_id}" in url
    # our viewer turns caveclient's ?json_url= form into the #! form Neuroglancer loads
    status, _, script = call(f"{cg_server.url}/viewer-config.js")
    assert b"json_url" in script and b"STATE_SERVERS" in script
    assert call(f"{cg_server.url}/nglstate/api/v1/version")[2] == b'"0.7.2"\n'


def test_links_survive_a_merge_and_a_split(cg_server):
    """A link to neuron {1,2}; then 3 is merged in and 2 split off: was/now give the right roots."""
    first, _, third, _ = roots_now(cg_server, SV)
    state = segmentation_state(cg_server, [first], position=(4, 16, 4))  # the view sits on supervoxel 1
    status, _, body = call(f"{cg_server.url}/api/v1/states", json.dumps(state).encode())
    made = json.loads(body)
    assert [a["supervoxel_id"] for a in made["anchors"]] == [str(SV[0])]
    assert made["anchors"][0]["voxel"] == [4, 16, 4]

    merged = edit(cg_server, "merge", [[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]])["new_root_ids"][0]
    edit(cg_server, "split", {"sources": [[SV[0], 0, 0, 0]], "sinks": [[SV[1], 0, 0, 0]]})
    now_root = roots_now(cg_server, [SV[0]])[0]
    assert now_root not in (first, merged) and roots_now(cg_server, [SV[1]])[0] == roots_now(cg_server, [SV[2]])[0]

    status, _, body = call(f"{cg_server.url}/api/v1/states/{made['short_id']}?as=now")
    now = json.loads(body)
    assert now["layers"][1]["segments"] == [str(now_root)]  # the part that holds the anchor
    assert now["layers"][1]["source"] == f"precomputed://{cg_server.url}/data/cg/segmentation"
    status, _, body = call(f"{cg_server.url}/api/v1/states/{made['short_id']}?as=was")
    was = json.loads(body)
    assert was["layers"][1]["segments"] == [str(first)]
    pinned = was["layers"][1]["source"]
    assert "/data/cg@" in pinned and was["layers"][0]["source"] == state["layers"][0]["source"]
    # the pinned source still shows the old neuron: supervoxel 1's voxels carry the old root
    assert call(pinned.replace("precomputed://", "") + "/info")[0] == 200
    from cloudvolume import CloudVolume

    old = CloudVolume(pinned.replace("precomputed://", ""), progress=False, fill_missing=True)[0:8, 16, 4]
    assert set(np.unique(old).tolist()) == {first}
    info = json.loads(call(f"{cg_server.url}/api/v1/states/{made['short_id']}/info")[2])
    assert info["changed_since"] is True

    # the link opens: /s/ redirects to the viewer loading the "as it was" state by URL
    status, headers, _ = call(f"{cg_server.url}/s/{made['short_id']}", follow=False)
    assert status == 302
    location = headers["Location"]
    assert "as=was" in location and f"#!{cg_server.url}/api/v1/states/{made['short_id']}/was.json" in location
    assert json.loads(call(location.split("#!")[1])[2]) == was
    status, headers, _ = call(f"{cg_server.url}/s/{made['short_id']}?as=now", follow=False)
    assert json.loads(call(headers["Location"].split("#!")[1])[2]) == now
    assert call(f"{cg_server.url}/s/{made['short_id']}?as=later", follow=False)[0] == 400


def test_voxel_links_open_the_neuron_there(cg_server):
    first, _, third, _ = roots_now(cg_server, SV)
    status, headers, _ = call(f"{cg_server.url}/at/cg/20,16,4?zoom=2", follow=False)
    assert status == 302
    state = json.loads(unquote(urlsplit(headers["Location"]).fragment[1:]))
    assert state["position"] == [20.5, 16.5, 4.5] and state["crossSectionScale"] == 2
    segmentation = [layer for layer in state["layers"] if layer["type"] == "segmentation"][0]
    assert segmentation["segments"] == [str(third)]

    status, _, body = call(
        f"{cg_server.url}/api/v1/links/at", json.dumps({"dataset": "cg", "voxel": [2, 3, 1]}).encode()
    )
    assert status == 201
    made = json.loads(body)
    assert made["anchors"][0]["supervoxel_id"] == str(SV[0]) and made["anchors"][0]["voxel"] == [2, 3, 1]
    stored = json.loads(call(f"{cg_server.url}/api/v1/states/{made['short_id']}")[2])
    assert [layer for layer in stored["layers"] if layer["type"] == "segmentation"][0]["segments"] == [str(first)]

    for url, words in [
        ("/at/cg/99,0,0", "outside"),
        ("/at/cg/-1,0,0", "outside"),
        ("/at/cg/1,2", "x,y,z"),
        ("/at/cg/1,2,3?t=yesterday", "timestamp"),
        ("/at/cg/1,2,3?zoom=-1", "zoom"),
    ]:
        status, _, answer = call(cg_server.url + url, follow=False)
        assert status == 400 and words in json.loads(answer)["message"], (url, answer)
    assert call(f"{cg_server.url}/at/nope/1,2,3", follow=False)[0] == 404
    for body in ({"dataset": "cg"}, {"dataset": "cg", "voxel": [1.5, 2, 3]}, {"dataset": "cg", "voxel": "1,2,3"}):
        assert call(f"{cg_server.url}/api/v1/links/at", json.dumps(body).encode())[0] == 400


def test_voxel_link_on_background_is_refused(settings, small_volumes, tmp_path):
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset
    from server import create_app
    from server.runner import BackgroundServer
    from tests.helpers import write_volume

    labels = np.zeros((16, 16, 4), dtype=np.uint64)
    labels[:8] = 1
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    app = create_app(settings)
    Datasets(settings.database_url).add("bg", image=small_volumes["image"], segmentation=seg)
    ingest_dataset(settings.database_url, "bg", progress=False)
    with BackgroundServer(app) as server:
        status, _, answer = call(f"{server.url}/at/bg/12,3,1", follow=False)
        assert status == 400 and "background" in json.loads(answer)["message"]
        assert call(f"{server.url}/at/bg/3,3,1", follow=False)[0] == 302


def test_demo_link_as_was_and_as_now_after_a_merge_and_a_split(fresh_demo):
    """The issue's scenario on the demo: link a neuron, merge a piece of it in, split a false merge off."""
    from cloudvolume import CloudVolume

    from segmentation.datasets import Datasets
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids
    from segmentation.graph.points import voxel_of_supervoxel
    from server import create_app
    from server.runner import BackgroundServer

    truth = json.loads((fresh_demo.demo_dir / "ground_truth.json").read_text())
    as_sv = lambda label: int(supervoxel_ids(np.array([int(label)], dtype=np.uint64))[0])  # noqa: E731
    neuron_of = {as_sv(k): v for k, v in truth["supervoxel_to_neuron"].items()}
    graph = Graph.open(fresh_demo.database_url, "demo")
    kept, wrong = (as_sv(x) for x in truth["false_merges"][0])  # one root holding two neurons
    linked = graph.root(kept)
    assert graph.root(wrong) == linked
    piece = next(sv for sv, n in neuron_of.items() if n == neuron_of[kept] and graph.root(sv) != linked)
    seg_url = Datasets(fresh_demo.database_url).get("demo").layer("segmentation").url
    voxel = voxel_of_supervoxel(seg_url, kept, graph.index.boxes[graph.index.index_of([kept])[0]])
    assert voxel is not None

    token = proofreader_token(fresh_demo.database_url, "demo")
    with BackgroundServer(create_app(fresh_demo)) as server:
        state = json.loads(call(f"{server.url}/api/v1/datasets/demo/state")[2])
        state["position"] = [v + 0.5 for v in voxel]
        segmentation = next(layer for layer in state["layers"] if layer["type"] == "segmentation")
        segmentation["segments"] = [str(linked)]
        made = json.loads(call(f"{server.url}/api/v1/states", json.dumps(state).encode())[2])
        assert made["anchors"][0]["supervoxel_id"] == str(kept)  # the neuron under the view's position

        base = f"{server.url}/segmentation/api/v1/table/demo"
        status, _, body = call(f"{base}/merge", json.dumps([[kept, 0, 0, 0], [piece, 0, 0, 0]]).encode(), token=token)
        assert status == 200, body
        status, _, body = call(
            f"{base}/split",
            json.dumps({"sources": [[kept, 0, 0, 0]], "sinks": [[wrong, 0, 0, 0]]}).encode(),
            token=token,
        )
        assert status == 200, body
        graph.sync()
        now_root = graph.root(kept)
        assert graph.root(piece) == now_root != graph.root(wrong)

        now = json.loads(call(f"{server.url}/api/v1/states/{made['short_id']}?as=now")[2])
        was = json.loads(call(f"{server.url}/api/v1/states/{made['short_id']}?as=was")[2])
        seg_now = next(layer for layer in now["layers"] if layer["type"] == "segmentation")
        seg_was = next(layer for layer in was["layers"] if layer["type"] == "segmentation")
        assert seg_now["segments"] == [str(now_root)] and seg_was["segments"] == [str(linked)]
        # what each mode's source shows at the anchor voxel: the old root, the new one
        x, y, z = voxel
        assert seg_now["source"] == f"graphene://{server.url}/segmentation/table/demo"  # proofreadable
        assert seg_was["source"].startswith(f"precomputed://{server.url}/data/demo@")  # time travel
        live_now = f"{server.url}/data/demo/segmentation"  # what the graphene source shows, as root ids
        for source, expected in ((seg_was["source"], linked), (live_now, now_root)):
            volume = CloudVolume(source.replace("precomputed://", ""), progress=False)
            assert int(volume[x, y, z][0, 0, 0, 0]) == expected
        status, headers, _ = call(f"{server.url}/s/{made['short_id']}", follow=False)
        assert status == 302 and call(headers["Location"].split("#!")[1])[0] == 200
