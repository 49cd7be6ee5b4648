"""What the API's requests and answers hold, as OpenAPI 3.0 schemas, by route (``endpoints`` names).

The route table says who may call a route and what bounds it; this says what its JSON body and
its answer look like, for the OpenAPI document (``/api/v1/openapi.json``) and the interactive page
(``/api``). Every route taking a JSON body has a request schema here (a test checks it), and the
answers of our own API and of the proofreading routes have response schemas, checked against
real answers by ``tests/test_api_docs.py``. CAVE-compatible routes answer what CAVE answers; where
no schema is given, the summary in the route table describes it.
"""

from __future__ import annotations

from segmentation.celltypes.materialize import MAX_REGEX_LENGTH

from .endpoints import MAX_IDS, MAX_MATRIX_LABELS, MAX_POINTS


def _object(properties: dict, required: tuple = (), extra: bool = False, description: str = "") -> dict:
    found = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        found["required"] = list(required)
    if description:
        found["description"] = description
    return found


def _array(items: dict, most: int | None = None, **more) -> dict:
    found = {"type": "array", "items": items, **more}
    if most is not None:
        found["maxItems"] = most
    return found


STRING = {"type": "string"}
NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
MOMENT = {"type": "string", "description": "ISO 8601 (UTC)"}
ID = {
    "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,20}$"}],
    "description": "a 64-bit supervoxel or root id (a string where JavaScript must keep it exact: ?int64_as_str=true)",
}
IDS = _array(ID, MAX_IDS)
POINT = _array(
    {"oneOf": [NUMBER, {"type": "string", "pattern": "^[0-9]{1,20}$"}]},
    minItems=4,
    description="[supervoxel or root id, x, y, z], the point in nm",
)
POINT["maxItems"] = 4
VOXEL = _array(INTEGER, 3, minItems=3, description="x, y, z in full-resolution voxels")
STATE = {
    "type": "object",
    "additionalProperties": True,
    "description": "a Neuroglancer state as the viewer writes it (layers, position, layout …); at most 10 MB",
}
FILTER = {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": True}}
_FILTER_NAMES = (  # CAVE's filters: {table: {column: value(s)}}
    "filter_equal_dict",
    "filter_in_dict",
    "filter_notin_dict",
    "filter_out_dict",
    "filter_greater_dict",
    "filter_less_dict",
    "filter_greater_equal_dict",
    "filter_less_equal_dict",
    "filter_spatial_dict",
)

REQUESTS: dict[str, dict] = {
    # proofreading (PyChunkedGraph's v1 API)
    "cg_roots": _object({"node_ids": IDS}, ("node_ids",)),
    "cg_leaves_many": _object({"node_ids": IDS}, ("node_ids",)),
    "cg_is_latest_roots": _object({"node_ids": IDS}, ("node_ids",)),
    "cg_root_timestamps": _object({"node_ids": IDS}, ("node_ids",)),
    "cg_lineage": _object({"root_ids": IDS}, ("root_ids",)),
    # GET with a JSON body, as caveclient sends them (not in the OpenAPI document: 3.0 has no GET bodies)
    "cg_tabular_change_log": _object({"root_ids": IDS}, ("root_ids",)),
    "cg_past_id_mapping": _object({"root_ids": IDS}, ("root_ids",)),
    "cg_valid_nodes": _object({"node_ids": IDS}, ("node_ids",)),
    "cg_merge": _array(POINT, 2, minItems=2, description="the two points to join: [[id, x, y, z], [id, x, y, z]] (nm)"),
    "cg_split": _object(
        {"sources": _array(POINT, MAX_POINTS), "sinks": _array(POINT, MAX_POINTS)}, ("sources", "sinks")
    ),
    "cg_split_preview": _object(
        {"sources": _array(POINT, MAX_POINTS), "sinks": _array(POINT, MAX_POINTS)}, ("sources", "sinks")
    ),
    "cg_undo": _object({"operation_id": INTEGER}, ("operation_id",)),
    "cg_redo": _object({"operation_id": INTEGER}, ("operation_id",)),
    # share links
    "post_state": STATE,
    "nglstate_post": STATE,
    "post_link_at": _object(
        {
            "dataset": STRING,
            "voxel": VOXEL,
            "t": {"oneOf": [STRING, NUMBER], "description": "a past moment: ISO 8601 or Unix seconds"},
            "zoom": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        },
        ("dataset", "voxel"),
    ),
    "rename_my_link": _object({"title": {"type": "string", "maxLength": 300}}, ("title",)),
    "create_alias": _object(
        {
            "name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"},
            "state": {"type": "string", "description": "the short id of a stored state"},
        },
        ("name", "state"),
    ),
    "repoint_alias": _object(
        {"state": {"type": "string", "description": "the short id of a stored state"}}, ("state",)
    ),
    # cell types
    "add_tag": _object(
        {
            "position": VOXEL,
            "term": {"type": "string", "description": "a cell type of the dataset's vocabulary"},
            "note": STRING,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        ("position", "term"),
    ),
    "mat_query": _object(
        {
            **{name: FILTER for name in _FILTER_NAMES},
            "filter_regex_dict": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": MAX_REGEX_LENGTH},
                },
                "description": "RE2 patterns (linear time)",
            },
            "select_columns": {"oneOf": [_array(STRING), {"type": "object", "additionalProperties": True}]},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
            "desired_resolution": _array(NUMBER, 3, minItems=3),
        },
        extra=True,
        description="CAVE's materialization query body (unknown keys are ignored, as CAVE does)",
    ),
    # access
    "start_session": _object({"token": {"type": "string", "description": "an axonlink token (axl_…)"}}, ("token",)),
    "update_dataset": _object(
        {"description": STRING, "license": STRING, "citation": STRING, "public": BOOLEAN},
        description="only the fields to change",
    ),
    "set_grant": _object({"role": {"type": "string", "enum": ["viewer", "proofreader", "admin", "none"]}}, ("role",)),
}
REQUESTS["mat_live_query"] = REQUESTS["mat_query"]

