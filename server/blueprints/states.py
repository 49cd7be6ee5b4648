"""Share links over HTTP: our state API, CAVE's JSON state service, ``/s/`` and ``/at/`` links.

Only HTTP lives here; storing is :class:`state_links.store.StateStore`, anchoring
and "as it was / as it is now" are :mod:`state_links.links`.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, redirect, request

from segmentation.datasets import DatasetNotFound
from segmentation.timestamps import parse_timestamp
from state_links.codec import StateRejected, parse_json_object
from state_links.links import DEFAULT_MODE, MODES, LinkError, as_now, as_was, changed_since, find_anchors, voxel_state
from state_links.sources import references
from state_links.store import StateStore
from state_links.tokens import holds_token

from .. import auth, endpoints, hosts, request_input
from ..workspace import workspace
from . import (
    VIEWER_TOKEN,
    dataset_named,
    datasets_registry,
    has_synapses,
    hidden_datasets,
    may_view_datasets,
    private_if_needed,
    viewer_url,
)

blueprint = Blueprint("states", __name__)

CAVE_STATE_VERSION = "0.7.2"
_COORDS = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*$")
_LINK_AT_BODY = '{"dataset": NAME, "voxel": [x, y, z], "t": optional, "zoom": optional}'
_MAX_LINK_AT_BYTES = 1024 * 1024  # a voxel link body is tiny; read no more than this


def store() -> StateStore:
    return workspace().states


def base_url() -> str:
    return hosts.base_url()


def _graphs():
    return workspace().graphs


def _reached_by_short_id(ref) -> bool:
    return not str(ref).isdigit()


def _shows_owner(ref, stored) -> bool:
    """Owner and short id: for callers who reached the state by its short id (they hold the link), its
    signed-in owner and site admins — not for a caller who came by integer id (old ones are sequential)."""
    principal = auth.principal()
    return (
        _reached_by_short_id(ref)
        or principal.site_admin
        or (principal.authenticated and principal.name == stored.owner)
    )


# ---- storing ------------------------------------------------------------------------
def _posted_state():
    """Body → (raw bytes, state); 413 before reading a body that announces itself too big."""
    limit = store().max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise StateRejected(413, f"state is {request.content_length} bytes; the limit is {limit} bytes")
    raw = request.get_data(cache=False)
    state = store().parse(raw)
    if holds_token(state):
        raise StateRejected(400, "this state contains an access token (axl_...): remove it before sharing")
    return raw, state


def _save(raw: bytes, state: dict, title: str | None = None, anchors=None, dataset=None):
    """Store a state tied to every dataset it names; refuse it unless the caller may view each.

    Everything up to the visibility check costs the same whether a name is unknown or private,
    and both are refused with the same 404 ``no dataset named …``.
    """
    named = references(state, hosts.is_this_server)
    if named.unclassified:
        raise StateRejected(
            400,
            f"this state points at {named.unclassified[0]} on this server, which shows no "
            f"dataset axonlink can check access to: remove it, or link a dataset's data",
        )
    datasets = set(named.datasets) | ({dataset} if dataset else set())
    for ref in named.states:  # a state pointing at a state: it shows what that one shows
        datasets |= store().get(ref, may_view=may_view_datasets).datasets
    hidden = hidden_datasets(datasets)
    if hidden:
        raise DatasetNotFound(f"no dataset named {hidden[0]!r}")
    if anchors is None:
        anchors = find_anchors(state, hosts.is_this_server, _graphs(), datasets_registry(), allowed=datasets)
    title = title if title is not None else request.args.get("title") or str(state.get("title") or "")
    stored = store().save(
        raw,
        state,
        title=title,
        description=request.args.get("description", ""),
        dataset=dataset or next(iter(named.datasets), None),
        anchors=anchors,
        owner=auth.user_name(),
        datasets=datasets,
    )
    if auth.principal().authenticated:  # into the poster's own list, stored before or not
        workspace().my_links.record(auth.user_name(), stored.id, title)
    return stored


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
    }
    if may_view_datasets(stored.datasets):  # an identical state stored before may name more than this caller sees
        answer.update({k: v for k, v in stored.info().items() if k not in ("id", "short_id")})
    response = jsonify(answer)
    response.status_code = status or (201 if stored.created else 200)
    return private_if_needed(response, stored.datasets)


def _mode() -> str | None:
    mode = request.args.get("as")
    if mode is not None and mode not in MODES:
        raise LinkError(f"as must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _as_stored(stored) -> Response:
    """The state's bytes as stored, with the ETag of those bytes (a revalidation costs a 304: they never
    change; the cache headers stay short, because who may see them can)."""
    if request.if_none_match.contains_weak(stored.etag):
        response = Response(status=304, mimetype="application/json")
    else:
        response = Response(stored.raw, mimetype="application/json")
    response.set_etag(stored.etag)
    return response


def _state_json(stored, mode: str | None) -> Response:
    if mode is None:
        response = _as_stored(stored)
    else:
        state = json.loads(stored.raw)
        if mode == "was":
            state = as_was(state, stored.created_at, base_url(), hosts.is_this_server)
        else:
            state = as_now(state, stored.anchors, _graphs(), hosts.is_this_server)
        response = jsonify(state)
    return private_if_needed(response, stored.datasets)


def _get(ref, fresh: bool = False):
    """The stored state, if the caller may view every dataset it names; else the 404 of a missing one."""
    return (store().info_of if fresh else store().get)(ref, may_view=may_view_datasets)


# ---- our API -------------------------------------------------------------------
def post_state():
    raw, state = _posted_state()
    return _link_answer(_save(raw, state))


def get_state(ref):
    stored = _get(ref)
    store().count_view(stored)
    return _state_json(stored, _mode())


def get_state_as(ref, mode):
    if mode not in MODES:
        raise LinkError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return _state_json(_get(ref), mode)


def state_info(ref):
    stored = _get(ref, fresh=True)
    info = stored.info()
    info["changed_since"] = changed_since(stored.anchors, _graphs())
    if _shows_owner(ref, stored):
        info["short_url"] = f"{base_url()}/s/{stored.short_id}"
    else:
        info.update(owner=None, short_id=None, short_url=None)
    return private_if_needed(jsonify(info), stored.datasets, always=True)  # it depends on who asks


def post_link_at():
    raw = request.get_data(cache=False)
    try:
        body = parse_json_object(raw, max_bytes=_MAX_LINK_AT_BYTES, max_depth=8, what="body")
    except StateRejected as error:
        raise StateRejected(error.status, f"{error.message()}; send {_LINK_AT_BODY}") from None
    if "dataset" not in body or "voxel" not in body:
        raise LinkError(f"body must be {_LINK_AT_BODY}")
    voxel = body["voxel"]
    if not (
        isinstance(voxel, list)
        and len(voxel) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in voxel)
    ):
        raise LinkError("voxel must be three integers [x, y, z] (full-resolution voxels)")
    at = parse_timestamp(str(body["t"])) if body.get("t") is not None else None
    zoom = _zoom(body.get("zoom"))
    name = str(body["dataset"])
    if hidden_datasets([name]):  # unknown or private: one answer, the same work
        raise DatasetNotFound(f"no dataset named {name!r}")
    dataset = dataset_named(name)
    state, anchor = voxel_state(
        dataset, voxel, base_url(), _graphs(), at=at, zoom=zoom, synapses=has_synapses(dataset.name)
    )
    raw = json.dumps(state, separators=(",", ":")).encode()
    anchors = [anchor] if anchor is not None else []  # an image-only dataset's link selects no neuron
    return _link_answer(_save(raw, state, title=state["title"], anchors=anchors, dataset=dataset.name))


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
    stored = _get(ref)
    mode = _mode() or DEFAULT_MODE
    store().count_view(stored)
    # the viewer is sent on with the name the caller used: an integer id does not reveal the short one
    name = stored.short_id if _reached_by_short_id(ref) else str(stored.id)
    return private_if_needed(redirect(viewer_url(name, mode), code=302), stored.datasets)


def open_voxel_link(dataset, coords):
    match = _COORDS.match(coords)
    if not match:
        raise LinkError(f"coordinates must be x,y,z voxels (integers), not {coords!r}")
    at = request_input.moment("t")
    state, _ = voxel_state(
        dataset_named(dataset),
        [int(v) for v in match.groups()],
        base_url(),
        _graphs(),
        at=at,
        zoom=_zoom(request.args.get("zoom")),
        synapses=has_synapses(dataset),
    )
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
    stored = _get(state_id)
    store().count_view(stored)
    return private_if_needed(_as_stored(stored), stored.datasets)


def nglstate_raw(state_id):
    return nglstate_get(state_id)


_VIEWS = {name: globals()[name] for name in endpoints.STATES}
endpoints.register(blueprint, endpoints.STATES, _VIEWS)
