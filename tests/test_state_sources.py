"""Which datasets a state names at this server, in every spelling the viewer accepts; tokens in any encoding.

These run without a server: :func:`server.hosts.is_this_server` answers inside a Flask request
made to ``http://127.0.0.1:8080`` (``PORT``). ``SPELLINGS`` is shared with the end-to-end tests in
test_state_privacy.py.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from flask import Flask

from segmentation.config import Settings
from server import hosts
from state_links.sources import HARMLESS, classify_path, layers, references
from state_links.tokens import holds_token
from state_links.walk import strings

PORT = 8080


def _pct(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


# name -> f(url, port, dataset) giving a layer source that shows the dataset
SPELLINGS = {
    "precomputed": lambda u, p, n: f"precomputed://{u}/data/{n}/image",
    "precomputed, trailing slash": lambda u, p, n: f"precomputed://{u}/data/{n}/segmentation/",
    "graphene": lambda u, p, n: f"graphene://{u}/segmentation/table/{n}",
    "graphene, middleauth+": lambda u, p, n: f"graphene://middleauth+{u}/segmentation/table/{n}",
    "pipe |neuroglancer-precomputed:": lambda u, p, n: f"{u}/data/{n}/image/|neuroglancer-precomputed:",
    "pipe |zarr2:": lambda u, p, n: f"{u}/data/{n}/image|zarr2:",
    "zarr2://": lambda u, p, n: f"zarr2://{u}/data/{n}/image",
    "zarr3://": lambda u, p, n: f"zarr3://{u}/data/{n}/image",
    "n5://": lambda u, p, n: f"n5://{u}/data/{n}/image",
    "chained prefixes": lambda u, p, n: f"precomputed://zarr://{u}/data/{n}/image",
    "@supervoxels": lambda u, p, n: f"precomputed://{u}/data/{n}@supervoxels/segmentation",
    "@moment": lambda u, p, n: f"precomputed://{u}/data/{n}@2026-01-01T00:00:00Z/segmentation",
    "query string": lambda u, p, n: f"precomputed://{u}/data/{n}/image?token=x&y=1",
    "localhost": lambda u, p, n: f"precomputed://http://localhost:{p}/data/{n}/image",
    "upper case, trailing dot": lambda u, p, n: f"precomputed://HTTP://LocalHost.:{p}/data/{n}/image",
    "127.1": lambda u, p, n: f"precomputed://http://127.1:{p}/data/{n}/image",
    "hex IPv4": lambda u, p, n: f"precomputed://http://0x7f.0.0.1:{p}/data/{n}/image",
    "[::1]": lambda u, p, n: f"precomputed://http://[::1]:{p}/data/{n}/image",
    "user info": lambda u, p, n: f"precomputed://http://someone@127.0.0.1:{p}/data/{n}/image",
    "no slashes after http:": lambda u, p, n: f"precomputed://http:127.0.0.1:{p}/data/{n}/image",
    "backslashes": lambda u, p, n: f"precomputed://http:\\\\127.0.0.1:{p}\\data\\{n}\\image",
    "percent-encoded name": lambda u, p, n: f"precomputed://{u}/data/{_pct(n)}/image",
    "dot segments": lambda u, p, n: f"precomputed://{u}/data/cg/../{n}/./image",
    "encoded dot segments": lambda u, p, n: f"precomputed://{u}/v/%2e%2E/data/{n}/image",
    "empty segments": lambda u, p, n: f"precomputed://{u}//data///{n}/image",
    "newline inside": lambda u, p, n: f"precomputed://{u}/v/x\n/../../data/{n}/image",
    "encoded newline inside": lambda u, p, n: f"precomputed://{u}/v/x%0A/../../data/{n}/image",
    "percent-encoded URL": lambda u, p, n: quote(f"{u}/data/{n}/image", safe=""),
    "double percent-encoded URL": lambda u, p, n: quote(quote(f"{u}/data/{n}/image", safe=""), safe=""),
    "full-width scheme": lambda u, p, n: f"ｈｔｔｐ：／／127.0.0.1:{p}/data/{n}/image",
    "inside a viewer link": lambda u, p, n: (
        f"{u}/v/axonlink/#!" + quote(json.dumps({"layers": [{"source": f"precomputed://{u}/data/{n}/image"}]}), safe="")
    ),
    "chunkedgraph API": lambda u, p, n: f"{u}/segmentation/api/v1/table/{n}/node/1/root",
    "meshing API": lambda u, p, n: f"{u}/meshing/api/v1/table/{n}/manifest/1:0",
    "datasets API": lambda u, p, n: f"{u}/api/v1/datasets/{n}/state",
    "voxel link": lambda u, p, n: f"{u}/at/{n}/1,2,3",
    "materialize": lambda u, p, n: f"{u}/materialize/api/v3/datastack/{n}/versions",
    "info service": lambda u, p, n: f"{u}/info/api/v2/datastack/full/{n}",
}

# name -> f(source) giving a state whose layer (or some other field) holds the source
PLACES = {
    "image layer, string": lambda s: {"layers": [{"type": "image", "name": "em", "source": s}]},
    "segmentation layer, dict with subsources": lambda s: {
        "layers": [
            {
                "type": "segmentation",
                "name": "cells",
                "segments": ["1"],
                "source": {"url": s, "subsources": {"default": True, "mesh": False}, "enableDefaultSubsources": False},
            }
        ]
    },
    "annotation layer, list of sources": lambda s: {
        "layers": [
            {"type": "annotation", "name": "notes", "source": [{"url": "local://annotations"}, s], "annotations": []}
        ]
    },
    "legacy dict of layers": lambda s: {"layers": {"em": {"type": "image", "source": s}}},
    "a field the viewer adds one day": lambda s: {"layers": [], "future": {"deep": [[{"x": s}]]}},
    "a key": lambda s: {"layers": [], "notes": {s: 1}},
}


@pytest.fixture
def this_server(tmp_path):
    """A request to http://127.0.0.1:8080 (what hosts.is_this_server compares with)."""
    app = Flask("sources-test")
    app.config["AXONLINK_SETTINGS"] = Settings.load(home=tmp_path, database_url="sqlite://")
    with app.test_request_context("/", base_url=f"http://127.0.0.1:{PORT}"):
        yield hosts.is_this_server


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_names_the_dataset(this_server, spelling):
    source = SPELLINGS[spelling](f"http://127.0.0.1:{PORT}", PORT, "secret")
    found = references(PLACES["image layer, string"](source), this_server)
    assert found.datasets == ("secret",) and not found.unclassified, (source, found)


