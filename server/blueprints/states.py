"""Share links over HTTP: our state API, CAVE's JSON state service, ``/s/`` and ``/at/`` links.

Only HTTP lives here; storing is :class:`state_links.store.StateStore`, anchoring
and "as it was / as it is now" are :mod:`state_links.links`.
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from segmentation.datasets import DatasetNotFound
from segmentation.timestamps import InvalidTimestamp, parse_timestamp
from state_links.codec import StateRejected
from state_links.links import DEFAULT_MODE, MODES, LinkError, as_now, as_was, changed_since, find_anchors, voxel_state
from state_links.store import StateNotFound, StateStore

from segmentation.access import TOKEN_PATTERN, NotVisible

from .. import auth, endpoints, hosts
from ..errors import json_error
from . import datasets_registry
from .viewer import VIEWER_TOKEN

blueprint = Blueprint("states", __name__)

CAVE_STATE_VERSION = "0.7.2"
_COORDS = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*$")


@blueprint.errorhandler(StateRejected)
def _rejected(error):
    return json_error(error.status, str(error))


@blueprint.errorhandler(StateNotFound)
@blueprint.errorhandler(DatasetNotFound)
def _not_found(error):
    return json_error(404, str(error.args[0] if error.args else error))


@blueprint.errorhandler(LinkError)
@blueprint.errorhandler(InvalidTimestamp)
def _bad_link(error):
    return json_error(400, str(error))


def store() -> StateStore:
    app = current_app
    if "axonlink.states" not in app.extensions:
        settings = app.config["AXONLINK_SETTINGS"]
        app.extensions["axonlink.states"] = StateStore(settings.database_url, settings.max_state_bytes)
    return app.extensions["axonlink.states"]


def base_url() -> str:
    return hosts.base_url()


def _database_url() -> str:
    return current_app.config["AXONLINK_SETTINGS"].database_url


def _posted_state():
    """Body → (raw bytes, state); 413 before reading a body that announces itself too big."""
    limit = store().max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise StateRejected(413, f"state is {request.content_length} bytes; the limit is {limit} bytes")
    raw = request.get_data(cache=False)
    if TOKEN_PATTERN.search(raw.decode("utf-8", "replace")):
        raise StateRejected(400, "this state contains an access token (axl_...): remove it before sharing")
    return raw, store().parse(raw)


def _save(raw: bytes, state: dict, title: str | None = None, anchors=None, dataset=None):
    if anchors is None:
        anchors, dataset = find_anchors(state, base_url(), _database_url(), datasets_registry())
    for name in {dataset, *(a.dataset for a in anchors)} - {None}:
        auth.require(name)  # a link can be made by anyone who may view what it shows
    title = title if title is not None else request.args.get("title") or str(state.get("title") or "")
    return store().save(raw, state, title=title, description=request.args.get("description", ""),
                        dataset=dataset, anchors=anchors, owner=auth.user_name())


def _link_answer(stored, status=None):
    base = base_url()
    answer = {
        "id": stored.id,
        "short_id": stored.short_id,
        "short_url": f"{base}/s/{stored.short_id}",
        "url": f"{base}/api/v1/states/{stored.short_id}",
        "viewer_url": viewer_url(stored.short_id, DEFAULT_MODE),
        "as_now_url": f"{base}/s/{stored.short_id}?as=now",
        "created": stored.created,
        **{k: v for k, v in stored.info().items() if k not in ("id", "short_id")},
    }
    response = jsonify(answer)
    response.status_code = status or (201 if stored.created else 200)
    return response


def viewer_url(short_id: str, mode: str) -> str:
    """The bundled viewer loading a stored state by URL (``#!<url>``), told which mode it shows."""
    base = base_url()
    query = urlencode({"link": short_id, "as": mode})
    return f"{base}/v/{VIEWER_TOKEN}/?{query}#!{base}/api/v1/states/{short_id}/{mode}.json"


def _mode() -> str | None:
    mode = request.args.get("as")
    if mode is not None and mode not in MODES:
        raise LinkError(f"as must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _state_json(stored, mode: str | None) -> Response:
    if mode is None:
        return Response(stored.raw, mimetype="application/json")
    state = json.loads(stored.raw)
    if mode == "was":
        state = as_was(state, stored.created_at, base_url())
    else:
        state = as_now(state, stored.anchors, base_url(), _database_url())
    return jsonify(state)


def _viewable(stored, ref):
    """``stored`` if the caller may view every dataset it shows; otherwise it does not exist for them."""
    for name in {stored.dataset, *(a.dataset for a in stored.anchors)} - {None}:
        try:
            auth.require(name)
        except NotVisible:
            raise StateNotFound(f"no state {ref}") from None
    return stored


# ---- our API -------------------------------------------------------------------
def post_state():
    raw, state = _posted_state()
    return _link_answer(_save(raw, state))


def get_state(ref):
    stored = _viewable(store().get(ref), ref)
    store().count_view(stored)
    return _state_json(stored, _mode())


def get_state_as(ref, mode):
    if mode not in MODES:
        raise LinkError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return _state_json(_viewable(store().get(ref), ref), mode)


def state_info(ref):
    stored = _viewable(store().info_of(ref), ref)
    info = stored.info()
    info["changed_since"] = changed_since(stored.anchors, _database_url())
    info["short_url"] = f"{base_url()}/s/{stored.short_id}"
    return jsonify(info)


def post_link_at():
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError:
        raise LinkError("body must be JSON: {\"dataset\": ..., \"voxel\": [x, y, z]}") from None
    if not isinstance(body, dict) or "dataset" not in body or "voxel" not in body:
        raise LinkError('body must be {"dataset": NAME, "voxel": [x, y, z], "t": optional, "zoom": optional}')
    voxel = body["voxel"]
    if not (isinstance(voxel, list) and len(voxel) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                  for v in voxel)):
        raise LinkError("voxel must be three integers [x, y, z] (full-resolution voxels)")
    at = parse_timestamp(str(body["t"])) if body.get("t") is not None else None
    zoom = _zoom(body.get("zoom"))
    name = str(body["dataset"])
    try:
        auth.require(name)
    except NotVisible:
        raise DatasetNotFound(f"no dataset named {name!r}") from None
    dataset = datasets_registry().get(name)
    state, anchor = voxel_state(dataset, voxel, base_url(), _database_url(), at=at, zoom=zoom)
    raw = json.dumps(state, separators=(",", ":")).encode()
    return _link_answer(_save(raw, state, title=state["title"], anchors=[anchor], dataset=dataset.name))


def _zoom(value):
    if value is None:
        return None
    try:
        zoom = float(value)
    except (TypeError, ValueError):
        raise LinkError(f"zoom must be a positive number, not {value!r}") from None
    if not (0 < zoom < 1e6):
        raise LinkError(f"zoom must be a positive number, not {value!r}")
    return zoom


def open_short_link(ref):
    stored = _viewable(store().get(ref), ref)
    mode = _mode() or DEFAULT_MODE
    store().count_view(stored)
    return redirect(viewer_url(stored.short_id, mode), code=302)


def open_voxel_link(dataset, coords):
    match = _COORDS.match(coords)
    if not match:
        raise LinkError(f"coordinates must be x,y,z voxels (integers), not {coords!r}")
    at = parse_timestamp(request.args["t"]) if request.args.get("t") else None
    state, _ = voxel_state(datasets_registry().get(dataset), [int(v) for v in match.groups()], base_url(),
                           _database_url(), at=at, zoom=_zoom(request.args.get("zoom")))
    fragment = quote(json.dumps(state, separators=(",", ":")), safe="")
    return redirect(f"{base_url()}/v/{VIEWER_TOKEN}/#!{fragment}", code=302)


# ---- CAVE's JSON state service -------------------------------------------------
def nglstate_version():
    return jsonify(CAVE_STATE_VERSION)


def nglstate_post():
    raw, state = _posted_state()
    stored = _save(raw, state)
    return jsonify(f"{base_url()}/nglstate/api/v1/{stored.id}")


def nglstate_get(state_id):
    stored = _viewable(store().get(state_id), state_id)
    store().count_view(stored)
    return Response(stored.raw, mimetype="application/json")


def nglstate_raw(state_id):
    return nglstate_get(state_id)


_VIEWS = {name: globals()[name] for name in endpoints.STATES}
endpoints.register(blueprint, endpoints.STATES, _VIEWS)
