"""Requests answered in the worker's poller, without a thread: the fast path's, read from the raw head.

Why: with the fast path (``server.fast_path``) answering a stored chunk in about 60 µs, what is
left of a request's cost is the way to it and back: the poller hands the connection to a thread
(a future, a pipe to wake the poller again afterwards, a lock), gunicorn parses the head a second
time and builds a WSGI environ and a response object, the thread writes, and the poller takes the
connection back. On two cores that held `axonlink serve` to about 4,400 requests/s for one
chunk, a tenth of nginx (docs/performance.md, "Serving speed"). The poller already has the whole
head in memory (``server.worker`` reads every request before a thread may take it), so for the
requests the fast path takes it can ask the fast path directly and write the answer itself.

This module turns a raw head into the few WSGI keys the fast path reads and the fast path's
answer into HTTP/1.1 bytes, as gunicorn would write them (status line, ``Server``, ``Date``,
``Connection``, then the answer's headers). It is strict on purpose: anything but a plain
``GET <path> HTTP/1.1`` with well-formed, distinct header fields and no body (a query, a
percent-escape, an underscore in a field name, a repeated field, ``Expect``, ``Upgrade``, an
unusual ``Connection``, HTTP/1.0, a request from a trusted proxy) returns None, and gunicorn's
parser and Flask answer it as before. What could make the two paths disagree is therefore never
taken here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from gunicorn import SERVER
from gunicorn.util import http_date

_REQUEST_LINE = re.compile(rb"GET (/[!$&'()*+,\-./0-9:;=@A-Z_a-z~]*) HTTP/1\.1")
# A field name without underscores (gunicorn drops those fields) and a value of visible ASCII.
_FIELD = re.compile(rb"([!#$%&'*+\-.^`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?[ \t]*")
_DECLINED_FIELDS = frozenset(
    {"HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "HTTP_EXPECT", "HTTP_UPGRADE", "HTTP_TE", "HTTP_TRAILER"}
    # gunicorn takes the scheme from these (from its forwarded_allow_ips): its environ would say https
    | {"HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTOCOL", "HTTP_X_FORWARDED_SSL"}
)
MAX_FIELDS = 64
KNOWN_FIELDS = 256  # header sections remembered per process (see environ_from_head)
KNOWN_FIELDS_BYTES = 2048

#: The fast path's answer: (status line, headers, body), or None to leave the request to Flask.
Answer = Callable[[dict], "tuple[str, list[tuple[str, str]], bytes] | None"]


class QuickAnswers:
    """``(head, client, close) -> (response bytes, close)`` or None; see the module docstring."""

    def __init__(self, answer: Answer, trusted_proxies: tuple[str, ...] = ()):
        self.answer = answer
        self.trusted = frozenset(trusted_proxies)
        self._date_second = -1
        self._date = ""
        self._known_fields: dict = {}

    def __call__(self, head: bytes, client, must_close: bool) -> tuple[bytes, bool] | None:
        found = environ_from_head(head, client, self._known_fields)
        if found is None:
            return None
        environ, close = found
        if environ["REMOTE_ADDR"] in self.trusted:
            return None  # its X-Forwarded-* headers change who asks: TrustedProxies and Flask decide
        try:
            answer = self.answer(environ)
        except Exception:  # noqa: BLE001 - anything unexpected: a thread and Flask give the canonical answer
            logging.getLogger(__name__).debug("declined in the poller", exc_info=True)
            return None
        if answer is None:
            return None
        close = close or must_close
        status, headers, body = answer
        lines = [
            f"HTTP/1.1 {status}",
            f"Server: {SERVER}",
            f"Date: {self._http_date()}",
            "Connection: close" if close else "Connection: keep-alive",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + body, close

    def _http_date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date, self._date_second = http_date(now), now
        return self._date


def environ_from_head(head: bytes, client, known_fields: dict | None = None) -> tuple[dict, bool] | None:
    """The WSGI keys of a plain GET (and whether it asks to close the connection), or None.

    ``known_fields``: header sections already read, by their bytes. A client sends the same fields
    with every request of a connection (only the request line changes), so each section is read
    once; at most ``KNOWN_FIELDS`` sections of at most ``KNOWN_FIELDS_BYTES`` are kept, all
    forgotten when full (a client inventing fields costs a parse each time, as without this)."""
    if not isinstance(client, tuple) or not client:
        return None
    line, _, section = head.partition(b"\r\n")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return None
    found = None if known_fields is None else known_fields.get(section)
    if found is None:
        found = _fields(section)
        if known_fields is not None and len(section) <= KNOWN_FIELDS_BYTES:
            if len(known_fields) >= KNOWN_FIELDS:
                known_fields.clear()  # full: start again, so that the clients of now are remembered
            known_fields[section] = found
    if found is _DECLINED:
        return None
    fields, close = found
    environ = dict(fields)
    environ.update(
        REQUEST_METHOD="GET",
        PATH_INFO=match.group(1).decode("ascii"),
        QUERY_STRING="",
        SERVER_PROTOCOL="HTTP/1.1",
        REMOTE_ADDR=str(client[0]),
    )
    environ["wsgi.url_scheme"] = "http"
    return environ, close


_DECLINED = ("declined",)


def _fields(section: bytes):
    """(the HTTP_* keys, whether the client asks to close) of a header section (its lines and the
    empty line ending the head), or _DECLINED."""
    lines = section.split(b"\r\n")
    if len(lines) > MAX_FIELDS + 2 or lines[-2:] != [b"", b""]:
        return _DECLINED
    fields: dict = {}
    for line in lines[:-2]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return _DECLINED
        key = "HTTP_" + field.group(1).decode("ascii").upper().replace("-", "_")
        if key in fields or key in _DECLINED_FIELDS:
            return _DECLINED
        fields[key] = (field.group(2) or b"").decode("ascii")
    connection = fields.get("HTTP_CONNECTION", "keep-alive").lower()
    if connection not in ("keep-alive", "close"):
        return _DECLINED
    return fields, connection == "close"
