"""One structured log line per request, and a request id the caller can quote.

Every answer carries ``X-Request-Id`` (error bodies also say ``request_id``), and the same
id is on the request's log line, so "it failed" from a user becomes one grep. The id is the
front server's (nginx: ``proxy_set_header X-Request-Id $request_id``) when it is a plain
token of at most 64 characters, else a fresh random one: a header cannot inject text into
the log.

The line (logger ``axonlink.requests``) holds method, route (the rule, not the path, so lines
group by route), dataset, user, status, duration, bytes, client address, the request id, and — when the request was refused for who asked or where from —
``refused`` with the reason's kind. 5xx lines are warnings; the rest are info (shown with
``--access-log``).
"""

from __future__ import annotations

import logging
import random
import re
import time

from flask import g, has_request_context, request

logger = logging.getLogger("axonlink.requests")
HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DATASET_PARAMETERS = ("dataset_ref", "dataset", "table", "name", "datastack")


def well_formed(given: str) -> bool:
    """Whether a caller's request id can be used as is (a plain token of at most 64 characters)."""
    return bool(_WELL_FORMED.fullmatch(given))


def new_request_id() -> str:
    """16 hex digits. Ids need to be unique, not secret: Python's generator (seeded from the system
    and reseeded in each forked worker) makes one without the system call ``secrets`` costs."""
    return f"{random.getrandbits(64):016x}"


def log_line(method: str, route: str, status: int, fields) -> None:
    """The request's one line (a warning for a 5xx), when the logger takes its level; ``fields()``
    gives the line's fields (only called then)."""
    level = logging.WARNING if status >= 500 else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", method, route, extra={"fields": fields()})


def request_id() -> str | None:
    """This request's id (None outside a request)."""
    return g.get("request_id") if has_request_context() else None


def note_refusal(kind: str) -> None:
    """Record on this request's line that it was refused, and why (an exception class name)."""
    if has_request_context():
        g.refused = kind


def install(app) -> None:
    """Give every request an id and log it once done. Install first: before any check can refuse."""

    @app.before_request
    def start():
        given = request.headers.get(HEADER, "")
        g.request_id = given if well_formed(given) else new_request_id()
        g.request_started = time.perf_counter()

    @app.after_request
    def finish(response):
        ident = g.get("request_id") or new_request_id()
        response.headers[HEADER] = ident
        log_line(request.method, _route(), response.status_code, lambda: _fields(response, ident))
        return response


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "(no route)"


def _dataset() -> str | None:
    arguments = request.view_args or {}
    for name in _DATASET_PARAMETERS:
        value = arguments.get(name)
        if isinstance(value, str):
            return value.partition("@")[0]
    return None


def _fields(response, ident: str) -> dict:
    started = g.get("request_started")
    principal = g.get("principal")
    return {
        "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "bytes": response.content_length,
        "dataset": _dataset(),
        "user": principal.name if principal is not None else None,
        "client": request.remote_addr,
        "refused": g.get("refused"),
        "id": ident,
    }
