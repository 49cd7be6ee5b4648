"""The OpenAPI document, generated from :mod:`server.endpoints`; the API page; Prometheus's metrics."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, jsonify, render_template, send_file

from segmentation.errors import NotFound

from .. import api_schemas, endpoints, metrics, rate_limits
from ..auth import BODY_TYPES

blueprint = Blueprint("meta", __name__)

_CONVERTER = re.compile(r"<(?:([a-z]+):)?([a-z_]+)>")
_TYPES = {"int": {"type": "integer", "minimum": 0}}
_ACCESS_TEXT = {
    "open": "Anyone.",
    "view": "The viewer role on the dataset (anyone, for a public dataset); 404 if the dataset is private to others.",
    "edit": "The proofreader role on the dataset: 401 without a token, 403 with too low a role.",
    "admin": "The admin role on the dataset: 401 without a token, 403 with too low a role.",
    "own": "Answers only with what the caller may see (private datasets of others are left out or 404).",
    "operator": "A site admin's token, or the scrape token AXONLINK_METRICS_TOKEN; with no scrape token set, "
    "also a request made on the server's machine that no proxy forwarded. 401 without a token, 403 otherwise.",
}


def _limits_text(spec) -> list[str]:
    text = []
    if spec.caps:
        text.append(
            "Limits per request: " + ", ".join(f"at most {n:,} {what}" for what, n in spec.caps) + " (413 beyond)."
        )
    if spec.cost:
        limit = rate_limits.DEFAULT_LIMITS[spec.cost]
        text.append(
            f"Rate limit: shared by all '{spec.cost}' routes, {limit} per client (token, else address) "
            "by default (429 with Retry-After beyond; AXONLINK_RATE_LIMITS changes it)."
        )
    if spec.cost in ("edit", "expensive"):
        text.append(
            "Time budget: a request needing more than AXONLINK_REQUEST_BUDGET_SECONDS (default 10 s) "
            "of work is stopped with 503."
        )
    return text


def _responses(name: str, spec) -> dict:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    ok: dict = {"description": "OK"}
    if name in api_schemas.RESPONSES:
        ok["content"] = {"application/json": {"schema": api_schemas.RESPONSES[name]}}
    elif name in api_schemas.MEDIA:
        ok["content"] = {api_schemas.MEDIA[name]: {"schema": {"type": "string"}}}
    responses = {"200": ok, "4XX": {"description": "Error as JSON {error, message, request_id}", "content": error}}
    if name in api_schemas.NO_CONTENT:
        responses = {"204": {"description": "No content"}, "4XX": responses["4XX"]}
    if name in api_schemas.ALWAYS_REFUSED:
        responses = {"403": {"description": "Always refused", "content": error}}
    if name in api_schemas.REDIRECTS:
        responses = {"302": {"description": "To the viewer (Location), which browsers follow"}, "4XX": responses["4XX"]}
    if spec.caps:
        responses["413"] = {"description": "More items than the route takes (see Limits)"}
    if spec.cost:
        responses["429"] = {"description": "Rate limit reached; Retry-After says when to try again"}
    if spec.cost in ("edit", "expensive"):
        responses["503"] = {"description": "The request needed more work than its time budget"}
    return responses


def openapi_document() -> dict:
    paths: dict = {}
    for area, table in endpoints.ALL.items():
        for name, spec in table.items():
            path = _CONVERTER.sub(r"{\2}", spec.rule)
            parameters = [
                {"name": p, "in": "path", "required": True, "schema": _TYPES.get(kind, {"type": "string"})}
                for kind, p in _CONVERTER.findall(spec.rule)
            ]
            for method in spec.methods:
                operation = {
                    "operationId": name if len(spec.methods) == 1 else f"{name}_{method.lower()}",
                    "tags": [area],
                    "summary": spec.summary,
                    "description": " ".join([_ACCESS_TEXT[spec.access], *_limits_text(spec)]),
                    "x-axonlink-access": spec.access,
                    "parameters": parameters,
                    "responses": _responses(name, spec),
                }
                if spec.caps:
                    operation["x-axonlink-caps"] = dict(spec.caps)
                if spec.cost:
                    operation["x-axonlink-cost"] = spec.cost
                if spec.access != "open":  # a token is optional where anonymous users may view
                    operation["security"] = [{"bearer": []}, {}] if spec.access in ("view", "own") else [{"bearer": []}]
                if method in ("POST", "PUT", "PATCH"):  # api_schemas: every JSON body's shape
                    media = BODY_TYPES.get(spec.body, "application/json")
                    schema = {"type": "string", "format": "binary"} if spec.body in ("binary", "csv") else {}
                    schema = api_schemas.REQUESTS.get(name, schema)
                    required = spec.body != "ignored" and bool(schema)
                    operation["requestBody"] = {"required": required, "content": {media: {"schema": schema}}}
                paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "axonlink",
            "version": "1",
            "description": "Volumes, proofreading (PyChunkedGraph's v1 API), share links, cell types "
            "(CAVE's materialization API) and access. Send a token as Authorization: Bearer <token>.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An axonlink token (`axonlink tokens create NAME`); the viewer uses a cookie set at /login.",
                }
            },
            "schemas": {"Error": api_schemas.ERROR},
        },
    }


def openapi():
    return jsonify(openapi_document())


# Swagger UI's own files, from the swagger-ui-bundle package (Apache-2.0): only these are served
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}


def api_page():
    return render_template("api.html")


def api_asset(asset: str):
    from swagger_ui_bundle import swagger_ui_path

    if asset not in _ASSETS:
        raise NotFound(f"no file {asset!r} here")
    response = send_file(Path(swagger_ui_path) / asset, mimetype=_ASSETS[asset], conditional=True, max_age=86400)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def scrape():
    """What Prometheus scrapes (the access check ran before: ``operator``); never kept by any cache,
    since every scrape must count anew."""
    return Response(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})


endpoints.register(
    blueprint,
    endpoints.META,
    {"openapi": openapi, "api_page": api_page, "api_asset": api_asset, "metrics": scrape},
)
