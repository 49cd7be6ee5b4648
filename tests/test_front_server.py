"""axonlink behind Debian's nginx with ``--accel-redirect``: axonlink decides, nginx moves the bytes.

A private dataset's stored chunks cannot sit in nginx's cache, so behind nginx each one used to be
read and written by axonlink's Python. With ``--accel-redirect`` axonlink answers them after its
access check with an empty body and ``X-Accel-Redirect``, and nginx sends the file (docs/deploy.md).
What a client sees must not change: the same status, bytes and headers as from axonlink alone."""

from __future__ import annotations

import http.client

import pytest

from segmentation.datasets import Datasets
from tests.front_server import ACCEL_PREFIX, axonlink_serve, nginx_available, nginx_in_front
from tests.helpers import SQLITE_ONLY, proofreader_token

pytestmark = [
    SQLITE_ONLY,
    pytest.mark.skipif(not nginx_available(), reason="nginx is missing (apt-get install -y nginx; .ci/run does)"),
]

CHUNK = "/data/hidden/image/8_8_40/16-32_16-32_8-16"
COMPARED = ("etag", "content-encoding", "content-type", "cache-control", "vary", "access-control-allow-origin")


def get(url: str, path: str, headers: dict, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture
def fronted(app, settings, small_volumes, tmp_path):
    """(axonlink's URL, nginx's URL, a token that may view the private dataset `hidden`)."""
    Datasets(settings.database_url).add(
        "hidden", image=small_volumes["image"], segmentation=small_volumes["segmentation"], public=False
    )
    token = proofreader_token(settings.database_url, "hidden")
    flags = ("--trusted-proxy", "127.0.0.1", "--accel-redirect", ACCEL_PREFIX)
    with axonlink_serve(settings, tmp_path, *flags) as alone, nginx_in_front(alone, tmp_path / "nginx") as front:
        yield alone, front, token


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_a_private_chunk_through_nginx_is_what_axonlink_alone_answers(fronted, encoding):
    alone, front, token = fronted
    asked = {"Authorization": f"Bearer {token}", "Accept-Encoding": encoding}
    # a client reaching axonlink directly (not from the trusted proxy's address) gets the bytes
    status, direct_headers, direct = get(alone, CHUNK, asked, source="127.0.0.2")
    assert status == 200 and len(direct) > 0 and "x-accel-redirect" not in direct_headers
    status, headers, body = get(front, CHUNK, asked)
    assert status == 200 and body == direct
    assert {k: headers.get(k) for k in COMPARED} == {k: direct_headers.get(k) for k in COMPARED}
    assert "x-accel-redirect" not in headers and headers["x-request-id"]
    assert int(headers["content-length"]) == len(body)


def test_axonlink_hands_the_file_to_nginx_only_after_its_access_check(fronted):
    alone, front, token = fronted
    # as nginx asks (from the trusted address): an empty answer naming the file
    status, headers, body = get(alone, CHUNK, {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"})
    assert status == 200 and body == b""
    assert headers["x-accel-redirect"].startswith(f"{ACCEL_PREFIX}/") and headers["x-accel-redirect"].endswith(".gz")
    # without the token: axonlink's 404, through nginx too; the internal location is not reachable
    for url in (alone, front):
        status, headers, body = get(url, CHUNK, {"Accept-Encoding": "gzip"})
        assert status == 404 and b"x-accel" not in body.lower()
    assert get(front, f"{ACCEL_PREFIX}/etc/hostname", {})[0] == 404
    # a revalidation is answered by axonlink (304), a byte range with the bytes axonlink cuts
    asked = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    etag = get(front, CHUNK, asked)[1]["etag"]
    assert get(front, CHUNK, {**asked, "If-None-Match": etag})[0] == 304
    status, _, part = get(front, CHUNK, {**asked, "Range": "bytes=0-9"})
    _, _, whole = get(alone, CHUNK, {**asked, "Accept-Encoding": "identity"}, source="127.0.0.2")
    assert status == 206 and part == whole[:10]
