"""Reading what a request sends, once and safely: JSON bodies, JSON-valued parameters, flags, moments.

Every JSON a client sends goes through here, so every route answers the same clear 400 for
a body that is not JSON, not the expected shape, or nested so deeply that parsing it would
exhaust the interpreter's stack (``json.loads`` raises RecursionError, not ValueError, which
would otherwise become a 500).
"""

from __future__ import annotations

import json

from flask import request

from segmentation import errors
from segmentation.errors import Invalid


class BadInput(Invalid):
    """A request whose body or parameters cannot be read: a 400 with this message."""


class TooLarge(errors.TooLarge):
    """More items in one request than its route takes (its ``caps`` in the route table): a 413."""


def cap_of(what: str) -> int:
    """The most ``what`` one request to the current route may send (declared in the route table)."""
    from . import endpoints

    spec = endpoints.BY_ENDPOINT[(request.endpoint or "").rpartition(".")[2]]
    found = spec.cap(what)
    if found is None:
        raise LookupError(f"route {spec.rule} declares no cap for {what!r}")
    return found


def capped(items, what: str):
    """``items`` if there are no more of them than the route takes; :class:`TooLarge` otherwise."""
    most = cap_of(what)
    if len(items) > most:
        raise TooLarge(f"at most {most:,} {what} per request (got {len(items):,}); split the request")
    return items


def parse_json(text: str | bytes, what: str = "the request body"):
    try:
        return json.loads(text)
    except RecursionError:
        raise BadInput(f"{what} is JSON nested too deeply") from None
    except ValueError as error:
        raise BadInput(f"{what} is not valid JSON: {error}") from None


def json_body(example: str | None = None, *, required: bool = True):
    """The request body as JSON (read once; cached for the view to read again)."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise BadInput("the request body must be JSON" + (f" like {example}" if example else ""))
        return None
    return parse_json(raw)


def json_object(example: str) -> dict:
    """The request body as a JSON object (``example`` shows its shape in the error message)."""
    body = json_body(example)
    if not isinstance(body, dict):
        raise BadInput(f"the request body must be a JSON object like {example}")
    return body


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def flag(name: str, default: bool = False) -> bool:
    """A boolean query parameter, one dialect everywhere: 1/true/yes/on or 0/false/no/off (any case);
    absent or empty: ``default``; anything else: a 400 saying so."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise BadInput(f"{name} must be true or false, not {value!r}")


def moment(name: str = "t"):
    """A moment named by a query parameter (Unix seconds or ISO 8601); absent, empty, ``None`` or
    ``null`` (what some clients send for "now"): None. A bad one is a 400 (InvalidTimestamp)."""
    from segmentation.timestamps import parse_timestamp

    value = request.args.get(name)
    return None if value in (None, "", "None", "null") else parse_timestamp(value)
