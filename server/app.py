"""The application factory: settings → database → blueprints."""

from __future__ import annotations

from functools import partial

from flask import Flask, request

from segmentation import budget, db
from segmentation.config import Settings

from . import auth, caching, endpoints, errors, hosts, metrics, rate_limits, request_log, workspace
from .blueprints import (
    access,
    celltypes,
    chunkedgraph,
    connectivity,
    data,
    datasets,
    links,
    materialize,
    meshing,
    meta,
    pages,
    states,
    viewer,
)
from .fast_path import FastPath
from .proxies import TrustedProxies
from .quick_answers import QuickAnswers

MAX_BODY_BYTES = 64 * 1024 * 1024

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "content-range, content-encoding, content-length, etag",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "range, content-type, authorization, if-none-match",
    "Access-Control-Max-Age": "86400",
}


def create_app(settings: Settings | None = None, *, upgrade_db: bool = True) -> Flask:
    settings = settings or Settings.load()
    if upgrade_db:
        db.upgrade(settings.database_url)
    app = Flask(__name__, static_folder=None)
    app.config["AXONLINK_SETTINGS"] = settings
    # no request body may be larger than this, chunked uploads included (routes set tighter limits)
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_state_bytes, MAX_BODY_BYTES)
    workspace.install(app, settings)  # the one object views find services through
    request_log.install(app)  # first: every request gets an id and a log line, refused ones too
    metrics.install(app)  # … and is counted (the fast path counts its own answers)
    errors.install(app)

    fast = FastPath(app.wsgi_app, app, CORS_HEADERS)  # stored chunks of public datasets, asked anonymously

    @app.before_request
    def refuse_unknown_hosts():
        hosts.check_request_host()  # first of all: nothing runs for a Host this server does not answer to
        fast.accepted(request.environ)  # … and the fast path may answer for this Host from now on

    auth.install(app)
    caching.install(app)
    for module in (
        data,
        datasets,
        meta,
        viewer,
        chunkedgraph,
        states,
        links,
        celltypes,
        connectivity,
        materialize,
        access,
        meshing,
        pages,
    ):
        app.register_blueprint(module.blueprint)
    _budget_costly_views(app)
    rate_limits.install(app, rate_limits.parse_limits(settings.rate_limits), settings.rate_limit_storage)
    app.wsgi_app = fast
    # the same answers, asked by the server's poller from the raw request head (no thread, no WSGI)
    app.quick_answers = QuickAnswers(partial(fast.answer, memory_only=True), settings.trusted_proxies)
    if settings.trusted_proxies:  # outermost: the fast path sees the client's address and scheme
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)

    @app.after_request
    def add_cors(response):
        response.headers.update(CORS_HEADERS)
        return response

    @app.before_request
    def refuse_ids_beyond_uint64():
        for name, value in (request.view_args or {}).items():
            if isinstance(value, int) and not 0 <= value < 2**64:
                return errors.json_error(400, f"{name} {value} is not an id (ids are unsigned 64-bit integers)")
        return None

    @app.before_request
    def answer_preflight():
        if request.method == "OPTIONS":
            response = app.make_default_options_response()
            response.headers.update(PREFLIGHT_HEADERS)
            return response
        return None

    return app


def _budget_costly_views(app) -> None:
    """Edits and expensive reads run under a time budget (work that loops checks it)."""
    import functools

    from flask import current_app

    for endpoint, view in list(app.view_functions.items()):
        spec = endpoints.BY_ENDPOINT.get(endpoint.rpartition(".")[2])
        if spec is None or spec.cost not in ("edit", "expensive"):
            continue

        def budgeted(*args, _view=view, **kwargs):
            with budget.time_budget(current_app.config["AXONLINK_SETTINGS"].request_budget_seconds):
                return _view(*args, **kwargs)

        app.view_functions[endpoint] = functools.wraps(view)(budgeted)
