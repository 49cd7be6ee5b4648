"""Host names: only allowed ones are answered; "this server" is recognised in every spelling a browser accepts."""

from __future__ import annotations

import dataclasses

import pytest

from server.hosts import canonical_host, is_loopback
from tests.helpers import SQLITE_ONLY


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("LocalHost.", "localhost"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("Em.Example.ORG.", "em.example.org"),
        ("my-host", "my-host"),
    ],
)
def test_host_spellings_are_canonical(spelling, canonical):
    assert canonical_host(spelling) == canonical


def test_loopback_names():
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "a.localhost"))
    assert not any(is_loopback(h) for h in ("example.org", "10.0.0.1", "localhost.example.org"))


@SQLITE_ONLY
def test_other_host_headers_are_refused(app, client):
    assert client.get("/api/v1/datasets", headers={"Host": "localhost:8080"}).status_code == 200
    refused = client.get("/api/v1/datasets", headers={"Host": "evil.example:8080"})
    assert refused.status_code == 400 and "--allowed-host evil.example" in refused.get_json()["message"]
    app.config["AXONLINK_SETTINGS"] = dataclasses.replace(
        app.config["AXONLINK_SETTINGS"], allowed_hosts=("em.example.org",)
    )
    assert client.get("/api/v1/datasets", headers={"Host": "EM.example.org."}).status_code == 200
    assert client.get("/api/v1/datasets", headers={"Host": "evil.example"}).status_code == 400


@SQLITE_ONLY
def test_links_are_built_from_the_public_url_not_the_host_header(app, client):
    app.config["AXONLINK_SETTINGS"] = dataclasses.replace(
        app.config["AXONLINK_SETTINGS"], public_url="https://em.example.org", allowed_hosts=("other.example",)
    )
    state = client.get("/api/v1/datasets/small/state", headers={"Host": "other.example"}).get_json()
    sources = [layer["source"] for layer in state["layers"]]
    assert sources and all("https://em.example.org/data/small/" in str(s) for s in sources), sources


def test_a_wildcard_host_list_cannot_go_with_anonymous_editing(tmp_path):
    from segmentation.config import Settings

    with pytest.raises(ValueError, match="allowed hosts"):
        Settings.load(home=tmp_path, anonymous_role="proofreader", allowed_hosts=["*"])
    assert Settings.load(home=tmp_path, allowed_hosts=["*"]).allowed_hosts == ("*",)
    with pytest.raises(ValueError, match="public URL"):
        Settings.load(home=tmp_path, public_url="ftp://x")


@SQLITE_ONLY
def test_the_client_address_comes_from_a_trusted_proxy_only(app, client):
    """Behind nginx, rate limits and the audit log need the client's address, never a spoofed one."""
    from flask import request

    from server.proxies import TrustedProxies

    seen = []
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: seen.append(request.remote_addr))
    app.wsgi_app = TrustedProxies(app.wsgi_app, ("127.0.0.1",))
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    client.get("/api/v1/datasets", headers=forwarded, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    client.get("/api/v1/datasets", headers=forwarded, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert seen == ["203.0.113.7", "198.51.100.9"]  # the proxy is believed; a client claiming it is not
