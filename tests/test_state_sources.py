"""Which datasets a state names at this server, in every spelling the viewer accepts; tokens in any encoding.

These run without a server: :func:`server.hosts.is_this_server` answers inside a Flask request
made to ``http://127.0.0.1:8080`` (``PORT``). ``SPELLINGS`` and ``PLACES`` (tests/spellings.py) are
shared with the end-to-end tests in test_state_privacy.py.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flask import Flask

from segmentation.config import Settings
from server import hosts
from state_links.sources import HARMLESS, classify_path, layers, references
from state_links.tokens import holds_token
from state_links.walk import strings
from tests.spellings import PLACES, SPELLINGS, percent_encoded

PORT = 8080


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
        percent_encoded(TOKEN),
        quote(percent_encoded(TOKEN)),
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
