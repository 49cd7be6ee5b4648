"""The fast path (server/fast_path.py) answers exactly what Flask answers, and only what it may.

Each request is sent twice: through the app as served (fast path in front) and to Flask alone;
status, body and every header but the fresh request id must be equal. Which of the two answered
is told by counting the requests that reach Flask behind the fast path."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from segmentation.access import Accounts
from tests.helpers import proofreader_token, write_volume

CHUNK = "/data/small/{layer}/8_8_40/16-32_16-32_8-16"


class Counting:
    """The Flask app behind the fast path, counting the requests that reach it."""

    def __init__(self, wsgi_app):
        self.wsgi_app, self.calls = wsgi_app, 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def both(app):
    fast = app.wsgi_app
    flask_only = Counting(fast.wsgi_app)
    fast.wsgi_app = flask_only
    served = Client(app.wsgi_app, Response, use_cookies=False)  # (a Cookie header is sent as given)
    reference = Client(flask_only.wsgi_app, Response, use_cookies=False)
    served.get("/api/v1/datasets")  # the first request from this Host: Flask checks it
    return served, reference, flask_only


def same_answer(served, reference, path, headers=None):
    headers = {"X-Request-Id": "same-for-both", **(headers or {})}  # (error bodies quote it)
    a, b = served.get(path, headers=headers), reference.get(path, headers=headers)
    assert (a.status_code, a.data) == (b.status_code, b.data), path
    without_id = lambda r: {k: v for k, v in r.headers.items() if k != "X-Request-Id"}  # noqa: E731
    assert without_id(a) == without_id(b), path
    return a, b


@pytest.mark.parametrize("layer", ["image", "segmentation"])  # raw, compressed_segmentation
@pytest.mark.parametrize("encoding", ["gzip", "", "deflate, gzip;q=0.5", "identity"])
def test_a_public_chunk_asked_anonymously_is_answered_as_flask_answers_it_without_flask(both, layer, encoding):
    served, reference, flask_only = both
    before = flask_only.calls
    answer, _ = same_answer(served, reference, CHUNK.format(layer=layer), {"Accept-Encoding": encoding})
    assert answer.status_code == 200 and flask_only.calls == before  # Flask was not asked
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert (answer.headers.get("Content-Encoding") == "gzip") == ("gzip" in encoding)  # stored gzipped, both


def test_the_request_id_is_the_callers_when_well_formed_and_the_line_is_logged(both):
    from server import logs

    served, _, flask_only = both
    before = flask_only.calls
    stream = io.StringIO()
    logs.configure("info", "json", access_log=True, stream=stream)  # as `axonlink serve --access-log`
    try:
        given = served.get(CHUNK.format(layer="image"), headers={"X-Request-Id": "abc-123"})
        hostile = served.get(CHUNK.format(layer="image"), headers={"X-Request-Id": "a b;forged"})
    finally:
        logging.getLogger("axonlink").handlers.clear()
    assert flask_only.calls == before
    assert given.headers["X-Request-Id"] == "abc-123"
    assert len(hostile.headers["X-Request-Id"]) == 16 and ";" not in hostile.headers["X-Request-Id"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    lines = [line for line in lines if line["logger"] == "axonlink.requests"]
    assert [line["id"] for line in lines] == ["abc-123", hostile.headers["X-Request-Id"]]
    assert lines[0]["message"] == "GET /data/<dataset_ref>/<layer>/<path:key>"
    assert lines[0]["dataset"] == "small" and lines[0]["status"] == 200 and lines[0]["user"] == "anonymous"
    assert lines[0]["bytes"] == len(given.data) and lines[0]["ms"] >= 0


@pytest.mark.parametrize(
    "path, headers",
    [
        (CHUNK.format(layer="image"), {"Range": "bytes=0-9"}),
        (CHUNK.format(layer="image"), {"If-None-Match": "*"}),
        (CHUNK.format(layer="image"), {"Authorization": "Bearer not-a-token"}),
        (CHUNK.format(layer="image"), {"Cookie": "axonlink_token=stale"}),
        (CHUNK.format(layer="image") + "?x=1", {}),
        ("/data/small/image/info", {}),
        ("/data/small/image/8_8_40/16-32_16-32_8-15", {}),  # off the grid
        ("/data/small/image/8_8_40/../info", {}),
        ("/data/small@1700000000/image/8_8_40/16-32_16-32_8-16", {}),
        ("/data/nosuch/image/8_8_40/16-32_16-32_8-16", {}),
        ("/data/small/nosuch/8_8_40/16-32_16-32_8-16", {}),
    ],
)
def test_everything_else_is_left_to_flask(both, path, headers):
    served, reference, flask_only = both
    before = flask_only.calls
    same_answer(served, reference, path, headers)
    assert flask_only.calls == before + 1  # the fast path handed it on


def test_a_private_dataset_and_an_unchecked_host_are_left_to_flask(both, settings):
    served, reference, flask_only = both
    path = CHUNK.format(layer="image")
    other_host = {"Host": "evil.example"}  # never accepted: Flask refuses it, every time
    for _ in range(2):
        assert served.get(path, headers=other_host).status_code == 400
    before = flask_only.calls
    served.get(path)
    assert flask_only.calls == before  # public: the fast path
    Accounts(settings.database_url).set_public("small", False)  # (drops this process's cached visibility)
    hidden, hidden_reference = same_answer(served, reference, path)
    assert hidden.status_code == 404 and "public" not in hidden.headers.get("Cache-Control", "")
    assert flask_only.calls == before + 1


def raw_head(path: str, *fields: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: localhost", *fields]) + "\r\n\r\n").encode()


def split_response(raw: bytes) -> tuple[str, dict, bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


@pytest.mark.parametrize("layer", ["image", "segmentation"])
@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_the_pollers_answer_from_the_raw_head_is_flasks_answer(both, app, layer, encoding):
    """server.quick_answers: the bytes the worker's poller writes carry Flask's status, headers and body."""
    served, reference, flask_only = both
    path = CHUNK.format(layer=layer)
    served.get(path)  # a thread's request fills the caches the poller reads (it never reads the database)
    before = flask_only.calls
    answer = app.quick_answers(
        raw_head(path, f"Accept-Encoding: {encoding}", "X-Request-Id: same-for-both"), ("127.0.0.1", 5555), False
    )
    assert answer is not None and flask_only.calls == before
    raw, close = answer
    status, headers, body = split_response(raw)
    expected = reference.get(path, headers={"Accept-Encoding": encoding, "X-Request-Id": "same-for-both"})
    assert status == "HTTP/1.1 200 OK" and body == expected.data and not close
    assert headers.pop("Connection") == "keep-alive" and headers.pop("Server") == "gunicorn"
    assert headers.pop("Date").endswith(" GMT")
    assert headers == dict(expected.headers.items())


@pytest.mark.parametrize(
    "fields",
    [
        ("Cookie: session=x",),  # the fast path's own rule: a caller who may not be anonymous
        ("Range: bytes=0-3",),
        ("Content-Length: 0",),  # a body, or framing gunicorn decides on
        ("Transfer-Encoding: chunked",),
        ("Expect: 100-continue",),
        ("Connection: upgrade",),
        ("Accept-Encoding: gzip", "Accept-Encoding: identity"),  # repeated: gunicorn joins them
        ("Accept_Encoding: gzip",),  # underscore: gunicorn drops the field
        ("X-Folded: a", " b"),  # obsolete line folding
        ("Bad Name: x",),
        ("X-Latin: caf\u00e9",),
    ],
)
def test_the_poller_leaves_every_unusual_head_to_gunicorn_and_flask(app, both, fields):
    head = raw_head(CHUNK.format(layer="image"), *fields)
    for _ in range(2):  # read, then remembered
        assert app.quick_answers(head, ("127.0.0.1", 5555), False) is None


def test_header_sections_are_read_once_per_process_each_request_getting_its_own_keys():
    from server.quick_answers import KNOWN_FIELDS, environ_from_head

    known: dict = {}
    fields = b"Host: x\r\nAccept-Encoding: gzip\r\n\r\n"
    first, close = environ_from_head(b"GET /a HTTP/1.1\r\n" + fields, ("10.0.0.1", 5), known)
    assert (first, close) == environ_from_head(b"GET /a HTTP/1.1\r\n" + fields, ("10.0.0.1", 5))  # as read afresh
    assert len(known) == 1
    first["HTTP_HOST"] = "changed"  # a caller changing its keys changes nothing remembered
    second, _ = environ_from_head(b"GET /b HTTP/1.1\r\n" + fields, ("10.0.0.2", 6), known)
    assert (second["HTTP_HOST"], second["PATH_INFO"], second["REMOTE_ADDR"]) == ("x", "/b", "10.0.0.2")
    assert len(known) == 1
    twice = b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    assert environ_from_head(twice, ("10.0.0.1", 5), known) is None
    assert environ_from_head(twice, ("10.0.0.1", 5), known) is None  # remembered as declined
    for n in range(KNOWN_FIELDS + 10):  # a client inventing fields
        environ_from_head(f"GET / HTTP/1.1\r\nX-N: {n}\r\n\r\n".encode(), ("10.0.0.3", 7), known)
    assert 0 < len(known) <= KNOWN_FIELDS
    big = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    assert environ_from_head(big, ("10.0.0.3", 7), known)[0]["HTTP_X_BIG"] == "a" * 4000
    assert not any(len(section) > 2048 for section in known)  # large sections are read each time


@pytest.mark.parametrize(
    "line",
    [
        "GET /data/small/image/8_8_40/16-32_16-32_8-16?x=1 HTTP/1.1",  # a query
        "GET /data/small/image/8_8_40/16%2D32_16-32_8-16 HTTP/1.1",  # an escape gunicorn decodes
        "GET /data/small/image/8_8_40/16-32_16-32_8-16 HTTP/1.0",
        "HEAD /data/small/image/8_8_40/16-32_16-32_8-16 HTTP/1.1",
        "GET http://localhost/data/small/image/8_8_40/16-32_16-32_8-16 HTTP/1.1",
    ],
)
def test_the_poller_answers_only_a_plain_get_of_a_path(app, both, line):
    head = f"{line}\r\nHost: localhost\r\n\r\n".encode("latin-1")
    assert app.quick_answers(head, ("127.0.0.1", 5555), False) is None


def test_the_poller_closes_when_asked_to_or_when_it_must(app, both):
    path = CHUNK.format(layer="image")
    both[0].get(path)  # fills the caches the poller reads
    raw, close = app.quick_answers(raw_head(path, "Connection: close"), ("127.0.0.1", 5555), False)
    assert close and split_response(raw)[1]["Connection"] == "close"
    raw, close = app.quick_answers(raw_head(path), ("127.0.0.1", 5555), True)  # the worker is over a limit
    assert close and split_response(raw)[1]["Connection"] == "close"
    assert app.quick_answers(raw_head(path), "", False) is None  # a Unix socket: no address to log


LIVE_CHUNK = "/data/cg/segmentation/8_8_40/0-16_0-16_0-8"


@pytest.fixture
def live(both, settings, small_volumes, tmp_path):
    """Dataset `cg` (public): slabs of labels 1-4 along x, agglomerated as {1,2} and {3,4}, served live."""
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    for label in range(1, 5):
        labels[(label - 1) * 8 : label * 8] = label
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    Datasets(settings.database_url).add("cg", image=small_volumes["image"], segmentation=seg)
    ingest_dataset(settings.database_url, "cg", agglomeration=[[1, 2], [3, 4]], progress=False)
    return both


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_a_live_chunk_is_answered_from_the_cache_once_flask_made_it_and_until_an_edit_here(live, settings, encoding):
    """The first request computes the chunk (Flask); later ones come from the live cache without Flask and
    without SQL. An edit made by another process of this machine (here: another Graph of the same
    database) sends the next request to Flask, which catches up; then the cache answers again, anew."""
    from segmentation.graph import Graph

    served, reference, flask_only = live
    headers = {"Accept-Encoding": encoding}
    calls = flask_only.calls
    first, _ = same_answer(served, reference, LIVE_CHUNK, headers)
    assert first.status_code == 200 and flask_only.calls == calls + 1  # made by Flask
    again, _ = same_answer(served, reference, LIVE_CHUNK, headers)
    assert again.data == first.data and flask_only.calls == calls + 1  # from the cache, without Flask
    assert again.headers["Cache-Control"] == "no-cache" and again.headers["Vary"] == "Accept-Encoding"
    assert (again.headers.get("Content-Encoding") == "gzip") == (encoding == "gzip")

    other = Graph.open(settings.database_url, "cg")  # another process's graph, as far as this app knows
    sv = [int(s) for s in sorted(other.supervoxel_ids)]
    other.merge(sv[0], sv[2], user="tester")
    after, _ = same_answer(served, reference, LIVE_CHUNK, headers)
    assert flask_only.calls == calls + 2  # the edit sent it to Flask, which read the log
    assert after.headers["ETag"] != first.headers["ETag"]
    cached, _ = same_answer(served, reference, LIVE_CHUNK, headers)
    assert cached.data == after.data and flask_only.calls == calls + 2  # and the cache answers anew


def test_a_live_chunk_revalidated_or_of_a_past_moment_is_left_to_flask(live):
    served, reference, flask_only = live
    first, _ = same_answer(served, reference, LIVE_CHUNK)
    calls = flask_only.calls
    not_modified, _ = same_answer(served, reference, LIVE_CHUNK, {"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304 and flask_only.calls == calls + 1
    same_answer(served, reference, LIVE_CHUNK.replace("/cg/", "/cg@supervoxels/"))
    assert flask_only.calls == calls + 2


def test_a_state_showing_public_data_is_resolved_from_memory_once_flask_read_it(both, app, settings):
    """GET /api/v1/states/<id>: Flask reads the state and its datasets; for the next few seconds the same
    resolve, asked anonymously, is answered from the store's memory (no SQL, no Flask), views still counted.
    Once a dataset it shows is private, Flask answers again (a 404, as for a missing state)."""
    from server.workspace import EXTENSION

    served, reference, flask_only = both
    states = app.extensions[EXTENSION].states
    raw = json.dumps({"layers": [{"type": "image", "source": "precomputed://http://localhost/data/small/image"}]})
    stored = states.save(raw.encode(), states.parse(raw.encode()), datasets={"small"})
    path = f"/api/v1/states/{stored.short_id}"
    calls = flask_only.calls
    first, _ = same_answer(served, reference, path)
    assert first.status_code == 200 and json.loads(first.data) == json.loads(raw)
    assert flask_only.calls == calls + 1
    for _ in range(3):
        again, _ = same_answer(served, reference, path)
        assert again.data == first.data and again.headers["Cache-Control"] == "no-cache"
    assert flask_only.calls == calls + 1  # from memory
    same_answer(served, reference, path + "?as=now")  # a mode: Flask
    assert flask_only.calls == calls + 2
    # its bytes never change: an ETag of them, and a revalidation is a 304 without them (Flask)
    assert first.headers["ETag"].startswith('"state-') and str(stored.id) not in first.headers["ETag"]
    revalidated = served.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304 and revalidated.data == b""
    assert revalidated.headers["ETag"] == first.headers["ETag"] and flask_only.calls == calls + 3
    calls += 1
    states.flush_views()
    views = states.info_of(stored.short_id, may_view=lambda _: True).views
    assert views == 2 + 3 * 2 + 2 + 1  # every resolve counted (each was asked twice; the revalidation too)

    Accounts(settings.database_url).set_public("small", False)
    hidden, _ = same_answer(served, reference, path)
    assert hidden.status_code == 404 and flask_only.calls == calls + 3


def test_a_built_in_mesh_fragment_is_answered_without_flask_whole_or_by_range(live, app, settings):
    """The graphene source reads chunk fragment files by byte range: 206 with the bytes Flask cuts, or the
    whole file; anything unusual about the range (several, unsatisfiable) is Flask's to word."""
    from segmentation.graph import Graph
    from segmentation.meshing import mesh_dataset

    served, reference, flask_only = live
    mesh_dataset(settings.database_url, settings.home, "cg", workers=1, progress=False)
    graph = Graph.open(settings.database_url, "cg")
    root = int(graph.roots([int(sorted(graph.supervoxel_ids)[0])])[0])
    manifest = reference.get(f"/meshing/api/v1/table/cg/manifest/{root}:0")
    stored = [n[1:].partition(":")[2] for n in manifest.json["fragments"] if n[1:].partition(":")[2].startswith("~")]
    assert stored, manifest.json
    path, offset, size = stored[0][1:].split(":")
    url = f"/data/cg@supervoxels/segmentation/graphene_meshes/initial/{path}"
    calls = flask_only.calls
    ranged, _ = same_answer(served, reference, url, {"Range": f"bytes={offset}-{int(offset) + int(size) - 1}"})
    whole, _ = same_answer(served, reference, url)
    assert ranged.status_code == 206 and len(ranged.data) == int(size)
    assert whole.status_code == 200 and whole.data[int(offset) : int(offset) + int(size)] == ranged.data
    assert ranged.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert flask_only.calls == calls  # neither reached Flask
    same_answer(served, reference, url, {"Range": "bytes=0-1,4-5"})
    same_answer(served, reference, url, {"Range": f"bytes={len(whole.data) + 10}-"})
    same_answer(served, reference, url + "x")
    assert flask_only.calls == calls + 3


