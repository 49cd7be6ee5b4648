"""/metrics (server/metrics.py): what Prometheus scrapes counts every answer once, by route and never
by path, counts edits and cache lookups, is for operators only, and sums a real server's workers."""

from __future__ import annotations

import dataclasses
import secrets
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import endpoints, fast_path
from tests.helpers import CG_SV, SQLITE_ONLY, add_cg_dataset, call, cg_point_nm, cg_site

CG = "/segmentation/api/v1/table/cg"
IMAGE_CHUNK = "/data/cg/image/8_8_40/16-32_16-32_8-16"
LIVE_CHUNK = "/data/cg/segmentation/8_8_40/0-16_0-16_0-8"
SCRAPE_TOKEN = "scrape-" + "x" * 24


def samples(text: str) -> dict:
    """{(sample name, frozenset of label items): value} of a scrape (parsed as Prometheus parses it)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def requests_of(found: dict, route: str, method: str = "GET", status: int = 200) -> float:
    return value(found, "axonlink_http_requests_total", route=route, method=method, status=str(status))


@pytest.fixture
def site(settings, small_volumes, tmp_path):
    return cg_site(settings, small_volumes["image"], tmp_path)


def scrape(http) -> dict:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.data[:300]
    return samples(answer.get_data(as_text=True))


@SQLITE_ONLY
def test_every_answer_is_counted_once_under_its_route_with_edits_and_cache_lookups(site):
    http = site.test_client()
    editor = {"Authorization": f"Bearer {site.tokens['proofreader']}"}
    http.get("/api/v1/datasets")  # Flask accepts the Host: the fast path answers from now on
    before = scrape(http)

    for _ in range(3):
        assert http.get("/api/v1/datasets/cg").status_code == 200
    assert http.get("/data/no-such-dataset/image/info").status_code == 404
    # the same chunk from Flask's fast path in a thread, then from the raw head as the worker's poller reads it
    assert http.get(IMAGE_CHUNK).status_code == 200
    head = f"GET {IMAGE_CHUNK} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    quick = site.quick_answers(head, ("127.0.0.1", 5555), False)
    assert quick is not None and quick[0].startswith(b"HTTP/1.1 200")
    # a live chunk: made (missed in memory and in the shared files), then found in memory
    assert http.get(LIVE_CHUNK).status_code == 200 and http.get(LIVE_CHUNK).status_code == 200

    points = [[str(CG_SV[1]), *cg_point_nm(2)], [str(CG_SV[2]), *cg_point_nm(3)]]
    merged = http.post(f"{CG}/merge", json=points, headers=editor)
    assert merged.status_code == 200, merged.get_json()
    split = {"sources": [[str(CG_SV[0]), *cg_point_nm(1)]], "sinks": [[str(CG_SV[3]), *cg_point_nm(4)]]}
    assert http.post(f"{CG}/split", json=split, headers=editor).status_code == 200
    undone = http.post(f"{CG}/undo", json={"operation_id": merged.get_json()["operation_id"]}, headers=editor)
    assert undone.status_code == 200
    assert http.post(f"{CG}/merge", json=points).status_code == 401  # anonymous: refused before the view
    assert http.post(f"{CG}/redo", json={"operation_id": 99}, headers=editor).status_code == 400  # no such one
    after = scrape(http)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    def counted(route, method="GET", status=200):
        return requests_of(after, route, method, status) - requests_of(before, route, method, status)

    assert counted("get_dataset") == 3
    assert counted("layer_file", status=404) == 1
    assert counted("layer_file") == 4  # two image chunks (thread, poller), the live chunk twice
    assert counted("cg_merge", "POST") == 1 and counted("cg_merge", "POST", 401) == 1
    assert counted("cg_split", "POST") == 1 and counted("cg_undo", "POST") == 1
    assert delta("axonlink_http_request_duration_seconds_count", route="get_dataset") == 3
    assert delta("axonlink_http_request_duration_seconds_sum", route="get_dataset") > 0
    for kind in ("merge", "split", "undo"):
        assert delta("axonlink_edits_total", kind=kind) == 1, kind
    assert delta("axonlink_edits_total", kind="redo") == 0
    assert delta("axonlink_edits_refused_total", kind="merge", status="401") == 1
    assert delta("axonlink_edits_refused_total", kind="redo", status="400") == 1
    assert delta("axonlink_cache_lookups_total", cache="live_chunks", result="miss") >= 1
    assert delta("axonlink_cache_lookups_total", cache="live_chunks", result="hit") >= 1
    assert delta("axonlink_cache_lookups_total", cache="live_chunks_shared", result="miss") >= 1
    assert ("axonlink_cache_lookups_total", frozenset({"cache": "mesh_manifests", "result": "hit"}.items())) in after


@SQLITE_ONLY
def test_no_label_carries_what_a_client_chose(site):
    http = site.test_client()
    invented = secrets.token_hex(8)
    for path in (f"/data/{invented}/image/info", f"/data/cg/{invented}/8_8_40/0-16_0-16_0-8", f"/{invented}"):
        assert http.get(path).status_code == 404
    assert http.open("/api/v1/datasets", method=f"X{invented.upper()}").status_code == 405
    http.get(f"/api/v1/datasets?{invented}=1", headers={"X-Request-Id": invented, "User-Agent": invented})
    text = http.get("/metrics").get_data(as_text=True)
    assert invented not in text and invented.upper() not in text
    found = samples(text)
    assert requests_of(found, "unmatched", status=404) >= 1 and requests_of(found, "unmatched", "OTHER", 405) >= 1
    routes = {dict(labels)["route"] for name, labels in found if name == "axonlink_http_requests_total"}
    assert routes <= set(endpoints.BY_ENDPOINT) | {"unmatched"}


def test_the_fast_paths_routes_are_named_as_the_route_table_names_them():
    for rule, name in fast_path.ENDPOINTS.items():
        assert endpoints.BY_ENDPOINT[name].rule == rule


@SQLITE_ONLY
def test_only_operators_may_scrape(site):
    http = site.test_client()
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    far = {"REMOTE_ADDR": "192.0.2.7"}  # a client on another machine (TEST-NET-1: never routed)

    # no scrape token set: this machine, site admins; not other machines, not proxied requests, not users
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert answer.headers["Cache-Control"] == "no-store"
    assert http.get("/metrics", environ_base=far).status_code == 401
    assert http.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 401
    assert http.get("/metrics", environ_base=far, headers=bearer(site.tokens["root"])).status_code == 200
    refused = http.get("/metrics", environ_base=far, headers=bearer(site.tokens["proofreader"]))
    assert refused.status_code == 403 and refused.get_json()["error"] == "Forbidden"

    # with one: only it or a site admin's token, from anywhere; it opens nothing else
    settings = site.config["AXONLINK_SETTINGS"]
    site.config["AXONLINK_SETTINGS"] = dataclasses.replace(settings, metrics_token=SCRAPE_TOKEN)
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", environ_base=far, headers=bearer(SCRAPE_TOKEN)).status_code == 200
    assert http.get("/metrics", headers=bearer(site.tokens["root"])).status_code == 200
    assert http.get("/metrics", headers=bearer(SCRAPE_TOKEN + "x")).status_code == 401
    assert http.get("/api/v1/me", headers=bearer(SCRAPE_TOKEN)).status_code == 401


def test_a_short_scrape_token_is_refused(monkeypatch, tmp_path):
    from segmentation.config import Settings

    monkeypatch.setenv("AXONLINK_METRICS_TOKEN", "short")
    with pytest.raises(ValueError, match="AXONLINK_METRICS_TOKEN"):
        Settings.load(home=tmp_path)
    monkeypatch.setenv("AXONLINK_METRICS_TOKEN", SCRAPE_TOKEN)
    loaded = Settings.load(home=tmp_path)
    assert loaded.metrics_token == SCRAPE_TOKEN and SCRAPE_TOKEN not in repr(loaded)


def _per_worker(folder, name: str, **labels) -> list[float]:
    """A counter's value in each worker's own file of the server's metrics folder."""
    from prometheus_client.multiprocess import MultiProcessCollector

    found = []
    for path in sorted(folder.glob("counter_*.db")):
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        found.append(total)
    return found


