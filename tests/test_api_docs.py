"""The API described (server/api_schemas.py, /api/v1/openapi.json) is the API served: every JSON body
has a schema, the document is valid OpenAPI 3.0, and the requests a client sends and the answers it
gets — each one made here through HTTP — match the schemas; /api shows it all with Swagger UI."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft4Validator

from server import api_schemas, endpoints
from tests.helpers import CG_SV, cg_point_nm, cg_site


def as_json_schema(schema):
    """An OpenAPI 3.0 schema as JSON Schema (draft 4): ``nullable`` becomes "or null"."""
    if isinstance(schema, list):
        return [as_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: as_json_schema(value) for key, value in schema.items() if key != "nullable"}
    return {"anyOf": [found, {"type": "null"}]} if schema.get("nullable") else found


def check(schema, value, what):
    errors = sorted(Draft4Validator(as_json_schema(schema)).iter_errors(value), key=str)
    assert not errors, f"{what}: {[e.message for e in errors[:3]]}"


def test_every_route_says_what_it_answers():
    described = (
        set(api_schemas.RESPONSES)
        | set(api_schemas.MEDIA)
        | set(api_schemas.REDIRECTS)
        | set(api_schemas.NO_CONTENT)
        | set(api_schemas.ALWAYS_REFUSED)
    )
    assert set(endpoints.BY_ENDPOINT) - described == set()


def test_every_json_body_has_a_schema_and_every_schema_a_route():
    json_bodies = {name for name, spec in endpoints.BY_ENDPOINT.items() if spec.body == "json"}
    assert json_bodies - set(api_schemas.REQUESTS) == set()
    assert set(api_schemas.REQUESTS) - set(endpoints.BY_ENDPOINT) == set()
    assert set(api_schemas.RESPONSES) - set(endpoints.BY_ENDPOINT) == set()
    for schema in [*api_schemas.REQUESTS.values(), *api_schemas.RESPONSES.values()]:
        Draft4Validator.check_schema(as_json_schema(schema))


def test_the_document_is_valid_openapi_with_the_schemas_in_it(client):
    from openapi_spec_validator import validate

    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    merge = document["paths"]["/segmentation/api/v1/table/{table}/merge"]["post"]
    assert merge["requestBody"]["required"] is True
    assert merge["requestBody"]["content"]["application/json"]["schema"] == api_schemas.REQUESTS["cg_merge"]
    assert merge["responses"]["200"]["content"]["application/json"]["schema"] == api_schemas.RESPONSES["cg_merge"]
    assert document["paths"]["/api/v1/states"]["post"]["responses"]["4XX"]["content"]


@pytest.fixture
def site(settings, small_volumes, tmp_path):
    return cg_site(settings, small_volumes["image"], tmp_path)


def test_what_clients_send_and_get_matches_the_schemas(site):
    """One session of a client using the documented routes: each body sent and each answer got is
    checked against its schema; every response schema is met by a real answer."""
    http = site.test_client()
    checked = set()

    def call(name, method, path, body=None, who="proofreader", status=200, **params):
        if body is not None and name in api_schemas.REQUESTS:
            check(api_schemas.REQUESTS[name], body, f"{name} request")
        answer = http.open(
            path,
            method=method,
            json=body,
            query_string=params or None,
            headers={"Authorization": f"Bearer {site.tokens[who]}"},
        )
        assert answer.status_code == status, (name, answer.get_json())
        if status >= 400:
            check(api_schemas.ERROR, answer.get_json(), f"{name} refusal")
        elif name in api_schemas.RESPONSES:
            check(api_schemas.RESPONSES[name], answer.get_json(), f"{name} answer")
            checked.add(name)
        return answer.get_json()

    cg = "/segmentation/api/v1/table/cg"
    call("list_datasets", "GET", "/api/v1/datasets")
    call("get_dataset", "GET", "/api/v1/datasets/cg")
    call("update_dataset", "PATCH", "/api/v1/datasets/cg", {"license": "CC-BY-4.0"}, who="root")
    roots = call("cg_roots", "POST", f"{cg}/roots", {"node_ids": [str(s) for s in CG_SV]})["root_ids"]
    call("cg_roots", "POST", f"{cg}/roots", {"node_ids": CG_SV}, int64_as_str="true")
    call("cg_is_latest_roots", "POST", f"{cg}/is_latest_roots", {"node_ids": roots})
    call("cg_root_timestamps", "POST", f"{cg}/root_timestamps", {"node_ids": roots})
    points = [[str(CG_SV[1]), *cg_point_nm(2)], [str(CG_SV[2]), *cg_point_nm(3)]]
    merged = call("cg_merge", "POST", f"{cg}/merge", points)
    split = {"sources": [[str(CG_SV[0]), *cg_point_nm(1)]], "sinks": [[str(CG_SV[3]), *cg_point_nm(4)]]}
    call("cg_split_preview", "POST", f"{cg}/graph/split_preview", split)
    call("cg_split", "POST", f"{cg}/split", split)
    call("cg_undo", "POST", f"{cg}/undo", {"operation_id": merged["operation_id"]})
    call("cg_redo", "POST", f"{cg}/redo", {"operation_id": merged["operation_id"]})
    call("cg_redo", "POST", f"{cg}/redo", {"operation_id": merged["operation_id"]}, status=400)  # in effect already

    state = {"layers": [{"type": "image", "source": "precomputed://http://localhost/data/cg/image", "name": "em"}]}
    link = call("post_state", "POST", "/api/v1/states", state, status=201)
    call("post_link_at", "POST", "/api/v1/links/at", {"dataset": "cg", "voxel": [4, 16, 4]}, status=201)
    call("my_links", "GET", "/api/v1/me/links")
    call("rename_my_link", "PATCH", f"/api/v1/me/links/{link['short_id']}", {"title": "figure 3"})
    call("create_alias", "POST", "/api/v1/aliases", {"name": "figure-3", "state": link["short_id"]}, status=201)
    call("get_alias", "GET", "/api/v1/aliases/figure-3")
    call("repoint_alias", "PUT", "/api/v1/aliases/figure-3", {"state": link["short_id"]})
    call("my_aliases", "GET", "/api/v1/me/aliases")
    call("forget_my_link", "DELETE", f"/api/v1/me/links/{link['short_id']}")
    call("list_grants", "GET", "/api/v1/datasets/cg/grants", who="root")
    call("set_grant", "PUT", "/api/v1/datasets/cg/grants/tester", {"role": "none"}, who="root")
    call("audit_log", "GET", "/api/v1/audit", who="root")
    call("state_info", "GET", f"/api/v1/states/{link['short_id']}/info")
    call("whoami", "GET", "/api/v1/me")
    call("info_datastacks", "GET", "/info/api/v2/datastacks")
    call("latest_roots", "GET", f"/api/v1/datasets/cg/roots/{merged['old_root_ids'][0]}/latest")
    tag = call(
        "add_tag",
        "POST",
        "/api/v1/datasets/cg/tags",
        {"position": [2, 2, 2], "term": "astrocyte"},
        who="root",
        status=201,
    )
    call("list_tags", "GET", "/api/v1/datasets/cg/tags")
    call("search_neurons", "GET", "/api/v1/search", q="astrocyte")
    call("get_vocabulary", "GET", "/api/v1/vocabulary", dataset="cg")
    call("retract_tag", "DELETE", f"/api/v1/tags/{tag['id']}", who="root")
    imported = http.post(
        "/api/v1/datasets/cg/tags/import",
        data="pt_position_x,pt_position_y,pt_position_z,cell_type\n2,2,2,astrocyte\n1,1,99,astrocyte\n",
        content_type="text/csv",
        headers={"Authorization": f"Bearer {site.tokens['root']}"},
    )
    check(api_schemas.RESPONSES["import_tags"], imported.get_json(), "import_tags answer")
    checked.add("import_tags")
    synapses = http.post(
        "/api/v1/datasets/cg/synapses/import",
        data="pre_pt_position,post_pt_position,size\n[2 2 2],[12 2 2],5\n[20 2 2],[2 2 2],\n[99 2 2],[2 2 2],1\n",
        content_type="application/octet-stream",
        headers={"Authorization": f"Bearer {site.tokens['root']}"},
    )
    check(api_schemas.RESPONSES["import_synapses"], synapses.get_json(), "import_synapses answer")
    assert synapses.get_json()["added"] == 2
    checked.add("import_synapses")
    neuron = call("cg_roots", "POST", f"{cg}/roots", {"node_ids": [str(CG_SV[0])]})["root_ids"][0]
    call("list_synapses", "GET", "/api/v1/datasets/cg/synapses", root_id=neuron)
    call("neuron_partners", "GET", f"/api/v1/datasets/cg/neurons/{neuron}/partners")
    call(
        "connectivity_matrix",
        "POST",
        "/api/v1/datasets/cg/connectivity",
        {"pre": {"root_ids": [neuron]}, "post": {"cell_types": ["astrocyte"]}},
    )
    call("connectivity_search", "GET", "/api/v1/connectivity/search", q="outputs of astrocyte")
    call("remove_synapses", "POST", "/api/v1/datasets/cg/synapses/remove", {"ids": [2]}, who="root")
    call("start_session", "POST", "/api/v1/session", {"token": site.tokens["root"]})
    call("end_session", "DELETE", "/api/v1/session")
    # CAVE's shapes, as caveclient reads them
    root, old = merged["new_root_ids"][0], merged["old_root_ids"][0]
    stored = call("nglstate_post", "POST", "/nglstate/api/v1/post", state)
    state_id = stored.rsplit("/", 1)[1]
    for name, method, path, body in [
        ("cg_api_versions", "GET", "/segmentation/api/versions", None),
        ("cg_version", "GET", "/segmentation/api/version", None),
        ("cg_info", "GET", "/segmentation/table/cg/info", None),
        ("cg_segment_properties", "GET", "/segmentation/table/cg/segment_properties/info", None),
        ("cg_root", "GET", f"{cg}/node/{CG_SV[0]}/root", None),
        ("cg_leaves", "GET", f"{cg}/node/{CG_SV[0]}/leaves", None),
        ("cg_leaves_many", "POST", f"{cg}/node/leaves_many", {"node_ids": [str(CG_SV[0])]}),
        ("cg_operation_details", "GET", f"{cg}/operation_details?operation_ids=[{merged['operation_id']}]", None),
        ("cg_lineage", "POST", f"{cg}/lineage_graph_multiple", {"root_ids": [root]}),
        ("cg_past_id_mapping", "GET", f"{cg}/past_id_mapping", {"root_ids": [root]}),
        ("cg_change_log", "GET", f"{cg}/root/{root}/change_log", None),
        ("cg_tabular_change_log", "GET", f"{cg}/tabular_change_log_many", {"root_ids": [root]}),
        ("cg_merge_log", "GET", f"{cg}/root/{root}/merge_log", None),
        ("cg_user_operations", "GET", f"{cg}/user_operations?user_id=tester", None),
        ("cg_valid_nodes", "GET", f"{cg}/valid_nodes", {"node_ids": [root, old]}),
        ("cg_lvl2_graph", "GET", f"{cg}/node/{root}/lvl2_graph", None),
        ("cg_delta_roots", "GET", f"{cg}/delta_roots?timestamp_past=0", None),
        ("cg_oldest_timestamp", "GET", f"{cg}/oldest_timestamp", None),
        ("info_version", "GET", "/info/version", None),
        ("info_datastack", "GET", "/info/api/v2/datastack/full/cg", None),
        ("get_state", "GET", f"/api/v1/states/{link['short_id']}", None),
        ("get_state_as", "GET", f"/api/v1/states/{link['short_id']}/now.json", None),
        ("dataset_state", "GET", "/api/v1/datasets/cg/state", None),
        ("nglstate_version", "GET", "/nglstate/api/v1/version", None),
        ("nglstate_get", "GET", f"/nglstate/api/v1/{state_id}", None),
        ("nglstate_raw", "GET", f"/nglstate/api/v1/raw/{state_id}", None),
        ("mat_api_versions", "GET", "/materialize/api/versions", None),
        ("mat_version", "GET", "/materialize/version", None),
        ("mat_versions", "GET", "/materialize/api/v3/datastack/cg/versions", None),
        ("mat_version_metadata", "GET", "/materialize/api/v3/datastack/cg/version/1", None),
        ("mat_versions_metadata", "GET", "/materialize/api/v3/datastack/cg/metadata", None),
        ("mat_tables", "GET", "/materialize/api/v2/datastack/cg/version/1/tables", None),
        ("mat_table_metadata", "GET", "/materialize/api/v3/datastack/cg/version/1/table/cell_types/metadata", None),
        ("mat_tables_metadata", "GET", "/materialize/api/v3/datastack/cg/version/1/tables/metadata", None),
        ("mat_table_count", "GET", "/materialize/api/v2/datastack/cg/version/1/table/cell_types/count", None),
        ("openapi", "GET", "/api/v1/openapi.json", None),
        ("mesh_manifest", "GET", f"/meshing/api/v1/table/cg/manifest/{root}:0", None),
        ("viewer_state", "POST", "/state/axonlink", {"c": "client", "g": 3, "pg": 2, "s": {}}),
    ]:
        call(name, method, path, body, who="root")
    assert set(api_schemas.RESPONSES) - checked == set()  # no response schema goes unchecked


@pytest.mark.parametrize(
    "name, body",
    [
        ("cg_merge", [[1, 2, 3, 4]]),  # one point
        ("cg_merge", [[1, 2, 3], [4, 5, 6]]),  # points without coordinates
        ("cg_split", {"sources": [[1, 2, 3, 4]]}),
        ("cg_undo", {"operation_id": "seven"}),
        ("create_alias", {"name": "Figure 3", "state": "abc"}),
        ("set_grant", {"role": "owner"}),
        ("post_link_at", {"dataset": "cg", "voxel": [1, 2]}),
        ("add_tag", {"position": [1, 2, 3], "term": "x", "confidence": 2}),
    ],
)
def test_the_schemas_describe_malformed_bodies_as_malformed(site, name, body):
    from jsonschema import ValidationError

    with pytest.raises(ValidationError):
        Draft4Validator(as_json_schema(copy.deepcopy(api_schemas.REQUESTS[name]))).validate(body)


def test_the_api_page_serves_swagger_ui_from_here(client):
    page = client.get("/api", headers={"Accept": "text/html"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "/api/assets/swagger-ui-bundle.js" in html and "validatorUrl: null" in html
    script = client.get("/api/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript" and len(script.data) > 100_000
    assert client.get("/api/assets/swagger-ui.css").mimetype == "text/css"
    for other in ("index.html", "..%2Fswagger-ui.js", "swagger-ui.js.map"):
        assert client.get(f"/api/assets/{other}").status_code == 404


def test_a_person_reads_the_api_and_tries_a_route_in_the_browser(site, browser):
    from server.runner import BackgroundServer
    from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until

    with BackgroundServer(site) as server:
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{server.url}/datasets")
        page.click('header a:text("API")')
        page.wait_for_url("**/api")
        page.wait_for_selector(".opblock-tag")
        assert wait_until(page, lambda: page.locator(".opblock-tag").count() >= 10)
        page.screenshot(path=str(SCREENSHOTS / "page-api.png"), full_page=False)
        page.click('.opblock-tag:has-text("datasets")')
        page.click('.opblock-summary:has-text("/api/v1/datasets") >> nth=0')
        page.click("button.try-out__btn")
        page.click("button.execute")
        page.wait_for_selector(".live-responses-table tbody .response-col_status")
        assert "200" in page.inner_text(".live-responses-table tbody .response-col_status")
        assert '"cg"' in page.inner_text(".live-responses-table tbody .response-col_description")
        assert all(url.startswith(server.url) for url in requested), [
            u for u in requested if not u.startswith(server.url)
        ]
        assert not errors, errors
        page.close()
