"""Private data stays private through share links, end to end on a live server.

Dataset `cg` is public (graph {1,2} {3,4}); `secret` is private, the same four supervoxels
agglomerated as one neuron {1,2,3,4}, so its roots differ from cg's. vera may view secret, otto
has no role, root is a site admin; anonymous callers send no token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from tests.helpers import CG_SV, without_request_id, write_volume
from tests.spellings import PLACES, SPELLINGS

NOT_FOUND = {"error": "Not Found"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(url, body: bytes | None = None, token: str | None = None, method: str | None = None):
    """(status, headers, body) of one request, redirects not followed, errors included."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, data=body, headers=headers, method=method or ("POST" if body is not None else "GET")
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture
def site(cg_server, small_volumes, tmp_path, monkeypatch):
    from segmentation.access import Accounts
    from segmentation.access import accounts as accounts_module
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    monkeypatch.setattr(accounts_module, "CACHE_SECONDS", 3600.0)  # visibility cached through a test: same work
    seg = write_volume(
        tmp_path / "secret-seg", cg_server.labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1
    )
    Datasets(cg_server.database_url).add("secret", image=small_volumes["image"], segmentation=seg, public=False)
    ingest_dataset(cg_server.database_url, "secret", agglomeration=[[1, 2], [2, 3], [3, 4]], progress=False)
    accounts = Accounts(cg_server.database_url)
    cg_server.tokens = {
        "vera": accounts.role_token("vera", "secret", "viewer", by="tests"),
        "otto": accounts.role_token("otto", "cg", "viewer", by="tests"),
    }
    accounts.add_user("root", site_admin=True, by="tests")
    cg_server.tokens["root"] = accounts.create_token("root", by="tests")[1]
    cg_server.port = int(cg_server.url.rsplit(":", 1)[1])
    return cg_server


def roots(site, dataset, svs):
    status, _, body = call(
        f"{site.url}/segmentation/api/v1/table/{dataset}/roots",
        json.dumps({"node_ids": svs}).encode(),
        token=site.tokens["vera"],
    )
    assert status == 200, body
    return json.loads(body)["root_ids"]


def post(site, state, user=None, route="/api/v1/states"):
    raw = state if isinstance(state, bytes) else json.dumps(state).encode()
    status, headers, body = call(site.url + route, raw, token=site.tokens.get(user))
    return status, headers, (json.loads(body) if body[:1] in (b"{", b"[", b'"') else body)


def read_paths(made):
    """Every route that reads a stored state, by short id and by integer id."""
    short, number = made["short_id"], made["id"]
    return [
        f"/api/v1/states/{short}",
        f"/api/v1/states/{number}",
        f"/api/v1/states/{short}?as=now",
        f"/api/v1/states/{short}?as=was",
        f"/api/v1/states/{short}/now.json",
        f"/api/v1/states/{number}/was.json",
        f"/api/v1/states/{short}/info",
        f"/api/v1/states/{number}/info",
        f"/s/{short}",
        f"/s/{number}",
        f"/nglstate/api/v1/{number}",
        f"/nglstate/api/v1/raw/{number}",
    ]


def missing_twin(path, made):
    """The same path naming a state that does not exist (same length and kind of reference)."""
    return path.replace(made["short_id"], "zzzzzzz").replace(str(made["id"]), str(made["id"] + 1))


def assert_like_a_missing_state(site, path, made, user=None):
    status, _, body = call(site.url + path, token=site.tokens.get(user))
    twin_status, _, twin = call(site.url + missing_twin(path, made), token=site.tokens.get(user))
    assert (status, twin_status) == (404, 404), (path, user, status, body[:200])
    ref = made["short_id"] if made["short_id"] in path else str(made["id"])
    twin_ref = "zzzzzzz" if made["short_id"] in path else str(made["id"] + 1)
    assert without_request_id(body.replace(ref.encode(), twin_ref.encode())) == without_request_id(twin), (
        path,
        body,
        twin,
    )


