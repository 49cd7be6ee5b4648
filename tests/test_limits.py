"""What bounds one client: caps per request (413), rate limits per client (429), time budgets (503).

None of these may be sized by what a client sends: every cap is declared in the route table,
shown in the OpenAPI document and enforced with a clear message.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import CG_SV as SV
from tests.helpers import SQLITE_ONLY, call, proofreader_token

CG = "/segmentation/api/v1/table/cg"

pytestmark = SQLITE_ONLY  # HTTP rules, the same on every database


def app_of(server):
    return server._server.app


def set_limits(server, **limits):
    from server.rate_limits import DEFAULT_LIMITS

    app_of(server).config["AXONLINK_RATE_LIMITS"] = {**DEFAULT_LIMITS, **limits}


@pytest.mark.parametrize(
    "path, body, cap",
    [
        (f"{CG}/roots", {"node_ids": [SV[0]] * 10_001}, "10,000 node_ids"),
        (f"{CG}/is_latest_roots", {"node_ids": [1] * 10_001}, "10,000 node_ids"),
        (f"{CG}/root_timestamps", {"node_ids": [1] * 10_001}, "10,000 node_ids"),
        (f"{CG}/node/leaves_many", {"node_ids": [1] * 501}, "500 node_ids"),
        (f"{CG}/lineage_graph_multiple", {"root_ids": [1] * 101}, "100 root_ids"),
        (f"{CG}/split", {"sources": [[SV[0], 0, 0, 0]] * 101, "sinks": [[SV[1], 0, 0, 0]]}, "100 sources"),
        (f"{CG}/graph/split_preview", {"sources": [[SV[0], 0, 0, 0]], "sinks": [[SV[1], 0, 0, 0]] * 101}, "100 sinks"),
    ],
)
def test_more_ids_or_points_than_a_route_takes_is_a_413(cg_server, path, body, cap):
    status, answer = call(cg_server.url + path, json.dumps(body).encode(), token=cg_server.token)
    assert status == 413 and cap in json.loads(answer)["message"], answer[:300]


def test_caps_for_get_routes_and_binary_bodies(cg_server):
    from urllib.parse import quote

    ids = quote(json.dumps(list(range(1, 10_002)), separators=(",", ":")))
    answer = app_of(cg_server).test_client().get(f"{CG}/operation_details?operation_ids={ids}")  # no URL limit
    assert answer.status_code == 413 and "10,000 operation_ids" in answer.get_json()["message"]
    status, answer = call(f"{cg_server.url}{CG}/roots_binary", b"\x01" * 8 * 10_001, token=cg_server.token)
    assert status == 413
    status, answer = call(
        f"{cg_server.url}{CG}/past_id_mapping",
        json.dumps({"root_ids": [1] * 101}).encode(),
        method="GET",
        token=cg_server.token,
    )
    assert status == 413


def test_caps_are_in_the_openapi_document(cg_server):
    document = json.loads(call(cg_server.url + "/api/v1/openapi.json")[1])
    roots = document["paths"]["/segmentation/api/v1/table/{table}/roots"]["post"]
    assert roots["x-axonlink-caps"] == {"node_ids": 10_000} and "413" in roots["responses"]
    assert "at most 10,000 node_ids" in roots["description"]
    merge = document["paths"]["/segmentation/api/v1/table/{table}/merge"]["post"]
    assert merge["x-axonlink-cost"] == "edit" and "429" in merge["responses"] and "503" in merge["responses"]
    binary = document["paths"]["/segmentation/api/v1/table/{table}/roots_binary"]["post"]
    assert "application/octet-stream" in binary["requestBody"]["content"]


def test_rate_limits_count_per_client_and_share_a_cost(cg_server):
    set_limits(cg_server, expensive="5/minute")
    other = proofreader_token(cg_server.database_url, "cg", user="other")
    lineage = json.dumps({"root_ids": [1]}).encode()
    statuses = [
        call(f"{cg_server.url}{CG}/lineage_graph_multiple", lineage, token=cg_server.token)[0] for _ in range(3)
    ]
    statuses += [call(f"{cg_server.url}/api/v1/search?q=astrocyte", token=cg_server.token)[0] for _ in range(2)]
    assert 429 not in statuses
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{cg_server.url}/api/v1/search?q=astrocyte", headers={"Authorization": f"Bearer {cg_server.token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 429 and int(refused.value.headers["Retry-After"]) > 0
    assert "too many expensive requests" in json.loads(refused.value.read())["message"]
    # another token is another client; cheap reads are not limited
    assert call(f"{cg_server.url}/api/v1/search?q=astrocyte", token=other)[0] == 200
    assert call(f"{cg_server.url}{CG}/node/{SV[0]}/root", token=cg_server.token)[0] == 200


def test_anonymous_clients_are_counted_by_address(cg_server):
    set_limits(cg_server, create="2/minute")
    state = json.dumps({"layers": [], "position": [1, 2, 3]}).encode()
    assert [call(cg_server.url + "/api/v1/states", state)[0] for _ in range(3)][-1] == 429


def test_redis_shares_the_count_between_servers(settings, small_volumes):
    """With AXONLINK_RATE_LIMIT_STORAGE=redis://…, two server processes (here: two apps) share one count."""
    import dataclasses
    import uuid

    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis does not answer at 127.0.0.1:6379")
    from server import create_app

    shared = dataclasses.replace(settings, rate_limits="create=3/minute", rate_limit_storage="redis://127.0.0.1:6379")
    first, second = create_app(shared), create_app(shared, upgrade_db=False)
    state = json.dumps({"layers": [], "position": [1, 2, 3], "title": uuid.uuid4().hex}).encode()
    address = {"REMOTE_ADDR": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}  # unseen by earlier runs
    statuses = []
    for app in (first, second, first, second):
        statuses.append(app.test_client().post("/api/v1/states", data=state, environ_base=address).status_code)
    assert statuses[:3] != [429] * 3 and statuses[3] == 429, statuses


