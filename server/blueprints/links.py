"""My links and named aliases over HTTP (routes in ``endpoints.LINKS``).

Only HTTP lives here: one's list is :class:`state_links.my_links.MyLinks`, aliases are
:class:`state_links.aliases.Aliases`. An alias shows what its target shows, so every answer about
one is given only to a caller who may view its current target's datasets — anyone else gets the
404 of a missing alias — and lists only the earlier targets that caller may view.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from segmentation.access import SignInRequired
from state_links.aliases import Alias, AliasNotFound
from state_links.links import DEFAULT_MODE, MODES, LinkError
from state_links.store import StateNotFound, StoredState, is_short_id

from .. import auth, endpoints, hosts, request_input
from ..workspace import workspace
from . import may_view_datasets, private_if_needed, viewer_url, visible_targets

blueprint = Blueprint("links", __name__)

ALIAS_BODY = '{"name": "lower-case-name", "state": "SHORT_ID"}'
REPOINT_BODY = '{"state": "SHORT_ID"}'
MAX_PAGE = 100_000


def _signed_in() -> str:
    principal = auth.principal()
    if not principal.authenticated:
        raise SignInRequired("sign in to have links and aliases of your own")
    return principal.name


def _visible_state(ref) -> StoredState:
    """A stored state the caller may view, by short id only (an alias publishes what it points at,
    so it is made from the link its owner holds, not from an integer id)."""
    if not isinstance(ref, str) or not is_short_id(ref):
        raise LinkError(f"state must be the short id of a stored state (as in /s/<id>), not {str(ref)[:80]!r}")
    return workspace().states.get(ref, may_view=may_view_datasets)


def _state_in_list(ref: str) -> StoredState:
    try:
        return workspace().states.get(ref, may_view=may_view_datasets)
    except StateNotFound:
        raise StateNotFound(f"no state {ref!r} in your links") from None


# ---- my links -------------------------------------------------------------------------
def page_number() -> int:
    value = request.args.get("page", "1")
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_PAGE:
        raise request_input.BadInput(f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(value)


def my_links():
    user = _signed_in()
    page = page_number()
    links, total = workspace().my_links.page(user, page, may_view=may_view_datasets)
    base = hosts.base_url()
    return private_if_needed(
        jsonify({"links": [link.to_json(base) for link in links], "page": page, "total": total}), (), always=True
    )


def rename_my_link(ref):
    user = _signed_in()
    body = request_input.json_object('{"title": "..."}')
    if "title" not in body:
        raise request_input.BadInput('send {"title": "..."}')
    workspace().my_links.rename(user, _state_in_list(ref).id, body["title"])
    return private_if_needed(jsonify({"renamed": True}), (), always=True)


def forget_my_link(ref):
    user = _signed_in()
    workspace().my_links.forget(user, _state_in_list(ref).id)
    return private_if_needed(jsonify({"forgotten": True}), (), always=True)


# ---- aliases --------------------------------------------------------------------------
def alias_json(alias: Alias, shown=None) -> dict:
    """What the caller may know of an alias (its current target is visible to them: checked before);
    ``shown``: its targets the caller may view, when already known (:func:`visible_targets`)."""
    base = hosts.base_url()
    if shown is None:
        found = visible_targets([alias])
        shown = found[0][1] if found else [alias.current]
    return {
        "name": alias.name,
        "owner": alias.owner,
        "created": alias.created_at.isoformat(),
        "url": f"{base}/l/{alias.name}",
        "target": _target_json(alias.current, base),
        "history": [_target_json(t, base) for t in shown],
        "pointings": alias.pointings,
        "hidden": len(alias.targets) - len(shown),  # earlier targets showing data the caller may not view
    }


def _target_json(target, base: str) -> dict:
    return {
        "seq": target.seq,
        "short_id": target.short_id,
        "short_url": f"{base}/s/{target.short_id}",
        "pointed_at": target.pointed_at.isoformat(),
        "by": target.by,
    }


def visible_alias(name: str) -> tuple[Alias, StoredState]:
    """The alias and its current target, when the caller may view that target; else AliasNotFound."""
    alias = workspace().aliases.get(name)
    try:
        target = workspace().states.get(alias.current.short_id, may_view=may_view_datasets)
    except StateNotFound:
        raise AliasNotFound(f"no alias named {name!r}") from None
    return alias, target


def my_aliases():
    user = _signed_in()
    shown = [alias_json(alias, targets) for alias, targets, _ in visible_targets(workspace().aliases.of_owner(user))]
    return private_if_needed(jsonify({"aliases": shown}), (), always=True)


def create_alias():
    user = _signed_in()
    body = request_input.json_object(ALIAS_BODY)
    if "name" not in body or "state" not in body:
        raise request_input.BadInput(f"send {ALIAS_BODY}")
    target = _visible_state(body["state"])
    alias = workspace().aliases.create(body["name"], user, target.id)
    response = jsonify(alias_json(alias))
    response.status_code = 201
    return private_if_needed(response, target.datasets, always=True)


def get_alias(alias):
    found, target = visible_alias(alias)
    return private_if_needed(jsonify(alias_json(found)), target.datasets, always=True)


def repoint_alias(alias):
    principal = auth.principal()
    user = _signed_in()
    body = request_input.json_object(REPOINT_BODY)
    if "state" not in body:
        raise request_input.BadInput(f"send {REPOINT_BODY}")
    visible_alias(alias)  # an alias one may not see is missing, whoever owns it
    target = _visible_state(body["state"])
    found = workspace().aliases.repoint(alias, target.id, user, site_admin=principal.site_admin)
    return private_if_needed(jsonify(alias_json(found)), target.datasets, always=True)


def open_alias(alias):
    mode = request.args.get("as") or DEFAULT_MODE
    if mode not in MODES:
        raise LinkError(f"as must be one of {', '.join(MODES)}, not {mode!r}")
    _, target = visible_alias(alias)
    workspace().states.count_view(target)
    # the alias moves: never kept by a cache, whoever asks
    return private_if_needed(redirect(viewer_url(target.short_id, mode), code=302), target.datasets, always=True)


_VIEWS = {name: globals()[name] for name in endpoints.LINKS}
endpoints.register(blueprint, endpoints.LINKS, _VIEWS)
