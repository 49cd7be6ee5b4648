"""The OpenAPI document, generated from :mod:`server.endpoints`."""
from __future__ import annotations

import re

from flask import Blueprint, jsonify

from .. import endpoints

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
                    "description": _ACCESS_TEXT[spec.access],
                    "x-axonlink-access": spec.access,
                    "parameters": parameters,
                    "responses": {"200": {"description": "OK"}, "4XX": {"description": "Error as JSON"}},
                }
                if spec.access != "open":  # a token is optional where anonymous users may view
                    operation["security"] = [{"bearer": []}, {}] if spec.access in ("view", "own") else [{"bearer": []}]
                if method in ("POST", "PUT", "PATCH"):  # bodies are described in the summaries; any JSON may be sent
                    operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": {}}}}
                paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "axonlink", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An axonlink token (`axonlink tokens create NAME`); the viewer uses a cookie set at /login.",
        }}},
    }


def openapi():
    return jsonify(openapi_document())


endpoints.register(blueprint, endpoints.META, {"openapi": openapi})
