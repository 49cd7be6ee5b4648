"""Per-client rate limits on what costs the server: edits, new states and links, expensive reads.

Every route declares its ``cost`` in the route table; the routes of one cost share one budget
per client — the caller's token when it sends one, else its address — kept by Flask-Limiter:
in this process by default (each worker counts for itself, so the effective limit is per
worker), or in Redis when ``AXONLINK_RATE_LIMIT_STORAGE=redis://host:6379`` is set (then the
workers and servers share one count). ``AXONLINK_RATE_LIMITS`` changes the limits, e.g.
``edit=60/minute;create=30/minute;expensive=120/minute`` (``none`` turns one off). Beyond a
limit a request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask_limiter import Limiter

from . import endpoints

DEFAULT_LIMITS = {"edit": "120/minute", "create": "60/minute", "expensive": "120/minute"}
CONFIG_KEY = "AXONLINK_RATE_LIMITS"


def parse_limits(text: str | None) -> dict[str, str | None]:
    """``edit=60/minute;create=none`` over the defaults → {cost: limit or None (no limit)}."""
    limits: dict[str, str | None] = dict(DEFAULT_LIMITS)
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        cost, eq, value = item.partition("=")
        cost, value = cost.strip(), value.strip()
        if not eq or cost not in DEFAULT_LIMITS or not value:
            raise ValueError(f"AXONLINK_RATE_LIMITS items look like edit=60/minute, not {item!r}")
        limits[cost] = None if value == "none" else value
    return limits


def client_key() -> str:
    """Whom a request counts against: its token (so a lab behind one address is not one client), else its address."""
    principal = g.get("principal")
    if principal is not None and principal.token_id is not None:
        return f"token:{principal.token_id}"
    return f"address:{request.remote_addr or ''}"


def _limit_of(cost: str):
    return lambda: current_app.config[CONFIG_KEY].get(cost) or "1000000/second"


def _exempt(cost: str):
    return lambda: current_app.config[CONFIG_KEY].get(cost) is None


def install(app, limits: dict[str, str | None], storage_uri: str | None) -> Limiter:
    """Put every route with a cost under its shared limit (call after the blueprints are registered).

    One limiter per app: it keeps its limits by view name, so one shared by several apps (tests
    make many) would count each request once per app."""
    app.config[CONFIG_KEY] = limits
    limiter = Limiter(
        key_func=client_key,
        app=app,
        headers_enabled=True,
        strategy="moving-window",
        storage_uri=storage_uri or "memory://",
        key_prefix="axonlink",
    )
    for name, spec in endpoints.BY_ENDPOINT.items():
        if spec.cost is None:
            continue
        for endpoint in [e for e in app.view_functions if e.rpartition(".")[2] == name]:
            app.view_functions[endpoint] = limiter.shared_limit(
                _limit_of(spec.cost),
                scope=spec.cost,
                exempt_when=_exempt(spec.cost),
                error_message=f"too many {spec.cost} requests from you; wait a little (Retry-After says how long)",
            )(app.view_functions[endpoint])
    return limiter
