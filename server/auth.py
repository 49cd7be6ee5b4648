"""Per request: who is calling, and whether the route's access level lets them.

Tokens come as ``Authorization: Bearer <token>`` (what caveclient sends) or,
for the browser viewer, as an HttpOnly, SameSite=Strict cookie set by
``POST /api/v1/session`` — never in a URL, so a token cannot end up in a shared
link, a stored state, a server log or a Referer header. A bad Bearer token is
a 401; a stale cookie is dropped and the browser carries on anonymously.

A request that changes something and is not authenticated by a Bearer header (a
cookie, or an anonymous caller where anonymous users may edit) must come from
this server's own pages: a browser always says where a request comes from
(``Origin``, ``Sec-Fetch-Site``), and one from another site is refused (403).
A cookie-authenticated request must also carry its body's real content type
(``application/json`` …), which a cross-site form cannot send.

An unknown dataset and a private one the caller may not see are the same
thing to the caller: both are refused here, with the same 404 and the same
work (the visibility of every dataset is cached per process), before any view
runs.

Routes for whoever runs the server (``operator``: ``/metrics``) take a site admin's token, or
the scrape token ``AXONLINK_METRICS_TOKEN``: a machine's credential, not a user's, recognised on
those routes only (anywhere else it is an unknown token, 401). With no scrape token set, a request
made on this machine (a loopback peer) that no proxy forwarded (no ``X-Forwarded-For``,
``Forwarded`` or ``X-Real-IP``) is let in too, so a Prometheus beside the server needs no set-up;
setting the token ends that, for a machine shared with people who should not read the metrics.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import current_app, g, request

from segmentation.access import (
    Accounts,
    Forbidden,
    InvalidToken,
    NotVisible,
    Principal,
    SignInRequired,
    anonymous,
    require_role,
    role_on,
)
from segmentation.errors import Invalid, Refused

from . import endpoints, hosts

COOKIE = "axonlink_token"
CAVE_COOKIE = "middle_auth_token"  # caveclient sends its token in this cookie too
COOKIE_MAX_AGE = 30 * 24 * 3600
NEEDED_ROLE = {"view": "viewer", "edit": "proofreader", "admin": "admin"}
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_TYPES = {"json": "application/json", "csv": "text/csv", "binary": "application/octet-stream"}


class CrossSiteRequest(Refused):
    """A state-changing request from another site's page (CSRF), or one a browser could forge."""


class WrongContentType(Invalid):
    """A cookie-authenticated body without the content type its route takes."""

    status = 415
    refusal = True


def accounts() -> Accounts:
    from .workspace import workspace

    return workspace().accounts


def anonymous_role() -> str:
    return current_app.config["AXONLINK_SETTINGS"].anonymous_role


def principal() -> Principal:
    return g.get("principal") or anonymous()


def user_name() -> str:
    return principal().name


def origin() -> str:
    return request.remote_addr or ""


def role(dataset: str) -> str | None:
    public = accounts().is_public(dataset)
    return None if public is None else role_on(principal(), dataset, public, anonymous_role())


def require(dataset: str, needed: str = "viewer") -> str:
    """The caller's role on ``dataset`` if at least ``needed``; raises the right refusal otherwise.

    An unknown dataset is refused exactly like a private one the caller may not see.
    """
    public = accounts().is_public(dataset)
    if public is None:
        raise NotVisible(f"no dataset named {dataset!r}")
    return require_role(principal(), dataset, public, needed, anonymous_role())


def can_view(dataset: str) -> bool:
    try:
        require(dataset)
        return True
    except (NotVisible, SignInRequired, Forbidden):
        return False


def visible_datasets():
    """The registered datasets the caller may see (private ones only with a role on them)."""
    from .workspace import workspace

    return [d for d in workspace().datasets.list() if can_view(d.name)]


def _token_of_request() -> tuple[str | None, str]:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        return token.strip(), "header"
    for name in (COOKIE, CAVE_COOKIE):
        if request.cookies.get(name):
            return request.cookies[name], name
    return None, ""


def _authenticate():
    token, source = _token_of_request()
    g.auth_source = source
    if token is None:
        g.principal = anonymous()
        return None
    if source == "header" and _is_scrape_token(token):
        g.principal, g.scraper = anonymous(), True  # a machine, not a user: it opens operator routes only
        return None
    try:
        g.principal = accounts().authenticate(token)
    except InvalidToken:
        if source == "header":
            raise
        g.principal, g.drop_cookie = anonymous(), source  # a stale browser cookie: carry on anonymously
        g.auth_source = ""
    return None


def _spec():
    return endpoints.BY_ENDPOINT.get((request.endpoint or "").rpartition(".")[2])


def _refuse_cross_site():
    """State changes not authenticated by a Bearer header must come from this server's own pages."""
    if request.method not in UNSAFE_METHODS or g.get("auth_source") == "header":
        return
    origin, site = request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")
    if origin is not None:
        allowed = hosts.same_origin(origin)
    elif site is not None:
        allowed = site in ("same-origin", "none")
    else:  # not a browser (a browser names the origin of every cross-site POST): only without a cookie
        allowed = not g.get("auth_source")
    if not allowed:
        raise CrossSiteRequest(
            "refused: a request that changes something must come from this server's own pages; "
            "scripts send their token as 'Authorization: Bearer <token>'"
        )
    spec = _spec()
    wanted = BODY_TYPES.get(spec.body) if spec is not None else None
    if g.get("auth_source") and wanted and request.mimetype != wanted:
        raise WrongContentType(f"this route takes a {wanted} body (Content-Type: {wanted})")


def _is_scrape_token(token: str) -> bool:
    """Whether ``token`` is the scrape token, sent to an operator route (compared in constant time)."""
    expected = current_app.config["AXONLINK_SETTINGS"].metrics_token
    if not expected:
        return False
    spec = _spec()
    return spec is not None and spec.access == "operator" and hmac.compare_digest(token.encode(), expected.encode())


def _from_this_machine() -> bool:
    """A loopback peer, and no proxy says it forwarded the request for someone else."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _require_operator() -> None:
    """The scrape token, a site admin, or (no scrape token set) a request made on this machine."""
    if g.get("scraper") or principal().site_admin:
        return
    if not current_app.config["AXONLINK_SETTINGS"].metrics_token and _from_this_machine():
        return
    if not principal().authenticated:
        raise SignInRequired("this needs a site admin's token or the scrape token (Authorization: Bearer <token>)")
    raise Forbidden(f"user {principal().name!r} is not a site admin")


def _authorize():
    spec = _spec()
    if spec is not None and spec.access == "operator":
        return _require_operator()
    if spec is None or spec.access not in NEEDED_ROLE:
        return None
    value = (request.view_args or {}).get(spec.dataset_parameter)
    if isinstance(value, str):
        require(value.partition("@")[0], NEEDED_ROLE[spec.access])
    return None


def install(app) -> None:
    @app.before_request
    def authenticate_and_authorize():
        if request.method == "OPTIONS":
            return None
        _authenticate()
        _refuse_cross_site()
        return _authorize()

    @app.after_request
    def drop_stale_cookie(response):
        stale = g.get("drop_cookie")
        if stale:
            response.delete_cookie(stale, path="/")
        return response


def set_session_cookie(response, token: str) -> None:
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="Strict", secure=request.is_secure
    )
