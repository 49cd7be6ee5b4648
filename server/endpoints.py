"""Every HTTP route axonlink serves, one table per area (read it like a map).

Blueprints register their views from these tables, the OpenAPI document is
generated from them, and a test checks that the app serves exactly these.

Each route also says who may call it (``access``), checked before the view runs
(:mod:`server.auth`) against the dataset named in its path:

- ``open``  anyone (no dataset involved);
- ``view``  the viewer role on the dataset (anyone, for a public dataset);
- ``edit``  the proofreader role; ``admin`` the admin role;
- ``own``   the view checks for itself (lists filtered to what the caller may see,
  states and tags whose dataset is found from the stored row);
- ``operator`` whoever runs the server: a site admin, or the scrape token
  ``AXONLINK_METRICS_TOKEN``; with no scrape token set, also a request made on this machine
  that no proxy forwarded (Prometheus beside the server needs no token).

Left out, ``access`` is ``view`` when the path names a dataset, else ``open``.

A route also declares what bounds a caller's request: ``caps`` (the most items of each
kind one request may send: ids, points, rows), enforced by :func:`server.request_input.capped`
with a 413, and ``cost`` — ``edit``, ``create`` or ``expensive`` — which puts it under a
per-client rate limit (:mod:`server.rate_limits`) and, for edits and expensive reads, a time
budget (:mod:`segmentation.budget`). The OpenAPI document shows both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from segmentation.celltypes.materialize import MAX_FILTER_VALUES, MAX_REGEX_LENGTH
from segmentation.celltypes.search import MAX_PER_PAGE
from state_links.codec import MAX_STATE_LAYERS, MAX_STATE_SEGMENTS

ACCESS_LEVELS = ("open", "view", "edit", "admin", "own", "operator")
# path parameters that name a dataset (``dataset_ref`` may carry ``@moment``)
DATASET_PARAMETERS = ("dataset_ref", "name", "table", "dataset", "datastack")
_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


BODY_KINDS = (None, "json", "csv", "binary", "ignored")
COSTS = (None, "edit", "create", "expensive")
MAX_IDS = 10_000  # ids per request on routes that answer per id
MAX_ROOTS_WALKED = 100  # roots per request on routes that walk each root's history
MAX_POINTS = 100  # points per side of a split
MAX_LEAVES_ROOTS = 500  # roots per leaves_many
STATE_CAPS = {"layers": MAX_STATE_LAYERS, "segments": MAX_STATE_SEGMENTS}  # per stored state (checked on parsing)


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    rule: str
    summary: str
    access: str = "open"
    # what a POST/PUT/PATCH body holds: "json" (the default), "csv", "binary", or "ignored" (read for
    # nothing that matters); a cookie-authenticated request must send it with that content type
    body: str | None = None
    personal: bool = False  # the answer depends on who asks (besides "own" routes): never in a shared cache
    caps: tuple[tuple[str, int], ...] = ()  # (what, most per request)
    cost: str | None = None  # "edit", "create" or "expensive": rate-limited per client (and time-budgeted)

    def cap(self, what: str) -> int | None:
        return dict(self.caps).get(what)

    @property
    def dataset_parameter(self) -> str | None:
        return next((p for p in _PARAMETER.findall(self.rule) if p in DATASET_PARAMETERS), None)


def route(
    methods: str,
    rule: str,
    summary: str,
    access: str | None = None,
    body: str | None = None,
    personal: bool = False,
    caps: dict[str, int] | None = None,
    cost: str | None = None,
) -> Route:
    spec = Route(tuple(methods.split(",")), rule, summary)
    access = access or ("view" if spec.dataset_parameter else "open")
    if access not in ACCESS_LEVELS:
        raise ValueError(f"unknown access level {access!r} for {rule}")
    if body not in BODY_KINDS:
        raise ValueError(f"unknown body kind {body!r} for {rule}")
    if body is None and set(spec.methods) & {"POST", "PUT", "PATCH"}:
        body = "json"
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r} for {rule}")
    if cost is None and access == "edit":
        cost = "edit"
    return Route(spec.methods, rule, summary, access, body, personal, tuple(sorted((caps or {}).items())), cost)


DATA = {
    "layer_file": route(
        "GET,HEAD",
        "/data/<dataset_ref>/<layer>/<path:key>",
        "A file of a precomputed layer: info, chunk, shard (Range requests), mesh manifest or fragment. "
        "dataset_ref is NAME for now, NAME@TIMESTAMP (ISO 8601 or Unix seconds) for a moment, or "
        "NAME@supervoxels for the segmentation with supervoxel ids (layer 1) instead of root ids.",
    ),
}

DATASETS = {
    "datasets_page": route(
        "GET", "/datasets", "A page listing datasets with citation, licence and viewer links.", access="own"
    ),
    "list_datasets": route("GET", "/api/v1/datasets", "All datasets with their layers and metadata.", access="own"),
    "get_dataset": route(
        "GET", "/api/v1/datasets/<name>", "One dataset: layers, resolution, licence, citation.", personal=True
    ),
    "dataset_state": route(
        "GET", "/api/v1/datasets/<name>/state", "The default Neuroglancer state that shows the dataset."
    ),
}

META = {
    "openapi": route("GET", "/api/v1/openapi.json", "This API as an OpenAPI 3 document."),
    "api_page": route(
        "GET", "/api", "This API as a page to read and try (Swagger UI, bundled: no CDN).", personal=True
    ),
    "api_asset": route("GET", "/api/assets/<asset>", "Swagger UI's script and style sheet, for /api."),
    "metrics": route(
        "GET",
        "/metrics",
        "Prometheus metrics (text format 0.0.4), summed over the server's worker processes: requests by "
        "route, method and status, latency by route, graph edits committed and refused, cache hits and "
        "misses. For a site admin's token, or the scrape token AXONLINK_METRICS_TOKEN (Authorization: "
        "Bearer; Prometheus's authorization.credentials_file); with no scrape token set, also for requests "
        "made on the server's own machine that no proxy forwarded.",
        access="operator",
        personal=True,
    ),
}

VIEWER = {
    "viewer_root": route("GET", "/", "The Neuroglancer viewer (a state may follow in the URL fragment, #!...)."),
    "viewer_page": route("GET", "/v/<token>/", "The viewer page where the client runs (it needs /v/<token>/)."),
    "viewer_config": route(
        "GET", "/viewer-config.js", "Script run before the client: default state, URL set-up.", personal=True
    ),
    "client_file": route("GET", "/static/neuroglancer/<path:filename>", "Files of the bundled Neuroglancer client."),
    "favicon": route("GET", "/favicon.ico", "No icon: 204, so that browsers and tools asking anyway get no 404."),
    "viewer_events": route(
        "GET", "/events/<token>", "The client's event stream: 204, no states are pushed (the bundled page never asks)."
    ),
    "viewer_state": route(
        "POST", "/state/<token>", "The client reports its state (accepted, not stored).", body="ignored"
    ),
    "viewer_action": route(
        "POST", "/action/<token>", "The client reports an action (accepted, ignored).", body="ignored"
    ),
    "viewer_credentials": route(
        "POST", "/credentials/<token>", "Credentials for data sources (none needed).", body="ignored"
    ),
}

# PyChunkedGraph's v1 API as caveclient calls it; the table is the dataset name.
_CG = "/segmentation/api/v1/table/<table>"
CHUNKEDGRAPH = {
    "cg_api_versions": route("GET", "/segmentation/api/versions", "Supported chunkedgraph API versions."),
    "cg_version": route("GET", "/segmentation/api/version", "Chunkedgraph server version (a JSON string)."),
    "cg_info": route(
        "GET",
        "/segmentation/table/<table>/info",
        "Segmentation info with graph and app fields: what a graphene:// source reads first.",
    ),
    "cg_segment_properties": route(
        "GET",
        "/segmentation/table/<table>/segment_properties/info",
        "The cell-type tags of now as segment properties (for a graphene:// source).",
    ),
    "cg_root": route("GET", f"{_CG}/node/<int:node_id>/root", "Root of a supervoxel (?timestamp=)."),
    "cg_roots": route("POST", f"{_CG}/roots", "Roots of {node_ids} (?timestamp=).", caps={"node_ids": MAX_IDS}),
    "cg_roots_binary": route(
        "POST",
        f"{_CG}/roots_binary",
        "Roots of little-endian uint64 supervoxels.",
        body="binary",
        caps={"node_ids": MAX_IDS},
    ),
    "cg_leaves": route("GET", f"{_CG}/node/<int:node_id>/leaves", "Supervoxels of a root."),
    "cg_leaves_many": route(
        "POST",
        f"{_CG}/node/leaves_many",
        "Supervoxels of several roots.",
        caps={"node_ids": MAX_LEAVES_ROOTS},
        cost="expensive",
    ),
    "cg_merge": route("POST", f"{_CG}/merge", "Merge two points [[id, x, y, z] (nm), ...].", access="edit"),
    "cg_split": route(
        "POST",
        f"{_CG}/split",
        "Split by minimum cut: {sources, sinks} of [id, x, y, z] (nm).",
        access="edit",
        caps={"sources": MAX_POINTS, "sinks": MAX_POINTS},
    ),
    "cg_split_preview": route(
        "POST",
        f"{_CG}/graph/split_preview",
        "The two sides of a split, not committed.",
        caps={"sources": MAX_POINTS, "sinks": MAX_POINTS},
        cost="expensive",
    ),
    "cg_undo": route("POST", f"{_CG}/undo", "Undo {operation_id} (as a new operation).", access="edit"),
    "cg_redo": route("POST", f"{_CG}/redo", "Redo an undone {operation_id} (as a new operation).", access="edit"),
    "cg_operation_details": route(
        "GET", f"{_CG}/operation_details", "Details of ?operation_ids=[...].", caps={"operation_ids": MAX_IDS}
    ),
    "cg_lineage": route(
        "POST",
        f"{_CG}/lineage_graph_multiple",
        "Lineage of {root_ids} (networkx node-link).",
        caps={"root_ids": MAX_ROOTS_WALKED},
        cost="expensive",
    ),
    "cg_past_id_mapping": route(
        "GET",
        f"{_CG}/past_id_mapping",
        "Past and future roots of a JSON body {root_ids}.",
        body="json",
        caps={"root_ids": MAX_ROOTS_WALKED},
        cost="expensive",
    ),
    "cg_is_latest_roots": route(
        "POST", f"{_CG}/is_latest_roots", "Whether each of {node_ids} is current.", caps={"node_ids": MAX_IDS}
    ),
    "cg_root_timestamps": route(
        "POST", f"{_CG}/root_timestamps", "Creation time of each of {node_ids}.", caps={"node_ids": MAX_IDS}
    ),
    "cg_change_log": route("GET", f"{_CG}/root/<int:root_id>/change_log", "Edits in a root's past.", cost="expensive"),
    "cg_tabular_change_log": route(
        "GET",
        f"{_CG}/tabular_change_log_many",
        "Per root of a JSON body {root_ids}, its edits as a table (DataFrame JSON).",
        body="json",
        caps={"root_ids": MAX_ROOTS_WALKED},
        cost="expensive",
    ),
    "cg_merge_log": route(
        "GET", f"{_CG}/root/<int:root_id>/merge_log", "Merges in a root's past with their points.", cost="expensive"
    ),
    "cg_user_operations": route(
        "GET",
        f"{_CG}/user_operations",
        "Operations of ?user_id= between ?start_time= and ?end_time= (epoch s).",
        cost="expensive",
    ),
    "cg_valid_nodes": route(
        "GET",
        f"{_CG}/valid_nodes",
        "Which of a JSON body {node_ids} existed between ?start_timestamp= and ?end_timestamp=.",
        body="json",
        caps={"node_ids": MAX_IDS},
    ),
    "cg_lvl2_graph": route(
        "GET",
        f"{_CG}/node/<int:root_id>/lvl2_graph",
        "Active edges of a root's finest pieces (here: supervoxels), ?bounds= honoured.",
        cost="expensive",
    ),
    "latest_roots": route(
        "GET",
        "/api/v1/datasets/<dataset>/roots/<int:root_id>/latest",
        "The current roots descended from a root (itself if current): what the viewer swaps a retired selection for.",
    ),
    "cg_delta_roots": route(
        "GET", f"{_CG}/delta_roots", "Roots retired and created between two moments.", cost="expensive"
    ),
    "cg_oldest_timestamp": route("GET", f"{_CG}/oldest_timestamp", "When the graph was ingested."),
}

# PyChunkedGraph's meshing service, as Neuroglancer's graphene mesh source calls it.
MESHING = {
    "mesh_manifest": route(
        "GET",
        "/meshing/api/v1/table/<table>/manifest/<node_spec>",
        "A root's mesh manifest ({root}:0): with built-in meshes (axonlink mesh) one Draco fragment per "
        "chunk it spans, read by byte range (~key:~chunk.frags:offset:size) or made after an edit; else its "
        "supervoxels' Draco fragments, by supervoxel id.",
    ),
}

# The part of CAVE's info service caveclient needs to start: one datastack per dataset.
INFO = {
    "info_version": route("GET", "/info/version", "Info service version (a JSON string)."),
    "info_datastacks": route("GET", "/info/api/v2/datastacks", "Datastack names (one per dataset).", access="own"),
    "info_datastack": route("GET", "/info/api/v2/datastack/full/<name>", "A datastack: sources and servers."),
}

# Share links: stored states (ours and CAVE's JSON state service), short and exact-voxel links.
STATES = {
    "post_state": route(
        "POST",
        "/api/v1/states",
        "Store a Neuroglancer state (the body); ?title=&description= optional. Same state, same ids.",
        access="own",
        cost="create",
        caps=STATE_CAPS,
    ),
    "get_state": route(
        "GET",
        "/api/v1/states/<ref>",
        "A stored state exactly as posted; ?as=was (pinned to its creation) or ?as=now (latest roots).",
        access="own",
    ),
    "get_state_as": route(
        "GET",
        "/api/v1/states/<ref>/<mode>.json",
        "The same as ?as=<mode>, in a form the viewer can load (#!<url>: no query string).",
        access="own",
    ),
    "state_info": route(
        "GET", "/api/v1/states/<ref>/info", "Title, owner, dataset, created, views, sizes, anchors.", access="own"
    ),
    "post_link_at": route(
        "POST",
        "/api/v1/links/at",
        "Store a link to a voxel: {dataset, voxel: [x, y, z], t?, zoom?} → short link.",
        access="own",
        cost="create",
    ),
    "open_short_link": route("GET", "/s/<ref>", "Open a stored state in the viewer (?as=was|now).", access="own"),
    "open_voxel_link": route(
        "GET",
        "/at/<dataset>/<coords>",
        "Open the viewer centred on voxel x,y,z with its neuron selected (?t=, ?zoom=).",
    ),
    "nglstate_version": route("GET", "/nglstate/api/v1/version", "CAVE JSON state service version."),
    "nglstate_post": route(
        "POST",
        "/nglstate/api/v1/post",
        "CAVE: store a state; answers its URL as a JSON string.",
        access="own",
        cost="create",
        caps=STATE_CAPS,
    ),
    "nglstate_get": route(
        "GET", "/nglstate/api/v1/<int:state_id>", "CAVE: a stored state by integer id.", access="own"
    ),
    "nglstate_raw": route("GET", "/nglstate/api/v1/raw/<int:state_id>", "CAVE: a stored state, raw.", access="own"),
}

# My links and named aliases: one's own list of links (renamed there, never in the state) and short
# names that can be re-pointed to newer states, every earlier target kept.
LINKS = {
    "my_links": route(
        "GET",
        "/api/v1/me/links",
        "The caller's links, newest first (?page=): every state they stored, with their title for it, views, "
        "datasets. Signed-in users only.",
        access="own",
        personal=True,
    ),
    "rename_my_link": route(
        "PATCH",
        "/api/v1/me/links/<ref>",
        'Rename a link in your own list: {"title": "..."} (the stored state keeps its own title).',
        access="own",
        personal=True,
        cost="create",
    ),
    "forget_my_link": route(
        "DELETE",
        "/api/v1/me/links/<ref>",
        "Take a link out of your own list (the state and every link to it keep working).",
        access="own",
        body="ignored",
        personal=True,
        cost="create",
    ),
    "my_aliases": route(
        "GET",
        "/api/v1/me/aliases",
        "The aliases the caller owns, with their current targets.",
        access="own",
        personal=True,
    ),
    "create_alias": route(
        "POST",
        "/api/v1/aliases",
        'Make an alias: {"name": "lower-case-name", "state": SHORT_ID} → /l/<name>. Signed-in users only.',
        access="own",
        personal=True,
        cost="create",
    ),
    "get_alias": route(
        "GET",
        "/api/v1/aliases/<alias>",
        "An alias: owner, current target, and the earlier targets the caller may view (newest first, 100).",
        access="own",
        personal=True,
        cost="expensive",
    ),
    "repoint_alias": route(
        "PUT",
        "/api/v1/aliases/<alias>",
        'Re-point an alias (its owner or a site admin): {"state": SHORT_ID}; earlier targets stay listed.',
        access="own",
        personal=True,
        cost="create",
    ),
    "open_alias": route(
        "GET", "/l/<alias>", "Open an alias's current target in the viewer (?as=was|now).", access="own", personal=True
    ),
}

# Cell types: tags bound to a voxel on a neuron, the vocabulary, search across datasets.
CELLTYPES = {
    "add_tag": route(
        "POST",
        "/api/v1/datasets/<dataset>/tags",
        "Tag the neuron at {position: [x, y, z] voxels} with {term} (+ note, confidence).",
        access="edit",
    ),
    "list_tags": route(
        "GET",
        "/api/v1/datasets/<dataset>/tags",
        "Tags in force (?t= a moment, ?root_id= one neuron, ?include_retracted=1), with roots.",
    ),
    "retract_tag": route(
        "DELETE", "/api/v1/tags/<int:tag_id>", "Retract a tag (kept in the history).", access="own", cost="edit"
    ),
    "import_tags": route(
        "POST",
        "/api/v1/datasets/<dataset>/tags/import",
        "Add tags from a CAVE-style CSV body; answers {added, rejected: [{row, reason}]}.",
        access="edit",
        body="csv",
    ),
    "export_tags": route("GET", "/api/v1/datasets/<dataset>/tags/export", "Tags in force as CSV (?t=)."),
    "search_neurons": route(
        "GET",
        "/api/v1/search",
        "Neurons by cell type across datasets: ?q= (type, dataset:, user:, note:, t:, AND/OR/NOT), ?page=, ?per_page=.",
        access="own",
        cost="expensive",
        caps={"per_page": MAX_PER_PAGE},
    ),
    "get_vocabulary": route(
        "GET", "/api/v1/vocabulary", "The cell-type vocabulary (?dataset= for its own terms).", access="own"
    ),
}

# Connectivity: synapse tables bound to supervoxels (they follow edits), partners, matrices, and a
# neuron's synapses as a Neuroglancer annotation layer.
MAX_SYNAPSE_IMPORT_BYTES = 64 * 1024 * 1024  # the server's body limit; larger tables: `axonlink synapses import`
MAX_IMPORT_ROWS = 2_000_000  # synapses per HTTP import (a Parquet footer may claim any number)
MAX_EXPORT_ROWS = 2_000_000  # synapses per HTTP export (the CLI exports any number)
MAX_PARTNERS_LISTED = 10_000  # partners per side in one answer
MAX_MATRIX_LABELS = 1_000  # cell types or neurons per side of a matrix
CONNECTIVITY = {
    "import_synapses": route(
        "POST",
        "/api/v1/datasets/<dataset>/synapses/import",
        "Add synapses from a CSV or Parquet body (CAVE's column names: pre_pt_position, post_pt_position, "
        "optional ctr_pt_position, size, id, pre/post_pt_supervoxel_id); answers {added, ids, rejected}.",
        access="admin",
        body="binary",
        caps={"body bytes": MAX_SYNAPSE_IMPORT_BYTES, "rows": MAX_IMPORT_ROWS},
        cost="expensive",
    ),
    "remove_synapses": route(
        "POST",
        "/api/v1/datasets/<dataset>/synapses/remove",
        "Take synapses {ids: [...]} out of force (kept for queries of earlier moments).",
        access="admin",
        caps={"ids": MAX_IDS},
        cost="edit",
    ),
    "list_synapses": route(
        "GET",
        "/api/v1/datasets/<dataset>/synapses",
        "Synapses of a neuron (?root_id=, ?side=pre|post|both) in force at ?t=, with roots then; "
        "?format=json|csv|parquet.",
        caps={"rows": MAX_EXPORT_ROWS},
        cost="expensive",
    ),
    "export_synapses": route(
        "GET",
        "/api/v1/datasets/<dataset>/synapses/export",
        "Every synapse in force at ?t= with its roots then, as ?format=csv|parquet (CAVE's columns, split positions).",
        caps={"rows": MAX_EXPORT_ROWS},
        cost="expensive",
    ),
    "neuron_partners": route(
        "GET",
        "/api/v1/datasets/<dataset>/neurons/<int:root_id>/partners",
        "Input and output partners of a neuron at ?t= (now by default): synapse counts, mean size, cell types; "
        "?limit= partners per side.",
        caps={"partners": MAX_PARTNERS_LISTED},
        cost="expensive",
    ),
    "connectivity_matrix": route(
        "POST",
        "/api/v1/datasets/<dataset>/connectivity",
        'Synapse counts and mean sizes between sets: {"pre": {"cell_types": [...]} or {"root_ids": [...]}, '
        '"post": …, "t": moment}; ?format=arrow: the non-zero cells as an Arrow stream.',
        caps={"labels per side": MAX_MATRIX_LABELS},
        cost="expensive",
    ),
    "connectivity_search": route(
        "GET",
        "/api/v1/connectivity/search",
        "Partners of every neuron of a cell type, grouped by their types: ?q=inputs to TYPE | outputs of TYPE "
        "(+ dataset:NAME, t:MOMENT), over the datasets the caller may see.",
        access="own",
        cost="expensive",
    ),
    "synapse_annotations": route(
        "GET,HEAD",
        "/annotations/<dataset_ref>/synapses/<path:key>",
        "A neuron's synapses as a Neuroglancer precomputed annotation source, live (info, by_id/<id>, "
        "rel_pre/<root>, rel_post/<root>, spatial0/0_0_0); dataset_ref may be NAME@moment.",
    ),
}

# CAVE's materialization engine (API v3) as caveclient calls it: one table, "cell_types", per
# datastack (= dataset); version v = the graph after its first v - 1 edits.
_MAT2 = "/materialize/api/v2/datastack/<datastack>"
_MAT3 = "/materialize/api/v3/datastack/<datastack>"
MATERIALIZE = {
    "mat_api_versions": route("GET", "/materialize/api/versions", "Supported materialization API versions."),
    "mat_version": route("GET", "/materialize/version", "Materialization server version (a JSON string)."),
    "mat_versions": route(
        "GET", f"{_MAT3}/versions", "Version numbers: the first and the newest (?expired=true: every one)."
    ),
    "mat_version_metadata": route(
        "GET", f"{_MAT3}/version/<int:version>", "A version: its time_stamp (the moment of its edit) and expires_on."
    ),
    "mat_versions_metadata": route("GET", f"{_MAT3}/metadata", "Metadata of the versions listed (?expired=)."),
    "mat_tables": route("GET", f"{_MAT2}/version/<int:version>/tables", 'Table names of a version: ["cell_types"].'),
    "mat_table_metadata": route(
        "GET",
        f"{_MAT3}/version/<int:version>/table/<table>/metadata",
        "A table's schema type, voxel resolution and description.",
    ),
    "mat_tables_metadata": route("GET", f"{_MAT3}/version/<int:version>/tables/metadata", "Metadata of every table."),
    "mat_table_count": route("GET", f"{_MAT2}/version/<int:version>/table/<table>/count", "Rows in a table."),
    "mat_query": route(
        "POST",
        f"{_MAT3}/version/<int:version>/table/<table>/query",
        "Rows of a version (roots of its moment) with filters, columns, offset, limit: Arrow IPC.",
        caps={"filter values": MAX_FILTER_VALUES, "regex characters": MAX_REGEX_LENGTH},
        cost="expensive",
    ),
    "mat_live_query": route(
        "POST",
        f"{_MAT3}/query",
        "Rows as of {timestamp} (tags and roots of that moment) with filters: Arrow IPC.",
        caps={"filter values": MAX_FILTER_VALUES, "regex characters": MAX_REGEX_LENGTH},
        cost="expensive",
    ),
}

# Who is signed in, signing in from the browser, grants and the audit log.
ACCESS = {
    "whoami": route(
        "GET", "/api/v1/me", "The caller: user name (or anonymous), site admin, role per dataset.", personal=True
    ),
    "login_page": route(
        "GET",
        "/login",
        "Sign in the browser: a page that takes a token from its #token=... fragment (never "
        "sent to the server in a URL) or a form, and sets an HttpOnly cookie.",
    ),
    "start_session": route(
        "POST",
        "/api/v1/session",
        "Body {token}: sets the viewer's cookie (HttpOnly, SameSite).",
        personal=True,
        cost="create",
    ),
    "end_session": route("DELETE", "/api/v1/session", "Sign out: clears the cookie.", personal=True),
    "update_dataset": route(
        "PATCH",
        "/api/v1/datasets/<name>",
        "Change {description, license, citation, public} of a dataset.",
        access="admin",
    ),
    "list_grants": route("GET", "/api/v1/datasets/<name>/grants", "Who has which role on a dataset.", access="admin"),
    "set_grant": route(
        "PUT",
        "/api/v1/datasets/<name>/grants/<user>",
        "Body {role: viewer|proofreader|admin|none}: give or take a user's role.",
        access="admin",
    ),
    "audit_log": route(
        "GET",
        "/api/v1/audit",
        "Audit entries, newest first (?dataset=, ?user=, ?action= (* wildcard), ?since=, "
        "?before_id=, ?limit=): every dataset for site admins, their datasets for dataset admins.",
        access="own",
        caps={"limit": 10_000},
    ),
}

# Pages for people (server-rendered HTML; every page's facts also have an API route above).
PAGES = {
    "search_page": route(
        "GET",
        "/search",
        "Search page: neurons by cell type across datasets (?q= as /api/v1/search, ?page=), with facet counts.",
        access="own",
        personal=True,
        cost="expensive",
    ),
    "neuron_page": route(
        "GET",
        "/datasets/<dataset>/neurons/<int:root_id>",
        "A neuron's page: status (current, or what it became), size, cell-type tags and their history, edits.",
        personal=True,
        cost="expensive",  # walks the neuron's past: under the time budget and the per-client limit
    ),
    "dataset_page": route(
        "GET",
        "/datasets/<dataset>",
        "A dataset's page: metadata, licence, citation (plain and BibTeX), counts (neurons, supervoxels, "
        "tagged neurons per type, edits per week), how to read it from Python, admin tools for its admins.",
        personal=True,
        cost="expensive",
    ),
    "audit_page": route(
        "GET",
        "/audit",
        "The audit log as a page, for admins (?dataset=, ?user=, ?action= (* wildcard), ?since=, ?before_id=): "
        "every dataset for site admins, their datasets for dataset admins.",
        access="own",
        personal=True,
        caps={"limit": 500},
    ),
    "my_links_page": route(
        "GET",
        "/me/links",
        "My links page: the caller's links (rename, forget) and aliases (make, re-point, history).",
        access="own",
        personal=True,
        cost="expensive",
    ),
    "changes_index": route(
        "GET",
        "/changes",
        "Which datasets were proofread lately: each dataset with a graph the caller may see, its edits in the "
        "last 7 days and by how many people, each a link to its review.",
        access="own",
        personal=True,
        cost="expensive",
    ),
    "changes_page": route(
        "GET",
        "/datasets/<dataset>/changes",
        "The review of proofreading in a window (?since=, ?until=: ISO 8601 or Unix seconds, ?user=): every "
        "operation with its roots before and after and a before/after viewer link, per user and per day, "
        "the neurons most edited.",
        personal=True,
        cost="expensive",
    ),
}

ALL = {
    "data": DATA,
    "datasets": DATASETS,
    "meta": META,
    "viewer": VIEWER,
    "chunkedgraph": CHUNKEDGRAPH,
    "meshing": MESHING,
    "info": INFO,
    "states": STATES,
    "links": LINKS,
    "celltypes": CELLTYPES,
    "connectivity": CONNECTIVITY,
    "materialize": MATERIALIZE,
    "access": ACCESS,
    "pages": PAGES,
}

BY_ENDPOINT = {name: spec for table in ALL.values() for name, spec in table.items()}


def register(blueprint, table: dict[str, Route], views: dict) -> None:
    """Attach ``views[name]`` to ``blueprint`` at ``table[name]``; a missing view is an error."""
    missing = set(table) ^ set(views)
    if missing:
        raise RuntimeError(f"routes and views differ for {blueprint.name}: {sorted(missing)}")
    for name, spec in table.items():
        blueprint.add_url_rule(spec.rule, endpoint=name, view_func=views[name], methods=list(spec.methods))