@SQLITE_ONLY
def test_a_scrape_of_either_of_two_workers_shows_the_sum_of_both(settings, small_volumes, tmp_path):
    from segmentation import db
    from tests.front_server import axonlink_node

    db.upgrade(settings.database_url)
    add_cg_dataset(settings.database_url, small_volumes["image"], tmp_path)
    with axonlink_node(settings.home, settings.database_url, tmp_path, "--workers", "2") as node:
        (folder,) = (settings.home / "metrics").glob("server-*")  # made by the runner before the fork
        sent = 0
        deadline = time.monotonic() + 20
        while True:  # until both workers have answered some (the kernel hands connections to either)
            for _ in range(10):
                assert call(f"{node.url}/api/v1/datasets/cg")[0] == 200
                sent += 1
            counts = _per_worker(folder, "axonlink_http_requests_total", route="get_dataset")
            if sum(1 for n in counts if n) >= 2 or time.monotonic() > deadline:
                break
        assert sum(1 for n in counts if n) == 2, counts
        chunks = 20  # stored chunks: the workers' fast path, mostly answered in their pollers
        for _ in range(chunks):
            assert call(node.url + IMAGE_CHUNK)[0] == 200
        for _ in range(4):  # whichever worker answers, it shows both
            with urllib.request.urlopen(f"{node.url}/metrics") as answer:
                assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                found = samples(answer.read().decode())
            assert requests_of(found, "get_dataset") == sent
            assert requests_of(found, "layer_file") == chunks
            assert value(found, "axonlink_http_request_duration_seconds_count", route="get_dataset") == sent
            assert value(found, "axonlink_workers") == 2
    assert not folder.exists()  # removed with the server