def test_a_request_over_its_time_budget_is_a_503_and_the_server_lives_on(cg_server, monkeypatch):
    import dataclasses
    import time

    from segmentation.graph.graph import Graph

    merged = call(
        f"{cg_server.url}{CG}/merge", json.dumps([[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]]).encode(), token=cg_server.token
    )
    lineage = json.dumps({"root_ids": json.loads(merged[1])["new_root_ids"]}).encode()
    walk = Graph._walk

    def crawling_walk(self, start, next_nodes):  # each step of the history walk takes a while
        for step in walk(self, start, next_nodes):
            time.sleep(0.3)
            yield step

    monkeypatch.setattr(Graph, "_walk", crawling_walk)
    app = app_of(cg_server)
    monkeypatch.setitem(
        app.config,
        "AXONLINK_SETTINGS",
        dataclasses.replace(app.config["AXONLINK_SETTINGS"], request_budget_seconds=0.5),
    )
    status, body = call(f"{cg_server.url}{CG}/lineage_graph_multiple", lineage, token=cg_server.token)
    assert status == 503 and "needed more than 0.5 s" in json.loads(body)["message"]
    assert call(f"{cg_server.url}{CG}/node/{SV[0]}/root", token=cg_server.token)[0] == 200
    monkeypatch.setattr(Graph, "_walk", walk)
    status, body = call(f"{cg_server.url}{CG}/lineage_graph_multiple", lineage, token=cg_server.token)
    assert status == 200 and len(json.loads(body)["nodes"]) == 3  # two parents and the merged root


def test_one_catch_up_with_the_log_per_request_not_one_per_id(cg_server):
    import sqlalchemy as sa

    from segmentation.db import engine_for

    merged = call(
        f"{cg_server.url}{CG}/merge", json.dumps([[SV[0], 0, 0, 0], [SV[2], 0, 0, 0]]).encode(), token=cg_server.token
    )
    operation = json.loads(merged[1])["operation_id"]
    statements = []

    def count(conn, cursor, statement, *args):
        if "last_seq" in statement:
            statements.append(statement)

    engine = engine_for(cg_server.database_url)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        ids = json.dumps([operation] * 40)
        assert (
            call(f"{cg_server.url}{CG}/operation_details?operation_ids={ids.replace(' ', '')}", token=cg_server.token)[
                0
            ]
            == 200
        )
        roots = json.dumps({"root_ids": [1] * 30}).encode()
        call(f"{cg_server.url}{CG}/past_id_mapping", roots, method="GET", token=cg_server.token)
        call(f"{cg_server.url}{CG}/tabular_change_log_many", roots, method="GET", token=cg_server.token)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 3, statements  # one look at the log's head per request
