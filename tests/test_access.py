"""Users, tokens, roles per dataset, private datasets and the audit log, through a live server.

Dataset `cg` is public; `secret` is private. Users: vera (viewer on secret), paul (proofreader on
both), ada (admin on both), otto (no role anywhere), root (site admin).
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from segmentation.access import Accounts, AuditLog
from server import endpoints
from tests.helpers import CG_SV, add_two_neuron_dataset, call, cg_point_nm, free_port

ROLES = {
    "vera": {"secret": "viewer"},
    "paul": {"cg": "proofreader", "secret": "proofreader"},
    "ada": {"cg": "admin", "secret": "admin"},
    "otto": {},
}


@pytest.fixture
def site(cg_server, small_volumes, tmp_path):
    add_two_neuron_dataset(cg_server.database_url, "secret", small_volumes["image"], tmp_path, public=False)
    accounts = Accounts(cg_server.database_url)
    tokens = {}
    for user, grants in ROLES.items():
        accounts.add_user(user, by="tests")
        for dataset, role in grants.items():
            accounts.grant(user, dataset, role, by="tests")
        tokens[user] = accounts.create_token(user, by="tests")[1]
    accounts.add_user("root", site_admin=True, by="tests")
    tokens["root"] = accounts.create_token("root", by="tests")[1]
    cg_server.tokens = tokens
    cg_server.accounts = accounts
    return cg_server


def as_user(site, user):
    return site.tokens.get(user)


def get_json(site, path, user=None):
    status, body = call(site.url + path, token=as_user(site, user))
    return status, (json.loads(body) if body[:1] in (b"{", b"[", b'"') else body)


def merge_body(a=1, b=3):
    return json.dumps([[str(CG_SV[a - 1]), *cg_point_nm(a)], [str(CG_SV[b - 1]), *cg_point_nm(b)]]).encode()


# ---- every route of the table ------------------------------------------------------
def _url_for(spec, dataset):
    def fill(match):
        kind, name = match.group(1), match.group(2)
        if name in endpoints.DATASET_PARAMETERS and name == spec.dataset_parameter:
            return dataset
        return "1" if kind == "int" else ("info" if kind == "path" else "x")

    return re.sub(r"<(?:([a-z]+):)?([a-z_]+)>", fill, spec.rule)


DATASET_ROUTES = [
    (name, spec) for name, spec in endpoints.BY_ENDPOINT.items() if spec.access in ("view", "edit", "admin")
]


def test_every_route_naming_a_dataset_is_guarded():
    for name, spec in endpoints.BY_ENDPOINT.items():
        if spec.dataset_parameter:
            assert spec.access != "open", name
        if spec.access in ("view", "edit", "admin"):
            assert spec.dataset_parameter, f"{name} has no dataset in its path to check"
    changes = {n for n, s in endpoints.BY_ENDPOINT.items() if set(s.methods) - {"GET", "HEAD"} and s.access == "open"}
    # the only open changes: signing in and out, and the viewer's own protocol (accepted and dropped)
    assert changes == {"start_session", "end_session", "viewer_state", "viewer_action", "viewer_credentials"}


def test_a_private_dataset_does_not_exist_for_outsiders_on_any_route(site):
    for name, spec in DATASET_ROUTES:
        method = spec.methods[0]
        url = site.url + _url_for(spec, "secret")
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        for user in (None, "otto"):
            status, answer = call(url, body, method=method, token=as_user(site, user))
            assert status == 404, (name, user, status, answer[:200])
            assert b"secret" not in answer or b"no dataset named 'secret'" in answer, (name, answer[:200])


def test_roles_on_every_guarded_route(site):
    """Too low a role is refused before the route runs: 401 anonymous, 403 signed in (never 2xx, never 5xx)."""
    for name, spec in DATASET_ROUTES:
        method = spec.methods[0]
        url = site.url + _url_for(spec, "cg")
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        if spec.access == "view":
            status, _ = call(url, body, method=method)
            assert status not in (401, 403) and status < 500, (name, status)
            continue
        status, _ = call(url, body, method=method)
        assert status == 401, (name, status)
        low = "otto" if spec.access == "edit" else "paul"  # otto: viewer of public cg; paul: not admin
        status, answer = call(url, body, method=method, token=as_user(site, low))
        assert status == 403 and low.encode() in answer, (name, status, answer[:200])
        high = "paul" if spec.access == "edit" else "ada"
        status, _ = call(url, body, method=method, token=as_user(site, high))
        assert status not in (401, 403) and status < 500, (name, high, status)


# ---- tokens --------------------------------------------------------------------------
def test_tokens_bad_expired_revoked_are_401_and_stored_only_hashed(site):
    url = site.url + "/api/v1/me"
    assert get_json(site, "/api/v1/me", "paul")[1]["user"] == "paul"
    for bad in ("nonsense", "axl_" + "A" * 43, "axl_short"):
        status, body = call(url, headers={"Authorization": f"Bearer {bad}"})
        assert status == 401 and b"invalid token" in body
    status, _ = call(url, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert status == 401
    accounts = site.accounts
    _, soon = accounts.create_token("paul", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    import time

    time.sleep(1.2)
    status, body = call(url, token=soon)
    assert status == 401 and b"expired" in body
    _, revoked = accounts.create_token("paul")
    assert call(url, token=revoked)[0] == 200
    accounts.revoke_token(revoked)
    status, body = call(site.url + "/segmentation/api/v1/table/cg/merge", merge_body(), token=revoked)
    assert status == 401 and b"revoked" in body
    engine = sa.create_engine(site.database_url)
    with engine.connect() as connection:
        dump = " ".join(str(v) for row in connection.execute(sa.text("select * from tokens")) for v in row)
    engine.dispose()
    assert all(token not in dump for token in site.tokens.values())
    assert revoked not in dump and soon not in dump


def test_caveclient_with_a_token_edits_as_its_user(site):
    caveclient = pytest.importorskip("caveclient")
    client = caveclient.CAVEclient(
        datastack_name="cg", server_address=site.url, write_server_cache=False, auth_token=site.tokens["paul"]
    )
    cg = client.chunkedgraph
    result = cg.do_merge(
        [CG_SV[1], CG_SV[2]],
        [np.array(cg_point_nm(2)) / [8, 8, 40], np.array(cg_point_nm(3)) / [8, 8, 40]],
        resolution=[8, 8, 40],
    )
    details = cg.get_operation_details([result["operation_id"]])
    assert details[str(result["operation_id"])]["user"] == "paul"
    viewer = caveclient.CAVEclient(
        datastack_name="cg", server_address=site.url, write_server_cache=False, auth_token=site.tokens["otto"]
    )
    with pytest.raises(Exception, match="403|proofreader"):
        viewer.chunkedgraph.undo_operation(result["operation_id"])


# ---- the browser's session cookie ------------------------------------------------------
def test_session_cookie_signs_the_viewer_in_and_never_enters_links(site):
    status, body = call(site.url + "/api/v1/session", json.dumps({"token": site.tokens["paul"]}).encode())
    assert status == 200 and json.loads(body) == {"user": "paul"}
    request = urllib.request.Request(
        site.url + "/api/v1/session", method="POST", data=json.dumps({"token": site.tokens["paul"]}).encode()
    )
    with urllib.request.urlopen(request) as response:
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    status, body = call(site.url + "/api/v1/me", headers=jar)
    assert json.loads(body)["user"] == "paul"
    # the viewer's graphene calls carry the cookie (and, being a browser's, their origin): an edit as paul
    status, body = call(
        site.url + "/segmentation/api/v1/table/cg/merge",
        merge_body(),
        headers={**jar, "Origin": site.url, "Content-Type": "application/json"},
    )
    assert status == 200, body
    assert AuditLog(site.database_url).entries(action="graph.merge")[0]["user"] == "paul"
    # a stale cookie: anonymous, and the cookie is dropped (viewing public data still works)
    request = urllib.request.Request(site.url + "/api/v1/me", headers={"Cookie": "axonlink_token=axl_" + "B" * 43})
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["user"] == "anonymous"
        assert "axonlink_token=;" in response.headers["Set-Cookie"]
    status, body = call(site.url + "/api/v1/session", json.dumps({"token": "axl_" + "C" * 43}).encode())
    assert status == 401
    # a state holding a token is refused, so shared links never carry one
    state = {"layers": [], "note": f"my token {site.tokens['paul']}"}
    status, body = call(site.url + "/api/v1/states", json.dumps(state).encode())
    assert status == 400 and b"access token" in body
    status, body = call(site.url + "/login")
    assert status == 200 and b"#token=" not in body.split(b"<script>")[0] and b"/api/v1/session" in body


# ---- private datasets in lists, search, links -----------------------------------------
def test_private_dataset_hidden_from_lists_search_and_links(site):
    def names(user):
        return {d["name"] for d in get_json(site, "/api/v1/datasets", user)[1]["datasets"]}

    assert names(None) == names("otto") == {"cg"}
    assert names("vera") == names("root") == {"cg", "secret"}
    assert get_json(site, "/info/api/v2/datastacks")[1] == ["cg"]
    assert "secret" not in get_json(site, "/datasets")[1].decode()
    assert get_json(site, "/api/v1/me", "vera")[1]["roles"] == {"cg": "viewer", "secret": "viewer"}

    status, body = call(
        site.url + "/api/v1/datasets/secret/tags",
        json.dumps({"position": [4, 4, 2], "term": "astrocyte"}).encode(),
        token=site.tokens["paul"],
    )
    assert status == 201, body
    assert get_json(site, "/api/v1/search?q=astrocyte", "vera")[1]["total"] == 1
    assert get_json(site, "/api/v1/search?q=astrocyte")[1]["total"] == 0
    assert get_json(site, "/api/v1/search?q=astrocyte", "otto")[1]["total"] == 0
    assert get_json(site, "/api/v1/vocabulary?dataset=secret")[0] == 404

    status, body = call(site.url + "/api/v1/links/at", json.dumps({"dataset": "secret", "voxel": [4, 4, 2]}).encode())
    assert status == 404
    status, body = call(
        site.url + "/api/v1/links/at",
        json.dumps({"dataset": "secret", "voxel": [4, 4, 2]}).encode(),
        token=site.tokens["vera"],
    )
    assert status == 201, body
    link = json.loads(body)
    for path in (
        f"/api/v1/states/{link['short_id']}",
        f"/api/v1/states/{link['short_id']}/was.json",
        f"/api/v1/states/{link['short_id']}/info",
        f"/s/{link['short_id']}",
        f"/nglstate/api/v1/{link['id']}",
        f"/nglstate/api/v1/raw/{link['id']}",
    ):
        assert call(site.url + path)[0] == 404, path
        assert call(site.url + path, token=site.tokens["otto"])[0] == 404, path
        assert call(site.url + path, token=site.tokens["vera"])[0] in (200, 302), path
    assert get_json(site, f"/api/v1/states/{link['short_id']}/info", "vera")[1]["owner"] == "vera"

    # made public, it is visible to everyone at once
    status, _ = call(
        site.url + "/api/v1/datasets/secret",
        json.dumps({"public": True}).encode(),
        method="PATCH",
        token=site.tokens["ada"],
    )
    assert status == 200
    assert names(None) == {"cg", "secret"}
    assert call(site.url + f"/s/{link['short_id']}")[0] == 200  # redirected to the viewer


def test_tags_roles(site):
    tag_url = site.url + "/api/v1/datasets/cg/tags"
    body = json.dumps({"position": [4, 16, 4], "term": "astrocyte"}).encode()
    assert call(tag_url, body)[0] == 401
    assert call(tag_url, body, token=site.tokens["otto"])[0] == 403
    status, answer = call(tag_url, body, token=site.tokens["paul"])
    assert status == 201
    tag_id = json.loads(answer)["id"]
    delete = f"{site.url}/api/v1/tags/{tag_id}"
    assert call(delete, method="DELETE")[0] == 401
    assert call(delete, method="DELETE", token=site.tokens["otto"])[0] == 403
    assert call(delete, method="DELETE", token=site.tokens["ada"])[0] == 200
    tags = get_json(site, "/api/v1/datasets/cg/tags?include_retracted=1")[1]["tags"]
    assert tags[0]["user"] == "paul" and tags[0]["retracted_by"] == "ada"


# ---- admins: grants, dataset settings, the audit log ------------------------------------
def test_admin_grants_and_the_audit_log(site):
    grant = site.url + "/api/v1/datasets/cg/grants/otto"
    assert call(grant, b'{"role": "proofreader"}', method="PUT", token=site.tokens["paul"])[0] == 403
    assert call(grant, b'{"role": "emperor"}', method="PUT", token=site.tokens["ada"])[0] == 400
    assert (
        call(
            site.url + "/api/v1/datasets/cg/grants/nobody",
            b'{"role": "viewer"}',
            method="PUT",
            token=site.tokens["ada"],
        )[0]
        == 400
    )
    assert call(grant, b'{"role": "proofreader"}', method="PUT", token=site.tokens["ada"])[0] == 200
    assert {"user": "otto", "dataset": "cg", "role": "proofreader"} in get_json(
        site, "/api/v1/datasets/cg/grants", "ada"
    )[1]["grants"]
    status, body = call(site.url + "/segmentation/api/v1/table/cg/merge", merge_body(), token=site.tokens["otto"])
    assert status == 200, body
    status, body = call(
        site.url + "/api/v1/datasets/cg", b'{"description": "<b>x</b>"}', method="PATCH", token=site.tokens["ada"]
    )
    assert status == 200 and json.loads(body)["description"] == "<b>x</b>"
    assert call(site.url + "/api/v1/datasets/cg", b'{"name": "y"}', method="PATCH", token=site.tokens["ada"])[0] == 400

    assert get_json(site, "/api/v1/audit")[0] == 401
    assert get_json(site, "/api/v1/audit", "paul")[0] == 403
    ada = get_json(site, "/api/v1/audit", "ada")[1]["entries"]
    actions = [(e["action"], e["user"], e["dataset"]) for e in ada]
    assert ("graph.merge", "otto", "cg") in actions
    assert ("grant", "ada", "cg") in actions and ("dataset.update", "ada", "cg") in actions
    assert all(e["dataset"] in ("cg", "secret") for e in ada)
    merge = next(e for e in ada if e["action"] == "graph.merge")
    assert merge["origin"] == "127.0.0.1" and merge["detail"]["new_root_ids"]
    root = get_json(site, "/api/v1/audit?action=token.*", "root")[1]["entries"]
    assert {e["action"] for e in root} == {"token.create"} and len(root) == 6
    assert get_json(site, "/api/v1/audit?dataset=cg&user=ada", "ada")[1]["entries"]
    assert get_json(site, "/api/v1/audit?dataset=secret&user=ada", "ada")[1]["entries"] == []
    assert get_json(site, "/api/v1/audit?limit=0", "ada")[0] == 400

    # append-only in the database itself
    engine = sa.create_engine(site.database_url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(sa.text("update audit_log set user_id = 'mallory'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(sa.text("delete from audit_log"))
    engine.dispose()


def test_refused_edits_change_nothing(site):
    before = get_json(site, "/segmentation/api/v1/table/cg/node/" + str(CG_SV[0]) + "/root")[1]
    entries = len(AuditLog(site.database_url).entries(limit=10000))
    for user in (None, "otto", "vera"):
        status, _ = call(site.url + "/segmentation/api/v1/table/cg/merge", merge_body(), token=as_user(site, user))
        assert status in (401, 403)
    assert get_json(site, "/segmentation/api/v1/table/cg/node/" + str(CG_SV[0]) + "/root")[1] == before
    assert len(AuditLog(site.database_url).entries(limit=10000)) == entries


# ---- the command line ------------------------------------------------------------------
def test_cli_users_tokens_grants_visibility_audit(settings, small_volumes, capsys):
    from segmentation.datasets import Datasets
    from server.cli import main

    home = ["--home", str(settings.home), "--database-url", settings.database_url]
    from segmentation import db

    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add(
        "small", image=small_volumes["image"], segmentation=small_volumes["segmentation"]
    )
    assert main(["users", "add", "alice", *home]) == 0
    assert main(["users", "add", "alice", *home]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["tokens", "create", "alice", "--expires", "30d", *home]) == 0
    token = capsys.readouterr().out.strip()
    assert re.fullmatch(r"axl_[A-Za-z0-9_-]{43}", token)
    assert main(["tokens", "create", "alice", "--expires", "yesterday-ish", *home]) == 1
    assert main(["grant", "alice", "small", "proofreader", *home]) == 0
    assert main(["grant", "alice", "nope", "viewer", *home]) == 1
    accounts = Accounts(settings.database_url)
    assert accounts.authenticate(token).grants == {"small": "proofreader"}
    assert main(["visibility", "small", "private", *home]) == 0
    assert accounts.is_public("small") is False
    capsys.readouterr()
    assert main(["tokens", "list", "alice", *home]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert listed["user"] == "alice" and token not in json.dumps(listed)
    assert main(["tokens", "revoke", str(listed["id"]), *home]) == 0
    capsys.readouterr()
    assert main(["audit", "--json", *home]) == 0
    actions = [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()]
    assert actions[:5] == ["token.revoke", "dataset.visibility", "grant", "token.create", "user.add"]


def test_demo_needs_no_login_to_view_and_prints_a_proofreader_token(fresh_demo):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    env = {**os.environ, "AXONLINK_HOME": str(fresh_demo.home), "AXONLINK_DATABASE_URL": fresh_demo.database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "demo", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        printed = "".join(lines)
        token = re.search(r"/login#token=(axl_[A-Za-z0-9_-]{43})", printed).group(1)
        assert f"auth_token='{token}'" in printed
        base = f"http://127.0.0.1:{port}"
        assert call(f"{base}/data/demo/segmentation/info")[0] == 200  # viewing: no login
        assert call(f"{base}/segmentation/api/v1/table/demo/merge", b"[]")[0] == 401
        me = json.loads(call(f"{base}/api/v1/me", token=token)[1])
        assert me == {
            "user": "proofreader",
            "authenticated": True,
            "site_admin": False,
            "roles": {"demo": "proofreader"},
        }
        status, body = call(f"{base}/segmentation/api/v1/table/demo/merge", b"[]", token=token)
        assert status == 400  # past the role check, refused for its (empty) body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
