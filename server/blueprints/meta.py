"""The OpenAPI document, generated from :mod:`server.endpoints`."""
from __future__ import annotations

import re

from flask import Blueprint, jsonify

from .. import endpoints

blueprint = Blueprint("meta", __name__)

_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def openapi_document() -> dict:
    paths: dict = {}
    for area, table in endpoints.ALL.items():
        for name, spec in table.items():
            path = _CONVERTER.sub(r"{\1}", spec.rule)
            parameters = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _CONVERTER.findall(spec.rule)
            ]
            for method in spec.methods:
                paths.setdefault(path, {})[method.lower()] = {
                    "operationId": name if len(spec.methods) == 1 else f"{name}_{method.lower()}",
                    "tags": [area],
                    "summary": spec.summary,
                    "parameters": parameters,
                    "responses": {"200": {"description": "OK"}, "4XX": {"description": "Error as JSON"}},
                }
    return {
        "openapi": "3.0.3",
        "info": {"title": "axonlink", "version": "1"},
        "paths": paths,
    }


def openapi():
    return jsonify(openapi_document())


endpoints.register(blueprint, endpoints.META, {"openapi": openapi})
