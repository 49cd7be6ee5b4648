"""Every error leaves as JSON ``{"error": ..., "message": ...}`` with a 4xx/5xx status."""
from __future__ import annotations

from flask import jsonify
from werkzeug.exceptions import HTTPException

from segmentation.budget import OverBudget
from segmentation.storage import CorruptStoredData

from .hosts import HostNotAllowed
from .request_input import BadInput, TooLarge


def json_error(status: int, message: str, **headers):
    response = jsonify({"error": _reason(status), "message": message})
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
        app.register_error_handler(error_class, lambda error, status=status: json_error(
            status, str(error), **EXTRA_HEADERS.get(type(error), {})))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return json_error(error.code or 500, error.description or error.name)

    @app.errorhandler(CorruptStoredData)
    def corrupt_stored_data(error: CorruptStoredData):
        app.logger.error("%s", error)  # the reason, for the operator; the client learns which file
        return json_error(500, f"the stored file {error.key!r} is corrupt and cannot be served; "
                               "the server's log has the reason")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error")
        return json_error(500, "internal server error")
