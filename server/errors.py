"""Every error leaves as JSON ``{"error": ..., "message": ...}`` with a 4xx/5xx status."""

from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from segmentation.budget import OverBudget
from segmentation.storage import CorruptStoredData

from .hosts import HostNotAllowed
from .request_input import BadInput, TooLarge
from .request_log import request_id

errors_log = logging.getLogger("axonlink.errors")


def json_error(status: int, message: str, **headers):
    """The one error answer: ``{"error", "message", "request_id"}`` (the id of the request's log line)."""
    body = {"error": _reason(status), "message": message}
    ident = request_id()
    if ident:
        body["request_id"] = ident
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# Errors of the request that the whole app maps the same way (blueprints map their own domain errors).
STATUS_OF = {HostNotAllowed: 400, BadInput: 400, TooLarge: 413, OverBudget: 503}
EXTRA_HEADERS = {OverBudget: {"Retry-After": "60"}}


def install(app) -> None:
    for error_class, status in STATUS_OF.items():
        app.register_error_handler(
            error_class,
            lambda error, status=status: json_error(status, str(error), **EXTRA_HEADERS.get(type(error), {})),
        )

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
