"""Every error leaves as JSON ``{"error", "message", "request_id"}`` with a 4xx/5xx status, or, for a
browser asking for a page (``Accept`` naming text/html before JSON), as a page saying the same with a
way on (``error.html``). API clients (``*/*``, JSON) keep JSON.

The error family (:mod:`segmentation.errors`) is mapped here, once: each error carries its
status and headers. Corrupt stored data and unexpected failures are logged for the operator.
"""

from __future__ import annotations

import logging

from flask import has_request_context, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from segmentation.errors import AxonlinkError
from segmentation.storage import CorruptStoredData

from .request_log import note_refusal, request_id

errors_log = logging.getLogger("axonlink.errors")


def json_error(status: int, message: str, **headers):
    """The one error answer: ``{"error", "message", "request_id"}`` (the id of the request's log line)."""
    body = {"error": _reason(status), "message": message}
    ident = request_id()
    if ident:
        body["request_id"] = ident
    response = _page(status, body) if wants_page() else None
    if response is None:
        response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def wants_page() -> bool:
    """Whether the caller is a browser asking for a page: text/html named, and preferred to JSON."""
    if not has_request_context():
        return False
    accepted = request.accept_mimetypes
    named = any(value == "text/html" for value, _ in accepted)
    return named and accepted.best_match(("application/json", "text/html")) == "text/html"


def _page(status: int, body: dict):
    try:
        html = render_template(
            "error.html",
            status=status,
            reason=body["error"],
            message=body["message"],
            request_id=body.get("request_id"),
        )
    except Exception:  # noqa: BLE001 - a page that cannot be drawn: the JSON answer says the same
        errors_log.exception("the error page could not be drawn", extra={"fields": {"id": request_id()}})
        return None
    response = make_response(html)
    response.headers["Vary"] = "Accept"  # the same URL answers JSON to API clients
    return response


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app) -> None:
    @app.errorhandler(AxonlinkError)
    def domain_error(error: AxonlinkError):
        """Every error of the family, mapped once: its status, its message, its headers."""
        if error.refusal:
            note_refusal(type(error).__name__)
        return json_error(error.status, error.message(), **error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return json_error(error.code or 500, error.description or error.name)

    @app.errorhandler(CorruptStoredData)
    def corrupt_stored_data(error: CorruptStoredData):
        errors_log.error("%s", error, extra={"fields": {"id": request_id()}})  # the reason, for the operator
        return json_error(
            500, f"the stored file {error.key!r} is corrupt and cannot be served; the server's log has the reason"
        )

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        errors_log.exception("unhandled error", extra={"fields": {"id": request_id()}})
        return json_error(500, "internal server error")