@contextmanager
def statements(database_url):
    """The SQL statements run meanwhile (by the live server in this process, or anyone)."""
    from segmentation.db import engine_for

    seen: list[str] = []

    def remember(conn, cursor, statement, *args):
        seen.append(statement)

    engine = engine_for(database_url)
    sa.event.listen(engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", remember)


# ---- tying a state to every dataset it names -------------------------------------------------
def test_every_spelling_and_place_of_a_private_dataset_ties_the_state(site):
    """Each spelling (and each place in a state) of `secret`: refused for anonymous callers exactly like an
    unknown dataset; stored for vera, then readable by vera only — on every read route, by either id."""
    places = list(PLACES)
    for k, spelling in enumerate(SPELLINGS):

        def state(name):
            source = SPELLINGS[spelling](site.url, site.port, name)
            return {**PLACES[places[k % len(places)]](source), "title": f"{spelling} {k}"}

        for user in (None, "otto"):
            status, _, answer = post(site, state("secret"), user)
            unknown_status, _, unknown = post(site, state("nosuch"), user)
            assert (status, unknown_status) == (404, 404), (spelling, user, answer)
            assert without_request_id(answer) == {**NOT_FOUND, "message": "no dataset named 'secret'"}, (
                spelling,
                answer,
            )
            assert without_request_id(unknown) == {**NOT_FOUND, "message": "no dataset named 'nosuch'"}, (
                spelling,
                unknown,
            )
        status, _, made = post(site, state("secret"), "vera")
        assert status == 201 and "secret" in made["datasets"], (spelling, made)
        for path in read_paths(made):
            for user in (None, "otto"):
                assert_like_a_missing_state(site, path, made, user)
            assert call(site.url + path, token=site.tokens["vera"])[0] in (200, 302), (spelling, path)


def test_the_dataset_404_is_the_same_everywhere(site):
    """Saving a state, making a voxel link and asking the dataset itself: one status, one text."""
    for name in ("secret", "nosuch"):
        expected = {**NOT_FOUND, "message": f"no dataset named '{name}'"}
        answers = [
            post(site, {"layers": [{"type": "image", "source": f"precomputed://{site.url}/data/{name}/image"}]}),
            post(site, {"dataset": name, "voxel": [1, 2, 3]}, route="/api/v1/links/at"),
            post(site, {"layers": [], "x": f"{site.url}/at/{name}/1,2,3"}, route="/nglstate/api/v1/post"),
        ]
        status, _, body = call(f"{site.url}/api/v1/datasets/{name}")
        answers.append((status, None, json.loads(body)))
        assert [(s, without_request_id(a)) for s, _, a in answers] == [(404, expected)] * 4, answers


def test_unknown_and_private_cost_the_same_work(site):
    """The same SQL statements, in the same order, whether a name is unknown or private (saving), or a state
    does not exist or is not the caller's to see (reading; also once the state sits in the server's cache)."""

    def state(name):
        return {"layers": [{"type": "image", "source": f"precomputed://{site.url}/data/{name}/image"}]}

    post(site, state("secret"))  # warm every cache once
    work = {}
    for name in ("secret", "nosuch"):
        with statements(site.database_url) as seen:
            assert post(site, state(name))[0] == 404
        work[name] = list(seen)
    assert work["secret"] == work["nosuch"]

    made = post(site, state("secret"), "vera")[2]
    for cached in (False, True):
        if cached:
            assert call(f"{site.url}/api/v1/states/{made['short_id']}", token=site.tokens["vera"])[0] == 200
        for path in (
            f"/api/v1/states/{made['short_id']}",
            f"/nglstate/api/v1/{made['id']}",
            f"/api/v1/states/{made['short_id']}/info",
        ):
            seen_by = {}
            for target in (path, missing_twin(path, made)):
                with statements(site.database_url) as seen:
                    assert call(site.url + target)[0] == 404
                seen_by[target] = list(seen)
            assert len(set(map(tuple, seen_by.values()))) == 1, (path, cached, seen_by)


def test_anonymous_callers_cannot_enumerate_integer_ids(site):
    """New states get random 53-bit ids; walking ids near them finds nothing; private ones answer 404."""
    made = [post(site, {"layers": [], "title": f"public {k}"})[2] for k in range(3)]
    private = post(site, {"layers": [{"type": "image", "source": f"{site.url}/data/secret/image|zarr2:"}]}, "vera")[2]
    ids = [m["id"] for m in made + [private]]
    assert all(2**40 <= i < 2**53 for i in ids), ids
    assert max(ids) - min(ids) > 1000  # not a sequence
    for state_id in range(min(ids) - 3, min(ids) + 4):
        if state_id not in ids:
            assert call(f"{site.url}/nglstate/api/v1/{state_id}")[0] == 404
    assert_like_a_missing_state(site, f"/nglstate/api/v1/{private['id']}", private)
    assert call(f"{site.url}/nglstate/api/v1/{made[0]['id']}")[0] == 200
    assert call(f"{site.url}/nglstate/api/v1/{2**53}")[0] == 404  # beyond JavaScript's exact integers


def test_info_shows_owner_and_short_id_only_to_who_holds_the_link(site):
    made = post(site, {"layers": [], "title": "vera's public view"}, "vera")[2]
    assert made["owner"] == "vera"  # the poster holds the short link
    by_short = json.loads(call(f"{site.url}/api/v1/states/{made['short_id']}/info")[2])
    assert by_short["owner"] == "vera" and by_short["short_id"] == made["short_id"]
    by_id = json.loads(call(f"{site.url}/api/v1/states/{made['id']}/info")[2])
    assert by_id["owner"] is None and by_id["short_id"] is None and by_id["short_url"] is None
    assert by_id["title"] == "vera's public view" and by_id["id"] == made["id"]
    assert made["short_id"] not in json.dumps(by_id)
    for user in ("vera", "root"):
        shown = json.loads(call(f"{site.url}/api/v1/states/{made['id']}/info", token=site.tokens[user])[2])
        assert shown["owner"] == "vera" and shown["short_id"] == made["short_id"], user
    # /s/<integer id> opens the viewer by that id, not by the short one
    status, headers, _ = call(f"{site.url}/s/{made['id']}")
    assert status == 302 and made["short_id"] not in headers["Location"]
    assert f"/api/v1/states/{made['id']}/was.json" in headers["Location"]


def test_a_state_pointing_at_a_state_shows_what_that_one_shows(site):
    private = post(
        site, {"layers": [{"type": "image", "source": f"precomputed://{site.url}/data/secret/image"}]}, "vera"
    )[2]
    pointing = {"layers": [], "see": f"{site.url}/s/{private['short_id']}"}
    status, _, answer = post(site, pointing)
    status_missing, _, missing = post(site, {"layers": [], "see": f"{site.url}/s/zzzzzzz"})
    assert (status, status_missing) == (404, 404)
    assert answer["message"].replace(private["short_id"], "zzzzzzz") == missing["message"] == "no state 'zzzzzzz'"
    status, _, made = post(site, pointing, "vera")
    assert status == 201 and made["datasets"] == ["secret"]
    assert_like_a_missing_state(site, f"/api/v1/states/{made['short_id']}", made)
    by_id = {"layers": [], "see": f"nglstate://{site.url}/nglstate/api/v1/{private['id']}"}
    assert post(site, by_id)[0] == 404 and post(site, by_id, "vera")[0] == 201


def test_urls_of_ours_that_name_nothing_checkable_are_refused(site):
    for path in (
        "/api/v1/tags/1",
        "/api/v1/search?q=dataset:secret",
        "/api/v1/vocabulary?dataset=secret",
        "/nope/secret",
    ):
        status, _, answer = post(site, {"layers": [{"type": "image", "source": f"precomputed://{site.url}{path}"}]})
        assert status == 400 and "on this server" in answer["message"], (path, answer)
    harmless = {
        "layers": [],
        "links": [
            f"{site.url}/",
            f"{site.url}/v/axonlink/",
            f"{site.url}/datasets",
            f"{site.url}/static/neuroglancer/main.bundle.js",
        ],
    }
    status, _, made = post(site, harmless)
    assert status == 201 and made["datasets"] == []


# ---- anchors: a layer's own dataset only ------------------------------------------------------
def test_two_layers_of_one_name_reveal_nothing_of_a_private_dataset(site):
    """The attack: a layer "cells" on public cg lists a cg root; a second layer "cells" on private secret lists
    the same root. Anchored by layer name alone, "as it is now" looked the cg anchor up in secret's graph and
    answered secret's current root for it — to anyone."""
    cg_root = roots(site, "cg", [CG_SV[2]])[0]  # cg's {3,4}
    secret_root = roots(site, "secret", [CG_SV[2]])[0]  # secret's {1,2,3,4}
    assert cg_root != secret_root

    def layer(dataset):
        return {
            "type": "segmentation",
            "name": "cells",
            "segments": [str(cg_root)],
            "source": f"precomputed://{site.url}/data/{dataset}/segmentation",
        }

    state = {
        "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]},
        "position": [20.5, 16.5, 4.5],
        "layers": [layer("cg"), layer("secret")],
    }
    status, _, answer = post(site, state)
    assert status == 404 and answer["message"] == "no dataset named 'secret'"
    assert str(secret_root) not in json.dumps(answer)

    status, _, made = post(site, state, "vera")  # vera may see both: the state is stored
    assert status == 201, made
    assert [(a["layer"], a["layer_index"], a["dataset"]) for a in made["anchors"]] == [("cells", 0, "cg")]
    for path in (
        f"/api/v1/states/{made['short_id']}?as=now",
        f"/api/v1/states/{made['short_id']}/info",
        f"/api/v1/states/{made['short_id']}/now.json",
    ):
        assert_like_a_missing_state(site, path, made)  # anonymous: nothing
        status, _, body = call(site.url + path, token=site.tokens["vera"])
        assert status == 200 and str(secret_root) not in body.decode(), (path, body[:300])
    now = json.loads(call(f"{site.url}/api/v1/states/{made['short_id']}?as=now", token=site.tokens["vera"])[2])
    assert [layer["segments"] for layer in now["layers"]] == [[str(cg_root)], [str(cg_root)]]


def test_a_segment_listed_twice_is_stored_and_read(site):
    first, _, third, _ = roots(site, "cg", CG_SV)
    state = {
        "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]},
        "position": [4.5, 16.5, 4.5],
        "layers": [
            {
                "type": "segmentation",
                "name": "cells",
                "segments": [str(first), str(first), f"!{third}", str(third), "junk", "-1", 5],
                "source": f"graphene://{site.url}/segmentation/table/cg",
            }
        ],
    }
    status, _, made = post(site, state)
    assert status == 201, made
    assert sorted(a["segment_id"] for a in made["anchors"]) == sorted([str(first), str(third)])
    for path in (
        f"/api/v1/states/{made['short_id']}?as=now",
        f"/api/v1/states/{made['short_id']}?as=was",
        f"/api/v1/states/{made['short_id']}/info",
    ):
        assert call(site.url + path)[0] == 200, path
    now = json.loads(call(f"{site.url}/api/v1/states/{made['short_id']}?as=now")[2])
    assert now["layers"][0]["segments"] == [str(first), f"!{third}", "5"]


# ---- caching, tokens, hostile input --------------------------------------------------------
def test_private_states_are_never_cached_for_others(site):
    private = post(
        site,
        {"layers": [{"type": "image", "source": f"{site.url}/data/secret/image/|neuroglancer-precomputed:"}]},
        "vera",
    )
    assert private[1]["Cache-Control"] == "private, no-store"
    made = private[2]
    for path in read_paths(made):
        status, headers, _ = call(site.url + path, token=site.tokens["vera"])
        assert status in (200, 302) and headers["Cache-Control"] == "private, no-store", (path, dict(headers))
        assert {"Authorization", "Cookie"} <= {v.strip() for v in headers.get("Vary", "").split(",")}, path
    public = post(site, {"layers": [{"type": "image", "source": f"precomputed://{site.url}/data/cg/image"}]})[2]
    for path in read_paths(public):
        status, headers, _ = call(site.url + path)
        assert status in (200, 302), path
        cache = headers.get("Cache-Control") or ""
        assert "immutable" not in cache and ("private" in cache) == path.endswith("/info"), (path, cache)


@pytest.mark.parametrize("route", ["/api/v1/states", "/nglstate/api/v1/post"])
def test_a_token_in_any_encoding_is_refused(site, route):
    token = site.tokens["vera"]
    escaped = token.replace("_", "\\u005f")
    for raw in (
        json.dumps({"note": token}).encode(),
        b'{"note": "' + escaped.encode() + b'"}',
        json.dumps({"note": token.replace("_", "%5F")}).encode(),
        json.dumps({"note": token.replace("_", "%255F")}).encode(),
        json.dumps({token: "as a key"}).encode(),
        json.dumps({"layers": [{"source": f"precomputed://{site.url}/data/cg/image?t={token}"}]}).encode(),
    ):
        status, _, answer = post(site, raw, route=route)
        assert status == 400 and "access token" in answer["message"], (raw[:80], answer)


def test_json_nested_100000_deep_is_a_400_on_every_state_route(site):
    for route in ("/api/v1/states", "/nglstate/api/v1/post", "/api/v1/links/at"):
        for raw in (
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
            b'{"dataset": "cg", "voxel": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ):
            status, _, answer = post(site, raw, route=route)
            assert status == 400 and "deeper than" in answer["message"], (route, answer)


# ---- the migration ---------------------------------------------------------------------------
def test_migration_ties_states_stored_before_it(settings):
    """States stored by 0006 (sequential ids, no ties): 0007 ties them to every dataset they name, on any host."""
    from segmentation import db
    from segmentation.access import Accounts
    from state_links.codec import encode

    db.upgrade(settings.database_url, "0006")
    engine = db.engine_for(settings.database_url)
    with engine.begin() as connection:  # rows as 0006 knew them (today's model has later columns)
        for name, public in (("cg", True), ("secret", False), ("other", False)):
            connection.execute(
                sa.text(
                    "INSERT INTO datasets (name, description, license, citation, voxel_resolution, volume_size, "
                    "voxel_offset, created_at, public) VALUES (:name, '', '', '', '[8, 8, 40]', '[64, 48, 20]', "
                    "'[0, 0, 0]', '2026-01-01 00:00:00', :public)"
                ),
                {"name": name, "public": public},
            )
    old = {
        1: {"layers": [{"type": "image", "source": "precomputed://http://old-name.example:9000/data/secret/image"}]},
        2: {
            "layers": [
                {"type": "segmentation", "name": "cells", "source": "http://localhost:8080/data/cg/seg|zarr2:"},
                {"type": "annotation", "source": "graphene://https://x.org/segmentation/table/%73ecret"},
            ]
        },
        3: {"layers": [], "note": "http%3A%2F%2Fh%2Fdata%2Fsecret%2Fimage gs://b/data/other/x http://h/data/nosuch/y"},
        4: {"layers": [], "see": "http://127.0.0.1:8080/s/aaaaaa1"},  # names state 1 by its short id
        5: {"layers": []},  # tied through its anchor only
    }
    with engine.begin() as connection:
        for state_id, state in old.items():
            raw = json.dumps(state).encode()
            codec, blob = encode(raw)
            connection.execute(
                sa.text(
                    "INSERT INTO states (id, short_id, content_key, codec, blob, raw_size, title, description, owner, "
                    "dataset, created_at, views) VALUES (:id, :short, :key, :codec, :blob, :size, '', '', 'ann', "
                    ":dataset, :at, 0)"
                ),
                {
                    "id": state_id,
                    "short": f"aaaaaa{state_id}",
                    "key": f"k{state_id}",
                    "codec": codec,
                    "blob": blob,
                    "size": len(raw),
                    "dataset": "cg" if state_id == 2 else None,
                    "at": "2026-01-01 00:00:00",
                },
            )
        connection.execute(
            sa.text(
                "INSERT INTO state_anchors (state_id, layer, segment_id, dataset, sv_id) "
                "VALUES (5, 'cells', 7, 'other', 8)"
            )
        )
    db.upgrade(settings.database_url)

    with engine.connect() as connection:
        tied = {}
        for state_id, dataset in connection.execute(sa.text("SELECT state_id, dataset FROM state_datasets")):
            tied.setdefault(state_id, set()).add(dataset)
        layer_index = connection.execute(sa.text("SELECT layer_index FROM state_anchors")).scalar_one()
    assert tied == {1: {"secret"}, 2: {"cg", "secret"}, 3: {"secret"}, 4: {"secret"}, 5: {"other"}}
    assert layer_index == -1

    # the old sequential ids keep working, for those who may see them
    from server import create_app
    from server.runner import BackgroundServer

    token = Accounts(settings.database_url).role_token("vera", "secret", "viewer", by="tests")
    with BackgroundServer(create_app(settings)) as server:
        for state_id in (1, 2, 3, 4):
            assert call(f"{server.url}/nglstate/api/v1/{state_id}")[0] == 404
            status, _, body = call(f"{server.url}/nglstate/api/v1/{state_id}", token=token)
            assert status == 200 and json.loads(body) == old[state_id]
        made = json.loads(call(f"{server.url}/api/v1/states", b'{"layers": [], "new": 1}')[2])
        assert made["id"] >= 2**40
