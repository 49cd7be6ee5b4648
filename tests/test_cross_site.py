"""Cookies and origins: a signed-in browser cannot be made to change anything from another site.

The session cookie is SameSite=Strict, but "same site" includes other ports of the same host, and a
server whose anonymous users may edit needs no cookie at all: so every state-changing request that
is not authenticated by a Bearer header must come from this server's own pages.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.helpers import (
    CG_SV,
    SQLITE_ONLY,
    add_two_neuron_dataset,
    call,
    cg_point_nm,
    proofreader_token,
    without_request_id,
)

CG = "/segmentation/api/v1/table/cg"

pytestmark = SQLITE_ONLY  # HTTP rules, the same on every database


def _merge_body(a=1, b=3) -> bytes:
    return json.dumps([[str(CG_SV[a - 1]), *cg_point_nm(a)], [str(CG_SV[b - 1]), *cg_point_nm(b)]]).encode()


@pytest.fixture
def cookie(cg_server):
    status, _ = call(cg_server.url + "/api/v1/session", json.dumps({"token": cg_server.token}).encode())
    assert status == 200
    return {"Cookie": f"axonlink_token={cg_server.token}"}


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "http://evil.example"},  # a page of another site
        {"Origin": "http://127.0.0.1:1"},  # same host, another port: "same site"
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {},  # a cookie but no origin at all
    ],
)
def test_cookie_edits_from_elsewhere_are_refused(cg_server, cookie, browser):
    status, body = call(
        cg_server.url + f"{CG}/merge", _merge_body(), headers={**cookie, **browser, "Content-Type": "application/json"}
    )
    assert status == 403 and b"own pages" in body, body
    status, body = call(
        cg_server.url + "/api/v1/datasets/cg/tags",
        method="POST",
        headers={**cookie, **browser},
        body=json.dumps({"position": [4, 16, 4], "term": "astrocyte"}).encode(),
    )
    assert status == 403


def test_cookie_edits_from_this_server_pass_with_their_content_type(cg_server, cookie):
    same = {**cookie, "Origin": cg_server.url}
    status, body = call(cg_server.url + f"{CG}/merge", _merge_body(), headers=same)  # text/plain, as a form sends
    assert status == 415 and b"application/json" in body
    status, body = call(
        cg_server.url + f"{CG}/merge", _merge_body(), headers={**same, "Content-Type": "application/json"}
    )
    assert status == 200, body
    # a browser that names no origin but says the request is its own page's
    status, body = call(
        cg_server.url + "/api/v1/datasets/cg/tags",
        json.dumps({"position": [4, 16, 4], "term": "astrocyte"}).encode(),
        headers={**cookie, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"},
    )
    assert status == 201, body


def test_bearer_tokens_and_plain_scripts_are_not_browsers(cg_server):
    # a Bearer header cannot be attached by another site's page: no origin rules for it
    status, body = call(
        cg_server.url + f"{CG}/merge", _merge_body(), token=cg_server.token, headers={"Origin": "http://evil.example"}
    )
    assert status == 200, body


def test_login_csrf_is_refused(cg_server):
    """Another site must not sign a visitor in as the attacker (their edits would be the attacker's)."""
    body = json.dumps({"token": cg_server.token}).encode()
    status, _ = call(
        cg_server.url + "/api/v1/session",
        body,
        headers={"Origin": "http://evil.example", "Content-Type": "application/json"},
    )
    assert status == 403
    status, _ = call(cg_server.url + "/api/v1/session", body, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _ = call(
        cg_server.url + "/api/v1/session", body, headers={"Origin": cg_server.url, "Content-Type": "application/json"}
    )
    assert status == 200


def test_anonymous_editing_servers_refuse_other_sites(cg_server):
    """With AXONLINK_ANONYMOUS_ROLE=proofreader no cookie is needed: a cross-site POST would be an edit."""
    app = cg_server._server.app  # the settings are read per request
    app.config["AXONLINK_SETTINGS"] = dataclasses.replace(app.config["AXONLINK_SETTINGS"], anonymous_role="proofreader")
    status, _ = call(cg_server.url + f"{CG}/merge", _merge_body(), headers={"Origin": "http://evil.example"})
    assert status == 403
    status, body = call(cg_server.url + f"{CG}/merge", _merge_body())  # a script on this machine
    assert status == 200, body


# ---- cache headers -------------------------------------------------------------------
@pytest.fixture
def private_site(cg_server, small_volumes):
    from segmentation.datasets import Datasets

    Datasets(cg_server.database_url).add(
        "hidden", image=small_volumes["image"], segmentation=small_volumes["segmentation"], public=False
    )
    cg_server.hidden_token = proofreader_token(cg_server.database_url, "hidden", user="holder")
    return cg_server


def _headers(url, token=None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def test_private_answers_never_enter_shared_caches(private_site):
    base, token = private_site.url, private_site.hidden_token
    for path in (
        "/data/hidden/image/info",
        "/data/hidden/segmentation/8_8_40/0-16_0-16_0-8",
        "/api/v1/datasets/hidden",
        "/api/v1/datasets/hidden/state",
    ):
        status, headers = _headers(base + path, token)
        assert status == 200, path
        assert "public" not in headers["Cache-Control"] and "private" in headers["Cache-Control"], path
        assert {"Authorization", "Cookie"} <= {v.strip() for v in headers["Vary"].split(",")}, path
    for path in ("/api/v1/datasets", "/api/v1/me", "/viewer-config.js", "/api/v1/search?q=astrocyte"):
        status, headers = _headers(base + path)
        assert "private" in headers["Cache-Control"] and "Cookie" in headers["Vary"], path
    # public data keeps its public, immutable caching
    status, headers = _headers(base + "/data/cg/image/8_8_40/0-16_0-16_0-8")
    assert status == 200 and headers["Cache-Control"].startswith("public")


def test_unknown_and_private_datasets_look_the_same(private_site):
    base = private_site.url
    for template in (
        "/data/{}/image/info",
        "/data/{}@NaN/image/info",
        "/api/v1/datasets/{}",
        f"/segmentation/api/v1/table/{{}}/node/{CG_SV[0]}/root",
        "/api/v1/datasets/{}/tags",
        "/materialize/api/v3/datastack/{}/versions",
        "/at/{}/1,1,1",
    ):
        hidden = _headers(base + template.format("hidden"))
        unknown = _headers(base + template.format("nosuch"))
        assert hidden[0] == unknown[0] == 404, template
        assert dict(hidden[1]).keys() == dict(unknown[1]).keys(), template
        _, hidden_body = call(base + template.format("hidden"))
        _, unknown_body = call(base + template.format("nosuch"))
        assert without_request_id(hidden_body.replace(b"hidden", b"X")) == without_request_id(
            unknown_body.replace(b"nosuch", b"X")
        ), template


def test_where_layers_are_stored_is_for_admins_only(private_site):
    from segmentation.access import Accounts

    base = private_site.url
    _, body = call(base + "/api/v1/datasets/cg")
    layers = json.loads(body)["layers"]
    assert [layer["source"] for layer in layers] == [
        f"precomputed://{base}/data/cg/{layer['name']}" for layer in layers
    ]
    assert all("storage" not in layer for layer in layers) and b"file://" not in body
    _, body = call(base + "/api/v1/datasets", token=private_site.hidden_token)  # a proofreader is no admin
    assert b"file://" not in body and b"storage" not in body
    admin = Accounts(private_site.database_url).role_token("keeper", "hidden", "admin", by="tests")
    _, body = call(base + "/api/v1/datasets/hidden", token=admin)
    assert all(layer["storage"].startswith("file://") for layer in json.loads(body)["layers"])


def test_operation_ids_do_not_reveal_edits_in_other_datasets(private_site, small_volumes, tmp_path):
    import numpy as np

    add_two_neuron_dataset(private_site.database_url, "other", small_volumes["image"], tmp_path, public=False)
    other_token = proofreader_token(private_site.database_url, "other", user="elsewhere")
    other_sv = [int(s) for s in (np.array([1, 2], dtype=np.uint64) | np.uint64(1 << 56))]
    merge_other = json.dumps([[other_sv[0], 0, 0, 0], [other_sv[1], 0, 0, 0]]).encode()
    for _ in range(3):  # edits in the other, private dataset
        status, body = call(private_site.url + "/segmentation/api/v1/table/other/merge", merge_other, token=other_token)
        operation = json.loads(body)["operation_id"]
        call(
            private_site.url + "/segmentation/api/v1/table/other/undo",
            json.dumps({"operation_id": operation}).encode(),
            token=other_token,
        )
    status, body = call(private_site.url + f"{CG}/merge", _merge_body(), token=private_site.token)
    assert status == 200 and json.loads(body)["operation_id"] == 1  # the first edit of cg, whatever happened elsewhere
    status, body = call(
        private_site.url + f"{CG}/undo", json.dumps({"operation_id": 1}).encode(), token=private_site.token
    )
    assert status == 200 and json.loads(body)["operation_id"] == 2
    status, body = call(private_site.url + f"{CG}/operation_details?operation_ids=[2]")
    assert status == 200 and json.loads(body)["2"]["target_operation_id"] == 1
    status, body = call(private_site.url + f"{CG}/operation_details?operation_ids=[3]")
    assert status == 400 and b"no operation 3 in dataset 'cg'" in body
