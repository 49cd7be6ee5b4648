"""Who am I, signing the browser in and out, grants, dataset settings and the audit log over HTTP.

The rules and the storage are :mod:`segmentation.access`; this module only
parses requests and shapes answers.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, make_response, render_template

from segmentation.access import AccessError

from .. import auth, endpoints
from ..request_input import json_object
from . import audit_entries, dataset_json, dataset_named, datasets_registry

blueprint = Blueprint("access", __name__)


def _json_object(example: str) -> dict:
    return json_object(example)


def whoami():
    me = auth.principal()
    roles = {d.name: auth.role(d.name) for d in auth.visible_datasets()}
    return jsonify(
        {
            "user": me.name,
            "authenticated": me.authenticated,
            "site_admin": me.site_admin,
            "roles": {name: role for name, role in roles.items() if role},
        }
    )


def login_page():
    return render_template("login.html")


def start_session():
    body = _json_object('{"token": "axl_..."}')
    token = body.get("token")
    if not isinstance(token, str):
        raise AccessError('the body must be {"token": "axl_..."}')
    principal = auth.accounts().authenticate(token)  # InvalidToken → 401
    response = make_response(jsonify({"user": principal.name}))
    auth.set_session_cookie(response, token)
    return response


def end_session():
    response = make_response(jsonify({"user": None}))
    response.delete_cookie(auth.COOKIE, path="/")
    return response


def update_dataset(name):
    body = _json_object('{"description": "...", "public": false}')
    public = body.pop("public", None)
    if public is not None and not isinstance(public, bool):
        raise AccessError("public must be true or false")
    if body:
        datasets_registry().update(name, body, by=auth.user_name(), origin=auth.origin())
    if public is not None:
        auth.accounts().set_public(name, public, by=auth.user_name(), origin=auth.origin())
    return jsonify(dataset_json(dataset_named(name)))


def list_grants(name):
    dataset_named(name)
    return jsonify({"dataset": name, "grants": auth.accounts().grants(name)})


def set_grant(name, user):
    body = _json_object('{"role": "proofreader"}')
    role = body.get("role")
    if not isinstance(role, str):
        raise AccessError('the body must be {"role": "viewer" | "proofreader" | "admin" | "none"}')
    auth.accounts().grant(user, name, role, by=auth.user_name(), origin=auth.origin())
    return jsonify({"dataset": name, "user": user, "role": None if role == "none" else role})


def audit_log():
    return jsonify({"entries": audit_entries()})


_VIEWS = {name: globals()[name] for name in endpoints.ACCESS}
endpoints.register(blueprint, endpoints.ACCESS, _VIEWS)
