"""What the server's poller must know about an HTTP/1 request before a thread may take it.

The poller (``server.worker``) reads each request into memory until it is
complete, so that no thread ever waits on a slow client. For that it needs
only the request's framing: where the head ends, and where the body ends
(a Content-Length, or the last chunk of a chunked body). This module answers
exactly that and judges nothing else: gunicorn's parser reads and validates
the request afterwards, and a head whose framing it will refuse or decide on
its own (two lengths, an unknown transfer coding, an expectation other than
``100-continue``) is handed on for the parser to answer, not refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"
#: A line feed not preceded by a carriage return: gunicorn refuses such a head
#: (RFC 9112 section 2.2) at once, so waiting for its end would be pointless.
BARE_LF = re.compile(rb"(?<!\r)\n")
#: Longer Content-Length values cannot be a body anyone accepts (and int()
#: of thousands of digits is slow); the parser refuses or limits them.
MAX_LENGTH_DIGITS = 18
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def empty_lines(data: bytearray | bytes) -> int:
    """How many bytes of empty lines (CRLF) come before the request line.

    RFC 9112 section 2.2: a server should ignore at least one; clients send
    one after a POST body now and then.
    """
    count = 0
    while data.startswith(b"\r\n", count):
        count += 2
    return count


def head_end(data: bytearray | bytes, scan_from: int = 0) -> int:
    """The offset just past the head's closing empty line, or -1 while it has not arrived.

    ``scan_from`` skips what an earlier call already searched (keep it three
    bytes short of the old end, where a terminator may have begun).
    """
    found = data.find(HEAD_END, scan_from)
    return -1 if found < 0 else found + len(HEAD_END)


def has_bare_lf(data: bytearray | bytes, scan_from: int = 0) -> bool:
    return BARE_LF.search(data, scan_from) is not None


def request_line_too_long(data: bytearray | bytes, limit: int) -> bool:
    """Whether the request line is already longer than ``limit`` with no end in sight."""
    return data.find(b"\r\n", 0, limit + 2) < 0 and len(data) > limit + 1


@dataclass(frozen=True)
class Framing:
    """How the body after a head is delimited, as far as waiting for it goes."""

    length: int = 0  # Content-Length (0: no body)
    chunked: bool = False
    expects_continue: bool = False  # the client waits for "100 Continue" before sending the body
    parser_decides: bool = False  # framing the parser refuses or handles itself: do not wait for a body


PARSER_DECIDES = Framing(parser_decides=True)


def framing(head: bytes) -> Framing:
    """The framing of the body that follows ``head`` (the request line and fields, up to the empty line).

    Mirrors gunicorn's ``Message.set_body_reader`` closely enough to wait for
    the right bytes: one Content-Length, or a Transfer-Encoding whose last
    coding is chunked (HTTP/1.1, no Content-Length). ``Expect: 100-continue``
    counts on HTTP/1.1 only, which is when gunicorn would answer it.
    """
    lines = head.split(b"\r\n")
    http11 = lines[0].endswith(b" HTTP/1.1")
    length = codings = None
    expects = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > MAX_LENGTH_DIGITS:
                return PARSER_DECIDES
            length = int(value)
        elif name == b"transfer-encoding":
            if codings is not None:
                return PARSER_DECIDES
            codings = [coding.strip(b" \t") for coding in value.lower().split(b",")]
        elif name == b"expect":
            if value.lower() != b"100-continue":
                return PARSER_DECIDES  # 417
            expects = http11
    if codings is not None:
        if length is not None or not http11 or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            return PARSER_DECIDES
        return Framing(chunked=True, expects_continue=expects)
    return Framing(length=length or 0, expects_continue=expects)


def without_expect(head: bytes) -> bytes:
    """``head`` without its Expect fields: for a request whose ``100 Continue`` the poller already sent."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line.partition(b":")[0].lower() != b"expect"]
    return b"\r\n".join(kept)


class ChunkedBody:
    """Finds where a chunked body ends as its bytes arrive, without decoding it (RFC 9112 section 7.1).

    ``end(data)`` is the offset just past the body's trailer section,
    ``NEED_MORE``, or ``MALFORMED`` (a chunk-size line or trailer section that
    is not one, or longer than gunicorn's limits: its parser refuses it
    without reading on). ``size`` counts the chunk data seen whole so far.
    """

    NEED_MORE, MALFORMED = -1, -2

    def __init__(self, start: int, line_limit: int, trailer_limit: int):
        self.pos = start  # where the next chunk-size line starts
        self.size = 0
        self.line_limit = line_limit
        self.trailer_limit = trailer_limit

    def end(self, data: bytearray | bytes) -> int:
        while True:
            line_end = data.find(b"\r\n", self.pos, self.pos + self.line_limit + 2)
            if line_end < 0:
                return self.MALFORMED if len(data) - self.pos > self.line_limit + 1 else self.NEED_MORE
            size_field = bytes(data[self.pos : line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not CHUNK_SIZE.fullmatch(size_field):
                return self.MALFORMED
            size = int(size_field, 16)
            if size == 0:  # the last chunk; trailer fields, if any, then an empty line
                end = data.find(HEAD_END, line_end, line_end + self.trailer_limit + 4)
                if end >= 0:
                    return end + len(HEAD_END)
                return self.MALFORMED if len(data) - line_end > self.trailer_limit + 3 else self.NEED_MORE
            following = line_end + 2 + size + 2
            if len(data) < following:
                return self.NEED_MORE
            if data[following - 2 : following] != b"\r\n":
                return self.MALFORMED
            self.size += size
            self.pos = following