@pytest.mark.parametrize("place", PLACES)
def test_every_place_in_a_state_is_searched(this_server, place):
    state = PLACES[place](f"{SPELLINGS['pipe |zarr2:'](f'http://127.0.0.1:{PORT}', PORT, 'secret')}")
    assert references(state, this_server).datasets == ("secret",)


@pytest.mark.parametrize(
    "url",
    [
        "precomputed://http://other.example:8080/data/secret/image",  # another host
        "precomputed://http://127.0.0.1:8081/data/secret/image",  # another port
        "precomputed://https://127.0.0.1/data/secret/image",  # another scheme's default port
        "precomputed://gs://bucket/data/secret/image",
        "local://annotations",
        "data/secret/image",  # not absolute
    ],
)
def test_other_servers_are_not_ours(this_server, url):
    assert references({"layers": [{"type": "image", "source": url}]}, this_server) == references({}, this_server)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/v/axonlink/",
        "/v/axonlink/index.html",
        "/static/neuroglancer/main.bundle.js",
        "/viewer-config.js",
        "/login",
        "/datasets",
        "/api/v1/datasets",
        "/api/v1/me",
        "/api/v1/openapi.json",
        "/info/api/v2/datastacks",
        "/segmentation/api/versions",
        "/materialize/api/versions",
        "/nglstate/api/v1/version",
        "/api/v1/states",
        "/nglstate/api/v1/post",
        "/api/v1/links/at",
        "/events/axonlink",
    ],
)
def test_harmless_paths(path):
    assert classify_path(path).kind == HARMLESS


@pytest.mark.parametrize(
    "path, ref",
    [
        ("/api/v1/states/abc1234", "abc1234"),
        ("/api/v1/states/abc1234/was.json", "abc1234"),
        ("/api/v1/states/12/info", "12"),
        ("/s/abc1234", "abc1234"),
        ("/nglstate/api/v1/1099511627776", "1099511627776"),
        ("/nglstate/api/v1/raw/7", "7"),
    ],
)
def test_state_paths_name_the_state(path, ref):
    target = classify_path(path)
    assert (target.kind, target.name) == ("state", ref)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tags/3",
        "/api/v1/search",
        "/api/v1/audit",
        "/api/v1/vocabulary",
        "/data",
        "/data/@x/image",
        "/nope",
        "/segmentation/table",
    ],
)
def test_paths_naming_nothing_we_know_are_unclassified(this_server, path):
    assert classify_path(path) is None
    found = references({"layers": [], "x": f"http://127.0.0.1:{PORT}{path}"}, this_server)
    assert found.unclassified == (f"http://127.0.0.1:{PORT}{path}",)


def test_a_newline_in_prose_ends_a_url(this_server):
    found = references(
        {"note": f"see http://127.0.0.1:{PORT}/s/abc1234\nand http://127.0.0.1:{PORT}/data/cg/x"}, this_server
    )
    assert found.states == ("abc1234",) and found.datasets == ("cg",) and not found.unclassified


def test_layers_come_as_a_list_or_a_dict():
    assert [(i, n) for i, n, _ in layers({"layers": [{"name": "a"}, "junk", {"name": "a"}]})] == [(0, "a"), (2, "a")]
    assert [(i, n) for i, n, _ in layers({"layers": {"x": {}, "y": 3, "z": {}}})] == [(0, "x"), (2, "z")]
    assert layers({"layers": "nope"}) == [] and layers({}) == []


def test_walking_a_very_deep_document_needs_no_recursion():
    deep = "x"
    for _ in range(200_000):
        deep = [deep]
    assert list(strings({"a": deep})) == ["a", "x"]


TOKEN = "axl_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"  # the shape of a token (43 characters)


@pytest.mark.parametrize(
    "spelling",
    [
        TOKEN,
        f"my token is {TOKEN}!",
        TOKEN.replace("_", "%5F"),
        TOKEN.replace("_", "%255F"),
        _pct(TOKEN),
        quote(_pct(TOKEN)),
        TOKEN.replace("axl_", "ａｘｌ＿"),
        TOKEN.replace("l", "%6c"),
    ],
)
@pytest.mark.parametrize("where", ["value", "key", "deep"])
def test_tokens_are_found_however_encoded(spelling, where):
    state = {
        "value": {"layers": [], "note": spelling},
        "key": {"layers": [], spelling: 1},
        "deep": {"layers": [{"x": [[[{"y": spelling}]]]}]},
    }[where]
    assert holds_token(state)


def test_states_without_tokens_pass():
    assert not holds_token({"layers": [{"name": "axl_", "source": "precomputed://gs://axl_bucket/x%5Fy"}]})
    assert not holds_token({"note": "axl_" + "A" * 42})  # one short