def test_a_settled_mesh_manifest_made_once_is_answered_without_flask(live, app, settings):
    """A root's built-in mesh manifest, once Flask made it in this process, is answered from memory
    with Flask's bytes and headers; a revalidation (304), a supervoxel and an unknown dataset are
    Flask's to word."""
    from segmentation.graph import Graph
    from segmentation.meshing import mesh_dataset

    served, reference, flask_only = live
    mesh_dataset(settings.database_url, settings.home, "cg", workers=1, progress=False)
    graph = Graph.open(settings.database_url, "cg")
    supervoxel = int(sorted(graph.supervoxel_ids)[0])
    root = int(graph.roots([supervoxel])[0])
    url = f"/meshing/api/v1/table/cg/manifest/{root}:0"
    calls = flask_only.calls
    first, _ = same_answer(served, reference, url)  # made by Flask (both times: not cached before)
    assert first.status_code == 200 and first.json["fragments"]
    made = flask_only.calls
    again, _ = same_answer(served, reference, url)
    assert again.data == first.data and flask_only.calls == made  # from memory this time
    assert made > calls
    same_answer(served, reference, url, {"If-None-Match": first.headers["ETag"]})
    same_answer(served, reference, f"/meshing/api/v1/table/cg/manifest/{supervoxel}:0")
    same_answer(served, reference, f"/meshing/api/v1/table/nothere/manifest/{root}:0")
    assert flask_only.calls == made + 3


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_a_token_holder_is_answered_without_flask_with_the_access_decision_flask_makes(both, settings, encoding):
    """Bearer tokens: the principal (cached per process, as the access check caches it) and its role on the
    dataset decide; a private dataset's answer carries the private cache headers Flask gives it. A token
    that is malformed, unknown, or without a role on a private dataset is Flask's to refuse."""
    from segmentation.access import Accounts as Access

    served, reference, flask_only = both
    path = CHUNK.format(layer="image")
    token = proofreader_token(settings.database_url, "small")
    Access(settings.database_url).add_user("outsider", by="tests")  # no role on `small`
    outsider = Access(settings.database_url).create_token("outsider", by="tests")[1]
    asked = {"Authorization": f"Bearer {token}", "Accept-Encoding": encoding}
    calls = flask_only.calls
    public, _ = same_answer(served, reference, path, asked)
    assert public.status_code == 200 and public.headers["Cache-Control"] == "public, max-age=3600"
    assert flask_only.calls == calls
    Access(settings.database_url).set_public("small", False)
    private, _ = same_answer(served, reference, path, asked)
    assert private.status_code == 200 and private.data == public.data and flask_only.calls == calls
    assert private.headers["Cache-Control"] == "private, max-age=3600"
    assert {"Authorization", "Cookie"} <= {v.strip() for v in private.headers["Vary"].split(",")}
    for refused, status in (("Bearer nonsense", 401), (f"Bearer {outsider}", 404), (f"Basic {token}", 401)):
        answer, _ = same_answer(served, reference, path, {"Authorization": refused})
        assert answer.status_code == status
    assert flask_only.calls == calls + 3