# ---- answers ---------------------------------------------------------------------------------
LAYER = _object(
    {
        "name": STRING,
        "type": {"type": "string", "enum": ["image", "segmentation"]},
        "source": {"type": "string", "description": "precomputed://<this server>/data/<dataset>/<layer>"},
        "supervoxels": {"type": "boolean", "description": "the layer the graph is built on (served as root ids)"},
    },
    ("name", "type", "source"),
    extra=True,
)
DATASET = _object(
    {
        "name": STRING,
        "description": STRING,
        "license": STRING,
        "citation": STRING,
        "voxel_resolution": _array(NUMBER, 3),
        "volume_size": _array(INTEGER, 3),
        "voxel_offset": _array(INTEGER, 3),
        "layers": _array(LAYER),
        "public": BOOLEAN,
        "created": MOMENT,
        "vocabulary": STRING,
        "graph_layer": {"type": "string", "description": "present when the dataset has a graph"},
    },
    ("name", "layers"),
    extra=True,
)
OPERATION = _object(
    {"operation_id": INTEGER, "new_root_ids": IDS, "old_root_ids": IDS},
    ("operation_id", "new_root_ids", "old_root_ids"),
)
LINK = _object(
    {
        "id": INTEGER,
        "short_id": STRING,
        "short_url": STRING,
        "url": STRING,
        "viewer_url": STRING,
        "as_now_url": STRING,
        "created": {"oneOf": [BOOLEAN, STRING]},
        "title": STRING,
        "owner": STRING,
        "datasets": _array(STRING),
    },
    ("id", "short_id", "short_url"),
    extra=True,
)
MY_LINK = _object(
    {
        "id": INTEGER,
        "short_id": STRING,
        "title": STRING,
        "added": MOMENT,
        "stored": MOMENT,
        "views": INTEGER,
        "datasets": _array(STRING),
        "short_url": STRING,
    },
    ("id", "short_id", "title", "added", "views", "datasets", "short_url"),
)
TARGET = _object(
    {"seq": INTEGER, "short_id": STRING, "short_url": STRING, "pointed_at": MOMENT, "by": STRING},
    ("seq", "short_id", "pointed_at", "by"),
)
ALIAS = _object(
    {
        "name": STRING,
        "owner": STRING,
        "created": MOMENT,
        "url": STRING,
        "target": TARGET,
        "history": _array(TARGET),
        "pointings": INTEGER,
        "hidden": INTEGER,
    },
    ("name", "owner", "target", "history", "pointings", "hidden"),
)
AUDIT_ENTRY = _object(
    {
        "id": INTEGER,
        "at": MOMENT,
        "user": STRING,
        "action": STRING,
        "dataset": {**STRING, "nullable": True},
        "target": {**STRING, "nullable": True},
        "detail": {"nullable": True},
        "origin": {**STRING, "nullable": True},
    },
    ("id", "at", "user", "action"),
)

