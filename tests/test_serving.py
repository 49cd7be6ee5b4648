"""Precomputed serving over a real socket, read by real clients (CloudVolume, tensorstore, urllib)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from cloudvolume import CloudVolume

from server.runner import BackgroundServer


@pytest.fixture
def live(app):
    with BackgroundServer(app) as server:
        yield server


def fetch(url, method="GET", headers=None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("layer", ["image", "segmentation"])
def test_cloudvolume_reads_every_mip_over_http(live, small_volumes, layer):
    for mip in range(2):
        served = CloudVolume(f"{live.url}/data/small/{layer}", mip=mip, progress=False)[:, :, :]
        direct = CloudVolume(small_volumes[layer], mip=mip, progress=False)[:, :, :]
        assert served.shape == direct.shape
        assert np.array_equal(served, direct)
    array = small_volumes["image_array" if layer == "image" else "labels_array"]
    assert np.array_equal(CloudVolume(f"{live.url}/data/small/{layer}", mip=0, progress=False)[:, :, :][..., 0], array)


@pytest.mark.parametrize("layer", ["image", "segmentation"])
def test_tensorstore_reads_every_mip_over_http(live, small_volumes, layer):
    """tensorstore cannot read CloudVolume's ``.gz`` files from disk, so compare with CloudVolume's read."""
    ts = pytest.importorskip("tensorstore")
    for mip in range(2):
        served = (
            ts.open(
                {
                    "driver": "neuroglancer_precomputed",
                    "kvstore": f"{live.url}/data/small/{layer}/",
                    "scale_index": mip,
                },
                read=True,
            )
            .result()
            .read()
            .result()
        )
        direct = CloudVolume(small_volumes[layer], mip=mip, progress=False)[:, :, :]
        assert np.array_equal(served, np.asarray(direct))
        assert served.any()


def test_timestamped_url_serves_the_same_volume(live):
    now = CloudVolume(f"{live.url}/data/small/segmentation", progress=False)[:, :, :]
    then = CloudVolume(f"{live.url}/data/small@2026-01-01T00:00:00Z/segmentation", progress=False)[:, :, :]
    assert np.array_equal(now, then)
    status, _, body = fetch(f"{live.url}/data/small@yesterday/segmentation/info")
    assert status == 400 and "ISO 8601" in json.loads(body)["message"]


def chunk_key(client, layer="segmentation"):
    info = client.get(f"/data/small/{layer}/info").get_json()
    scale = info["scales"][0]
    cx, cy, cz = scale["chunk_sizes"][0]
    return f"{scale['key']}/0-{cx}_0-{cy}_0-{cz}"


def test_gzip_chunk_passes_through_or_is_decoded(client, small_volumes):
    key = chunk_key(client)
    stored = (small_volumes["root"] / "segmentation" / f"{key}.gz").read_bytes()
    passed = client.get(f"/data/small/segmentation/{key}", headers={"Accept-Encoding": "gzip"})
    assert passed.status_code == 200
    assert passed.headers["Content-Encoding"] == "gzip"
    assert passed.data == stored
    assert passed.headers["Content-Type"] == "application/octet-stream"
    plain = client.get(f"/data/small/segmentation/{key}", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.data == gzip.decompress(stored)


def test_info_is_json_with_cors_and_etag(client):
    response = client.get("/data/small/image/info")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert "content-range" in exposed and "content-encoding" in exposed
    assert response.get_json()["type"] == "image"
    etag = response.headers["ETag"]
    again = client.get("/data/small/image/info", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""


def test_preflight(client):
    response = client.options(
        "/data/small/image/info",
        headers={
            "Origin": "http://elsewhere",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "range" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


def test_range_requests_answer_206_without_content_encoding(client):
    key = chunk_key(client)
    whole = client.get(f"/data/small/segmentation/{key}", headers={"Accept-Encoding": "identity"}).data
    part = client.get(f"/data/small/segmentation/{key}", headers={"Range": "bytes=10-29", "Accept-Encoding": "gzip"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-29/{len(whole)}"
    assert "Content-Encoding" not in part.headers
    assert part.data == whole[10:30]
    suffix = client.get(f"/data/small/segmentation/{key}", headers={"Range": "bytes=-8"})
    assert suffix.status_code == 206 and suffix.data == whole[-8:]
    beyond = client.get(f"/data/small/segmentation/{key}", headers={"Range": f"bytes={len(whole) + 5}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(whole)}"


def test_head_reports_length_and_ranges(client):
    key = chunk_key(client)
    whole = client.get(f"/data/small/segmentation/{key}", headers={"Accept-Encoding": "identity"}).data
    head = client.head(f"/data/small/segmentation/{key}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(whole))
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.data == b""


def test_missing_chunk_is_404(client):
    response = client.get("/data/small/segmentation/8_8_40/0-16_0-16_999-1000")
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/data/nope/segmentation/info").status_code == 404
    assert client.get("/data/small/nolayer/info").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/data/small/image/../segmentation/info",
        "/data/small/image/%2e%2e/%2e%2e/etc/passwd",
        "/data/small/image/..%2f..%2finfo",
        "/data/small/image//etc/passwd",
        "/data/small/image/info%00.gz",
        "/data/small/image/./info",
        "/data/small/image/a\\..\\info",
    ],
)
def test_keys_that_try_to_leave_the_layer_are_refused(live, path):
    status, headers, body = fetch(live.url + path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body
    assert "json" in headers.get("Content-Type", "")


def test_symlink_out_of_the_layer_is_not_followed(client, small_volumes, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("do not serve")
    link = small_volumes["root"] / "image" / "escape"
    link.symlink_to(secret)
    try:
        response = client.get("/data/small/image/escape")
        assert response.status_code == 400
        assert b"do not serve" not in response.data
    finally:
        link.unlink()


def test_remote_layer_is_proxied_through_cloudfiles(small_volumes, settings):
    """A layer at an http:// URL (a local static server standing in for a bucket) is proxied."""
    from bench.static_server import StaticServer
    from segmentation.datasets import Datasets
    from server import create_app

    with StaticServer(small_volumes["root"]) as static:
        app = create_app(settings)
        Datasets(settings.database_url).add(
            "remote", image=f"{static.url}/image", segmentation=f"{static.url}/segmentation"
        )
        with BackgroundServer(app) as server:
            served = CloudVolume(f"{server.url}/data/remote/segmentation", progress=False)[:, :, :]
            head = fetch(f"{server.url}/data/remote/segmentation/info", method="HEAD")
    assert np.array_equal(served[..., 0], small_volumes["labels_array"])
    assert head[0] == 200 and int(head[1]["Content-Length"]) > 0
