"""Every HTTP route axonlink serves, one table per area (read it like a map).

Blueprints register their views from these tables, the OpenAPI document is
generated from them, and a test checks that the app serves exactly these.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    rule: str
    summary: str


def route(methods: str, rule: str, summary: str) -> Route:
    return Route(tuple(methods.split(",")), rule, summary)


DATA = {
    "layer_file": route(
        "GET,HEAD",
        "/data/<dataset_ref>/<layer>/<path:key>",
        "A file of a precomputed layer: info, chunk, shard (Range requests), mesh manifest or fragment. "
        "dataset_ref is NAME for now or NAME@TIMESTAMP (ISO 8601 or Unix seconds) for a moment.",
    ),
}

DATASETS = {
    "datasets_page": route("GET", "/datasets", "A page listing datasets with citation, licence and viewer links."),
    "list_datasets": route("GET", "/api/v1/datasets", "All datasets with their layers and metadata."),
    "get_dataset": route("GET", "/api/v1/datasets/<name>", "One dataset: layers, resolution, licence, citation."),
    "dataset_state": route(
        "GET", "/api/v1/datasets/<name>/state", "The default Neuroglancer state that shows the dataset."
    ),
}

META = {
    "openapi": route("GET", "/api/v1/openapi.json", "This API as an OpenAPI 3 document."),
}

VIEWER = {
    "viewer_root": route("GET", "/", "The Neuroglancer viewer (a state may follow in the URL fragment, #!...)."),
    "viewer_page": route("GET", "/v/<token>/", "The viewer page where the client runs (it needs /v/<token>/)."),
    "viewer_config": route("GET", "/viewer-config.js", "Script run before the client: default state, URL set-up."),
    "client_file": route("GET", "/static/neuroglancer/<path:filename>", "Files of the bundled Neuroglancer client."),
    "viewer_events": route("GET", "/events/<token>", "Server-sent events stream the client keeps open."),
    "viewer_state": route("POST", "/state/<token>", "The client reports its state (accepted, not stored)."),
    "viewer_action": route("POST", "/action/<token>", "The client reports an action (accepted, ignored)."),
    "viewer_credentials": route("POST", "/credentials/<token>", "Credentials for data sources (none needed)."),
}

ALL = {"data": DATA, "datasets": DATASETS, "meta": META, "viewer": VIEWER}


def register(blueprint, table: dict[str, Route], views: dict) -> None:
    """Attach ``views[name]`` to ``blueprint`` at ``table[name]``; a missing view is an error."""
    missing = set(table) ^ set(views)
    if missing:
        raise RuntimeError(f"routes and views differ for {blueprint.name}: {sorted(missing)}")
    for name, spec in table.items():
        blueprint.add_url_rule(spec.rule, endpoint=name, view_func=views[name], methods=list(spec.methods))