TAG = _object(
    {
        "id": INTEGER,
        "dataset": STRING,
        "term": STRING,
        "note": STRING,
        "confidence": {**NUMBER, "nullable": True},
        "user": STRING,
        "position": VOXEL,
        "supervoxel_id": STRING,
        "root_id": {"type": "string", "description": "the neuron it is on, at the moment asked"},
        "created": MOMENT,
        "retracted": {**MOMENT, "nullable": True},
        "retracted_by": {**STRING, "nullable": True},
    },
    ("id", "dataset", "term", "user", "position", "supervoxel_id", "created"),
)
NEURON_HIT = _object(
    {
        "dataset": STRING,
        "root_id": STRING,
        "terms": _array(STRING),
        "conflict": BOOLEAN,
        "position": VOXEL,
        "tag_ids": _array(INTEGER),
        "link": {"type": "string", "description": "the viewer centred on it"},
        "supervoxels": INTEGER,
        "tags": _array(_object({"id": INTEGER, "term": STRING, "user": STRING, "created": MOMENT})),
    },
    ("dataset", "root_id", "terms", "link"),
)
STATE_INFO = _object(
    {
        "id": INTEGER,
        "short_id": {**STRING, "nullable": True},
        "short_url": {**STRING, "nullable": True},
        "title": STRING,
        "description": STRING,
        "owner": {**STRING, "nullable": True, "description": "shown to whoever came by the short id"},
        "dataset": {**STRING, "nullable": True},
        "created": MOMENT,
        "views": INTEGER,
        "raw_bytes": INTEGER,
        "stored_bytes": INTEGER,
        "datasets": _array(STRING),
        "anchors": _array(_object({}, extra=True)),
        "changed_since": {"type": "boolean", "description": "whether an edit since changed a neuron it shows"},
    },
    ("id", "created", "views", "datasets", "anchors"),
)

