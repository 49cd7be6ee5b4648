"""One family of errors: every error a request or a command can cause says what kind it is.

Domain errors subclass one of a few kinds, each carrying the HTTP status it means, and the server
maps the whole family to JSON answers in one place (:mod:`server.errors`), as PyChunkedGraph's
exceptions carry their status codes. The kinds also subclass the builtin they refine
(``ValueError``, ``LookupError``, ``PermissionError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class AxonlinkError(Exception):
    """Base of the family. ``status``: the HTTP status; ``headers``: extra answer headers;
    ``refusal``: the request was refused for who asked or from where (logged as such)."""

    status = 500
    headers: dict[str, str] = {}
    refusal = False

    def message(self) -> str:
        """The text for the caller (a LookupError's single argument without KeyError's quotes)."""
        return str(self.args[0]) if len(self.args) == 1 else str(self)


class Invalid(AxonlinkError, ValueError):
    """The input is wrong: a malformed id, point, timestamp, file row, query or body."""

    status = 400


class Unauthenticated(AxonlinkError):
    """Who is asking is unknown or their token is not valid."""

    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="axonlink"'}
    refusal = True


class Refused(AxonlinkError, PermissionError):
    """The caller is known but may not do this (or asks from a place that may not)."""

    status = 403
    refusal = True


class NotFound(AxonlinkError, LookupError):
    """No such thing (or one the caller may not know exists)."""

    status = 404


class Conflict(AxonlinkError):
    """The request contradicts the state of things (e.g. a volume and its graph disagree)."""

    status = 409


class TooLarge(AxonlinkError, ValueError):
    """More than one request may ask for or send."""

    status = 413


class Unavailable(AxonlinkError):
    """Not now: over the time budget, or a graph being replaced; worth retrying."""

    status = 503
