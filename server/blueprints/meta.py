"""The OpenAPI document, generated from :mod:`server.endpoints`."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify

from .. import endpoints, rate_limits
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


def _responses(spec) -> dict:
    responses = {"200": {"description": "OK"}, "4XX": {"description": "Error as JSON {error, message}"}}
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
                    "responses": _responses(spec),
                }
                if spec.caps:
                    operation["x-axonlink-caps"] = dict(spec.caps)
                if spec.cost:
                    operation["x-axonlink-cost"] = spec.cost
                if spec.access != "open":  # a token is optional where anonymous users may view
                    operation["security"] = [{"bearer": []}, {}] if spec.access in ("view", "own") else [{"bearer": []}]
                if method in ("POST", "PUT", "PATCH"):  # bodies are described in the summaries
                    media = BODY_TYPES.get(spec.body, "application/json")
                    schema = {"type": "string", "format": "binary"} if spec.body == "binary" else {}
                    operation["requestBody"] = {"required": False, "content": {media: {"schema": schema}}}
                paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "axonlink", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An axonlink token (`axonlink tokens create NAME`); the viewer uses a cookie set at /login.",
                }
            }
        },
    }


def openapi():
    return jsonify(openapi_document())


endpoints.register(blueprint, endpoints.META, {"openapi": openapi})
