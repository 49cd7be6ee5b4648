"""Hostile or careless input through a live server: always a clear 4xx, never a 5xx, nothing stored."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import CG_SV as SV
from tests.helpers import SQLITE_ONLY, call, proofreader_token

CG = "/segmentation/api/v1/table/cg"


@pytest.mark.parametrize(
    "path, body",
    [
        (f"{CG}/node/99999999999999999999999/root", None),  # beyond uint64
        (f"{CG}/node/18446744073709551615/leaves", None),  # the largest uint64
        (f"{CG}/roots", b'{"node_ids": [-1]}'),
        (f"{CG}/roots", b'{"node_ids": [1e400]}'),
        (f"{CG}/roots", b'{"node_ids": ["1; DROP TABLE graph_operations"]}'),
        (f"{CG}/merge", json.dumps([[SV[1], "NaN", 0, 0], [SV[2], 0, 0, 0]]).encode()),
        (f"{CG}/merge", b"[[0, NaN, 0, 0], [0, 0, 0, 0]]"),
        (f"{CG}/merge", b"[[0, Infinity, 0, 0], [0, 0, 0, 0]]"),
        (f"{CG}/merge", b"[[0, 1e400, 0, 0], [0, 0, 0, 0]]"),
        (f"{CG}/merge", b"[[0, 1e300, 0, 0], [0, -1e300, 0, 0]]"),  # finite, beyond any integer voxel
        (f"{CG}/split", b'{"sources": [[0, NaN, 1, 1]], "sinks": [[0, 1, 1, 1]]}'),
        (f"{CG}/undo", b'{"operation_id": 1e400}'),
        (f"{CG}/undo", b'{"operation_id": 99999999999999999999}'),
        (f"{CG}/operation_details?operation_ids=[99999999999999999999]", None),
        (f"{CG}/root/99999999999999999999/change_log", None),
        ("/api/v1/datasets/cg/tags", b'{"position": [NaN, 1, 1], "term": "astrocyte"}'),
        ("/api/v1/datasets/cg/tags", b'{"position": [Infinity, 1, 1], "term": "astrocyte"}'),
        ("/api/v1/datasets/cg/tags", b'{"position": [1e400, 1, 1], "term": "astrocyte"}'),
        ("/api/v1/datasets/cg/tags", b'{"position": [1, 1, 1], "term": "astrocyte", "confidence": NaN}'),
        ("/api/v1/datasets/cg/tags", b'{"position": [1, 1, 1], "term": "\\u0000\'; DROP TABLE cell_tags; --"}'),
        ("/api/v1/datasets/cg/tags?root_id=99999999999999999999", None),
        ("/api/v1/datasets/cg/tags?t=NaN", None),
        ("/api/v1/links/at", b'{"dataset": "cg", "voxel": [99999999999999999999, 0, 0]}'),
        ("/at/cg/99999999999999999999,0,0", None),
        ("/api/v1/search?q=" + "a%20OR%20" * 200, None),
        ("/data/cg@NaN/segmentation/info", None),
        ("/data/cg@99999999999999999999/segmentation/info", None),
    ],
)
def test_hostile_input_is_a_clear_4xx(cg_server, path, body):
    status, answer = call(cg_server.url + path, body, token=cg_server.token)
    assert 400 <= status < 500, (path, status, answer[:300])
    assert json.loads(answer)["message"]


def test_a_page_beyond_the_results_is_empty(cg_server):
    status, body = call(f"{cg_server.url}/api/v1/search?q=astrocyte&page=99999999999999999999", token=cg_server.token)
    assert status == 200 and json.loads(body)["results"] == []


def test_markup_in_titles_and_notes_is_stored_as_text_and_escaped_on_pages(cg_server):
    evil = '<script>alert("x")</script>'
    status, body = call(
        f"{cg_server.url}/api/v1/datasets/cg/tags",
        json.dumps({"position": [4, 16, 4], "term": "astrocyte", "note": evil}).encode(),
        token=cg_server.token,
    )
    assert status == 201 and json.loads(body)["note"] == evil
    from segmentation.datasets import Datasets

    Datasets(cg_server.database_url).add(
        "evil",
        image=Datasets(cg_server.database_url).get("cg").layer("image").url,
        segmentation=Datasets(cg_server.database_url).get("cg").layer("segmentation").url,
        description=evil,
        citation=evil,
    )
    status, page = call(f"{cg_server.url}/datasets", token=cg_server.token)
    assert status == 200 and b"<script>alert" not in page and b"&lt;script&gt;" in page
    state = json.dumps({"layers": [], "title": evil}).encode()
    status, body = call(f"{cg_server.url}/api/v1/states", state, token=cg_server.token)
    info = json.loads(
        call(f"{cg_server.url}/api/v1/states/{json.loads(body)['short_id']}/info", token=cg_server.token)[1]
    )
    assert info["title"] == evil  # JSON is data; the viewer banner writes it with textContent


def test_a_chunked_body_beyond_every_limit_is_refused(cg_server):
    """160 MB sent without a Content-Length: a 4xx and the server keeps serving. (The app's 64 MB
    MAX_CONTENT_LENGTH makes werkzeug cut the stream; the truncated CSV then answers 400. This test
    cannot tell the cut from a full read.)"""
    import http.client

    host, port = cg_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    chunk = b"[" + b"0," * (1024 * 1024)

    def body():
        for _ in range(80):  # 160 MB, more than the 64 MB limit
            yield chunk

    try:
        connection.request(
            "POST",
            "/api/v1/datasets/cg/tags/import",
            body=body(),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked", "Authorization": f"Bearer {cg_server.token}"},
        )
        status = connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed while we were still sending
    assert status in (400, 413)
    assert call(f"{cg_server.url}/api/v1/datasets/cg/tags", token=cg_server.token)[0] == 200  # still serving


DEEP = b"[" * 100_000 + b"]" * 100_000


@SQLITE_ONLY
def test_json_nested_100000_deep_is_a_4xx_on_every_json_route(cg_server):
    """json.loads raises RecursionError (not ValueError) on such bodies: never a 500."""
    from server import endpoints

    admin = proofreader_token(cg_server.database_url, "cg", user="deep")
    from segmentation.access import Accounts

    Accounts(cg_server.database_url).grant("deep", "cg", "admin", by="tests")
    checked = 0
    for name, spec in endpoints.BY_ENDPOINT.items():
        if spec.body not in ("json", "ignored"):
            continue
        path = re.sub(
            r"<(?:([a-z]+):)?([a-z_]+)>",
            lambda m: "cg" if m.group(2) in endpoints.DATASET_PARAMETERS else ("1" if m.group(1) == "int" else "x"),
            spec.rule,
        )
        for method in set(spec.methods) - {"HEAD"}:
            status, answer = call(
                cg_server.url + path, DEEP, method=method, token=admin, headers={"Content-Type": "application/json"}
            )
            # a route that reads its JSON refuses it (4xx); one that ignores its body may accept it; none fails
            assert 400 <= status < 500 or (spec.body == "ignored" and status < 500), (name, status, answer[:200])
            checked += 1
    assert checked >= 19


EDGES = [
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-14:00",
    "9999-12-31T23:59:59.999999",
    "-62135596800",
    "253402300800",
    "1e308",
    "-1",
    "inf",
    "2026-02-30",
]
MOMENT_ROUTES = [
    ("GET", "/data/cg@{t}/segmentation/info", None),
    ("GET", f"{CG}/node/{SV[0]}/root?timestamp={{t}}", None),
    ("POST", f"{CG}/roots?timestamp={{t}}", json.dumps({"node_ids": [SV[0]]}).encode()),
    ("POST", f"{CG}/is_latest_roots?timestamp={{t}}", json.dumps({"node_ids": [SV[0]]}).encode()),
    ("POST", f"{CG}/lineage_graph_multiple?timestamp_past={{t}}", json.dumps({"root_ids": [1]}).encode()),
    ("GET", f"{CG}/user_operations?start_time={{t}}", None),
    ("GET", f"{CG}/delta_roots?timestamp_past={{t}}", None),
    ("GET", "/api/v1/datasets/cg/tags?t={t}", None),
    ("GET", "/api/v1/datasets/cg/tags/export?t={t}", None),
    ("GET", "/api/v1/search?q=astrocyte%20t:{t}", None),
    ("GET", "/api/v1/audit?since={t}", None),
    ("GET", "/at/cg/4,16,4?t={t}", None),
    ("POST", "/api/v1/links/at", '{{"dataset": "cg", "voxel": [4, 16, 4], "t": "{t}"}}'),
    ("POST", "/materialize/api/v3/datastack/cg/query", '{{"timestamp": "{t}", "table": "cell_types"}}'),
]


@SQLITE_ONLY
@pytest.mark.parametrize("method, template, body", MOMENT_ROUTES)
def test_moments_at_the_edges_of_the_calendar_are_a_4xx(cg_server, method, template, body):
    from urllib.parse import quote

    from segmentation.access import Accounts

    admin = Accounts(cg_server.database_url).role_token("edges", "cg", "admin", by="tests")
    for t in EDGES:
        if body is None or isinstance(body, bytes):
            path, data = template.format(t=quote(t)), body
        else:
            path, data = template, body.format(t=t).encode()
        status, answer = call(
            cg_server.url + path, data, method=method, token=admin, headers={"Content-Type": "application/json"}
        )
        assert 400 <= status < 500, (path, t, status, answer[:200])


@SQLITE_ONLY
def test_states_too_large_to_anchor_are_a_413(cg_server):
    from state_links.codec import MAX_STATE_LAYERS, MAX_STATE_SEGMENTS

    many_layers = {
        "layers": [
            {"type": "image", "name": f"l{i}", "source": "precomputed://gs://x/y"} for i in range(MAX_STATE_LAYERS + 1)
        ]
    }
    many_segments = {
        "layers": [
            {
                "type": "segmentation",
                "name": "s",
                "segments": [str(i) for i in range(1, MAX_STATE_SEGMENTS + 2)],
                "source": "precomputed://gs://x/y",
            }
        ]
    }
    for state, words in ((many_layers, b"layers"), (many_segments, b"segments")):
        status, answer = call(cg_server.url + "/api/v1/states", json.dumps(state).encode())
        assert status == 413 and words in answer, answer[:200]


def test_flags_speak_one_dialect_on_every_route(cg_server):
    """1/true/yes/on and 0/false/no/off, any case, wherever a route takes a flag; anything else is a 400."""
    root_url = f"{cg_server.url}/segmentation/api/v1/table/cg/node/{SV[0]}/root"
    for word in ("1", "true", "Yes", "ON"):
        status, body = call(f"{root_url}?int64_as_str={word}")
        assert status == 200 and isinstance(json.loads(body)["root_id"], str), word
    for word in ("0", "False", "no", "off", ""):
        status, body = call(f"{root_url}?int64_as_str={word}")
        assert status == 200 and isinstance(json.loads(body)["root_id"], int), word
    for url in (
        f"{root_url}?int64_as_str=maybe",
        f"{cg_server.url}/api/v1/datasets/cg/tags?include_retracted=2",
        f"{cg_server.url}/segmentation/api/v1/table/cg/user_operations?include_undo=perhaps",
    ):
        status, body = call(url, token=cg_server.token)
        assert status == 400 and "must be true or false" in json.loads(body)["message"], (url, body)