def test_the_poller_reads_memory_only_and_leaves_tokens_to_threads(app, both, settings):
    """What would cost SQL, a graph load or a view built is never done in the poller (it serves every
    connection of its process): a layer not yet cached, a dataset's visibility expired, a token."""
    from segmentation.access import accounts as access_module

    served, _, _ = both
    path = CHUNK.format(layer="image")
    head = raw_head(path)
    assert app.quick_answers(head, ("127.0.0.1", 5555), False) is None  # the layer is not in memory yet
    served.get(path)
    assert app.quick_answers(head, ("127.0.0.1", 5555), False) is not None
    token = proofreader_token(settings.database_url, "small")
    assert app.quick_answers(raw_head(path, f"Authorization: Bearer {token}"), ("127.0.0.1", 5555), False) is None
    access_module.forget_cached_access()  # as when the visibility cache expires
    assert app.quick_answers(head, ("127.0.0.1", 5555), False) is None
    served.get(path)
    assert app.quick_answers(head, ("127.0.0.1", 5555), False) is not None


def test_a_live_chunk_is_not_answered_from_memory_once_the_log_was_last_read_too_long_ago(live, app):
    """Edits from another machine raise no counter here: the cache answers only while a request or the
    follower read the log to its end within Graph.CURRENT_SECONDS (the follower may be off)."""
    from server.workspace import EXTENSION

    served, reference, flask_only = live
    same_answer(served, reference, LIVE_CHUNK)
    calls = flask_only.calls
    same_answer(served, reference, LIVE_CHUNK)
    assert flask_only.calls == calls  # from the cache
    graph = app.extensions[EXTENSION].graphs.find("cg")
    graph.synced_at -= graph.CURRENT_SECONDS + 1  # as if nothing had read the log for a while
    same_answer(served, reference, LIVE_CHUNK)
    assert flask_only.calls == calls + 1  # Flask reads the log, and with it the time of the last look
    same_answer(served, reference, LIVE_CHUNK)
    assert flask_only.calls == calls + 1