RESPONSES: dict[str, dict] = {
    "whoami": _object(
        {
            "user": STRING,
            "authenticated": BOOLEAN,
            "site_admin": BOOLEAN,
            "roles": {"type": "object", "additionalProperties": STRING, "description": "dataset → role"},
        },
        ("user", "authenticated", "site_admin", "roles"),
    ),
    "start_session": _object({"user": STRING}, ("user",)),
    "end_session": _object({"user": {**STRING, "nullable": True}}, ("user",)),
    "add_tag": TAG,
    "retract_tag": TAG,
    "list_tags": _object(
        {"dataset": STRING, "at": {**MOMENT, "nullable": True}, "tags": _array(TAG)}, ("dataset", "tags")
    ),
    "import_tags": _object(
        {"added": INTEGER, "rejected": _array(_object({"row": INTEGER, "reason": STRING}))}, ("added", "rejected")
    ),
    "search_neurons": _object(
        {
            "query": STRING,
            "at": {**MOMENT, "nullable": True},
            "total": INTEGER,
            "counts": {"type": "object", "additionalProperties": INTEGER, "description": "neurons matched per dataset"},
            "page": INTEGER,
            "per_page": INTEGER,
            "results": _array(NEURON_HIT),
        },
        ("query", "total", "counts", "page", "per_page", "results"),
    ),
    "get_vocabulary": _object(
        {"allow_free_terms": BOOLEAN, "terms": _array(_object({"name": STRING}, ("name",), extra=True))},
        ("allow_free_terms", "terms"),
    ),
    "state_info": STATE_INFO,
    "latest_roots": _object({"root_id": STRING, "latest_roots": _array(STRING)}, ("root_id", "latest_roots")),
    "info_datastacks": _array(STRING),
    "list_datasets": _object({"datasets": _array(DATASET)}, ("datasets",)),
    "get_dataset": DATASET,
    "update_dataset": DATASET,
    "cg_roots": _object({"root_ids": IDS}, ("root_ids",)),
    "cg_is_latest_roots": _object({"is_latest": _array(BOOLEAN)}, ("is_latest",)),
    "cg_root_timestamps": _object({"timestamp": _array(NUMBER)}, ("timestamp",)),
    "cg_merge": OPERATION,
    "cg_split": OPERATION,
    "cg_undo": OPERATION,
    "cg_redo": OPERATION,
    "cg_split_preview": _object(
        {"supervoxel_connected_components": _array(IDS), "illegal_split": BOOLEAN},
        ("supervoxel_connected_components", "illegal_split"),
    ),
    "post_state": LINK,
    "post_link_at": LINK,
    "my_links": _object({"links": _array(MY_LINK), "page": INTEGER, "total": INTEGER}, ("links", "page", "total")),
    "rename_my_link": _object({"renamed": BOOLEAN}, ("renamed",)),
    "forget_my_link": _object({"forgotten": BOOLEAN}, ("forgotten",)),
    "my_aliases": _object({"aliases": _array(ALIAS)}, ("aliases",)),
    "create_alias": ALIAS,
    "get_alias": ALIAS,
    "repoint_alias": ALIAS,
    "list_grants": _object(
        {"dataset": STRING, "grants": _array(_object({"user": STRING, "dataset": STRING, "role": STRING}))},
        ("dataset", "grants"),
    ),
    "set_grant": _object(
        {"dataset": STRING, "user": STRING, "role": {**STRING, "nullable": True}}, ("dataset", "user", "role")
    ),
    "audit_log": _object({"entries": _array(AUDIT_ENTRY)}, ("entries",)),
}
# ---- CAVE's shapes (caveclient reads them): PyChunkedGraph, info, state and materialization services
ID_MAP = {"type": "object", "additionalProperties": IDS, "description": "id (as a string key) → ids"}
VERSION_ROW = _object(
    {
        "datastack": STRING,
        "expires_on": STRING,
        "id": INTEGER,
        "is_merged": BOOLEAN,
        "parent_version": {**INTEGER, "nullable": True},
        "status": STRING,
        "time_stamp": STRING,
        "valid": BOOLEAN,
        "version": INTEGER,
    },
    ("datastack", "version", "time_stamp", "valid"),
)
TABLE_METADATA = _object(
    {"table_name": STRING, "schema": STRING, "schema_type": STRING, "voxel_resolution_x": NUMBER},
    ("table_name", "schema"),
    extra=True,
)
CAVE_RESPONSES: dict[str, dict] = {
    "cg_api_versions": _array(INTEGER),
    "cg_version": STRING,
    "cg_info": _object(
        {
            "data_dir": STRING,
            "data_type": STRING,
            "graph": _object({}, extra=True),
            "scales": _array(_object({}, extra=True)),
        },
        ("data_dir", "data_type", "graph", "scales"),
        extra=True,
        description="the graphene info Neuroglancer and CloudVolume read",
    ),
    "cg_segment_properties": _object(
        {"@type": {"type": "string", "enum": ["neuroglancer_segment_properties"]}, "inline": _object({}, extra=True)},
        ("@type", "inline"),
    ),
    "cg_root": _object({"root_id": ID}, ("root_id",)),
    "cg_leaves": _object({"leaf_ids": IDS}, ("leaf_ids",)),
    "cg_leaves_many": ID_MAP,
    "cg_operation_details": {
        "type": "object",
        "additionalProperties": _object(
            {"operation_type": STRING, "user": STRING, "timestamp": STRING, "roots": IDS, "old_roots": IDS},
            ("operation_type", "user", "timestamp"),
            extra=True,
        ),
        "description": "operation id (as a string key) → its details",
    },
    "cg_lineage": _object(
        {
            "directed": BOOLEAN,
            "multigraph": BOOLEAN,
            "graph": _object({}, extra=True),
            "nodes": _array(
                _object(
                    {"id": ID, "operation_id": {**INTEGER, "nullable": True}, "timestamp": NUMBER}, ("id", "timestamp")
                )
            ),
            "links": _array(_object({"source": ID, "target": ID}, ("source", "target"))),
        },
        ("nodes", "links"),
        description="networkx node-link data, as PyChunkedGraph answers",
    ),
    "cg_past_id_mapping": _object({"past_id_map": ID_MAP, "future_id_map": ID_MAP}, ("past_id_map", "future_id_map")),
    "cg_change_log": _object(
        {
            "n_mergers": INTEGER,
            "n_splits": INTEGER,
            "operations_ids": _array(INTEGER),
            "past_ids": IDS,
            "user_info": {"type": "object", "additionalProperties": _object({}, extra=True)},
        },
        ("n_mergers", "n_splits", "operations_ids", "past_ids", "user_info"),
        extra=True,
    ),
    "cg_tabular_change_log": {
        "type": "object",
        "additionalProperties": {"type": "string", "description": "a pandas DataFrame as JSON (orient=columns)"},
    },
    "cg_merge_log": _object(
        {"merge_edges": _array(_array(_array(ID))), "merge_edge_coords": _array(_array(_array(_array(NUMBER))))},
        ("merge_edges", "merge_edge_coords"),
    ),
    "cg_user_operations": _array(
        _object(
            {
                "operation_id": INTEGER,
                "operation_type": STRING,
                "user_id": STRING,
                "timestamp": NUMBER,
                "old_root_ids": IDS,
                "new_root_ids": IDS,
            },
            ("operation_id", "operation_type", "user_id", "timestamp"),
            extra=True,
        )
    ),
    "cg_valid_nodes": _object({"valid_roots": IDS}, ("valid_roots",)),
    "cg_lvl2_graph": _object({"edge_graph": _array(_array(ID, 2))}, ("edge_graph",)),
    "cg_delta_roots": _object({"old_roots": IDS, "new_roots": IDS}, ("old_roots", "new_roots")),
    "cg_oldest_timestamp": _object({"iso": MOMENT}, ("iso",)),
    "info_version": STRING,
    "info_datastack": _object(
        {
            "datastack": STRING,
            "aligned_volume": _object({"name": STRING, "image_source": {**STRING, "nullable": True}}, extra=True),
            "segmentation_source": {**STRING, "nullable": True},
            "local_server": STRING,
            "viewer_site": STRING,
            "synapse_table": {**STRING, "nullable": True},
            "soma_table": {**STRING, "nullable": True},
        },
        ("datastack", "aligned_volume", "segmentation_source", "local_server"),
        extra=True,
    ),
    "get_state": STATE,
    "get_state_as": STATE,
    "nglstate_get": STATE,
    "nglstate_raw": STATE,
    "dataset_state": STATE,
    "nglstate_version": STRING,
    "nglstate_post": {"type": "string", "description": "the stored state's URL (…/nglstate/api/v1/<id>)"},
    "mat_api_versions": _array(INTEGER),
    "mat_version": STRING,
    "mat_versions": _array(INTEGER),
    "mat_version_metadata": VERSION_ROW,
    "mat_versions_metadata": _array(VERSION_ROW),
    "mat_tables": _array(STRING),
    "mat_table_metadata": TABLE_METADATA,
    "mat_tables_metadata": _array(TABLE_METADATA),
    "mat_table_count": INTEGER,
}
RESPONSES.update(CAVE_RESPONSES)
RESPONSES.update(
    {
        "openapi": _object(
            {"openapi": STRING, "info": _object({}, extra=True), "paths": _object({}, extra=True)},
            ("openapi", "info", "paths"),
            extra=True,
        ),
        "mesh_manifest": _object({"fragments": _array(STRING)}, ("fragments",)),
        "viewer_state": _object({"g": STRING}, ("g",), description="the state generation the client sent, echoed"),
    }
)
# connectivity
_SIDE = _object(
    {
        "cell_types": _array({"type": "string", "maxLength": 256}, MAX_MATRIX_LABELS, minItems=1),
        "root_ids": _array(ID, MAX_MATRIX_LABELS, minItems=1),
    },
    description="one of: cell types (each with the types below it) or neurons (root ids)",
)
REQUESTS["remove_synapses"] = _object({"ids": _array({"type": "integer", "minimum": 1}, MAX_IDS)}, ("ids",))
REQUESTS["connectivity_matrix"] = _object(
    {"pre": _SIDE, "post": _SIDE, "t": {"oneOf": [STRING, NUMBER], "description": "a moment (default now)"}},
    ("pre", "post"),
)
_XYZ = _array({"type": "integer"}, 3)
_NULLABLE_XYZ = _array({"type": "number", "nullable": True}, 3)
SYNAPSE = _object(
    {
        "id": INTEGER,
        "created": NUMBER,
        "valid": BOOLEAN,
        "pre_pt_position": _XYZ,
        "pre_pt_supervoxel_id": STRING,
        "pre_pt_root_id": STRING,
        "post_pt_position": _XYZ,
        "post_pt_supervoxel_id": STRING,
        "post_pt_root_id": STRING,
        "ctr_pt_position": _NULLABLE_XYZ,
        "size": {**NUMBER, "nullable": True},
    },
    ("id", "pre_pt_root_id", "post_pt_root_id"),
)
PARTNER_SIDE = _object(
    {
        "synapses": INTEGER,
        "partner_count": INTEGER,
        "partners": _array(
            _object(
                {
                    "root_id": STRING,
                    "synapses": INTEGER,
                    "mean_size": {**NUMBER, "nullable": True},
                    "cell_types": _array(STRING),
                },
                ("root_id", "synapses", "cell_types"),
            )
        ),
    },
    ("synapses", "partner_count", "partners"),
)
RESPONSES.update(
    {
        "import_synapses": _object(
            {
                "added": INTEGER,
                "ids": {**_array(INTEGER, 2), "nullable": True, "description": "the first and last id added"},
                "rejected": _array(_object({"row": INTEGER, "reason": STRING})),
                "rejected_count": INTEGER,
                "change": {**INTEGER, "nullable": True},
            },
            ("added", "rejected", "rejected_count"),
        ),
        "remove_synapses": _object({"removed": INTEGER}, ("removed",)),
        "list_synapses": _object(
            {"dataset": STRING, "root_id": STRING, "at": {**MOMENT, "nullable": True}, "synapses": _array(SYNAPSE)},
            ("dataset", "root_id", "synapses"),
        ),
        "neuron_partners": _object(
            {
                "dataset": STRING,
                "root_id": STRING,
                "at": {**MOMENT, "nullable": True},
                "inputs": PARTNER_SIDE,
                "outputs": PARTNER_SIDE,
            },
            ("dataset", "root_id", "inputs", "outputs"),
        ),
        "connectivity_search": _object(
            {
                "query": STRING,
                "direction": {"type": "string", "enum": ["inputs", "outputs"]},
                "cell_type": STRING,
                "at": {**MOMENT, "nullable": True},
                "datasets": _array(
                    _object(
                        {
                            "dataset": STRING,
                            "neurons": INTEGER,
                            "synapses": INTEGER,
                            "groups": _array(_object({"cell_type": STRING, "neurons": INTEGER, "synapses": INTEGER})),
                        }
                    )
                ),
            },
            ("query", "direction", "cell_type", "datasets"),
        ),
        "connectivity_matrix": _object(
            {
                "dataset": STRING,
                "at": {**MOMENT, "nullable": True},
                "pre": _array(STRING),
                "post": _array(STRING),
                "neurons": _object({"pre": _array(INTEGER), "post": _array(INTEGER)}),
                "counts": _array(_array(INTEGER)),
                "mean_size": _array(_array({**NUMBER, "nullable": True})),
            },
            ("pre", "post", "counts", "mean_size"),
        ),
    }
)
NO_CONTENT = ("favicon", "viewer_events", "viewer_action")  # 204
ALWAYS_REFUSED = ("viewer_credentials",)  # 403: axonlink's sources need no credentials from the viewer

# what routes answer that is not JSON (the OpenAPI document names the media type)
MEDIA: dict[str, str] = {
    "layer_file": "application/octet-stream",
    "cg_roots_binary": "application/octet-stream",
    "client_file": "application/octet-stream",
    "api_asset": "text/javascript",
    "viewer_config": "text/javascript",
    "metrics": "text/plain",
    "export_tags": "text/csv",
    "export_synapses": "text/csv",
    "synapse_annotations": "application/octet-stream",
    "mat_query": "data.arrow",
    "mat_live_query": "data.arrow",
    **{
        name: "text/html"
        for name in (
            "datasets_page",
            "viewer_root",
            "viewer_page",
            "api_page",
            "login_page",
            "search_page",
            "neuron_page",
            "dataset_page",
            "audit_page",
            "my_links_page",
            "changes_index",
            "changes_page",
        )
    },
}
REDIRECTS = ("open_short_link", "open_voxel_link", "open_alias")  # 302 to the viewer

ERROR = _object(
    {"error": STRING, "message": STRING, "request_id": STRING},
    ("error", "message"),
    extra=True,
    description="every refusal and failure: the reason phrase, what went wrong, the request's log line id",
)
