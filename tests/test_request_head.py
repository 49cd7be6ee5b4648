"""How the poller finds the end of a request: the head, a Content-Length body, a chunked body."""

from __future__ import annotations

import pytest

from server import request_head
from server.request_head import ChunkedBody, Framing, framing


def test_head_end_after_empty_lines_and_across_reads():
    data = bytearray(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r")
    skip = request_head.empty_lines(data)
    assert skip == 4
    del data[:skip]
    assert request_head.head_end(data) == -1
    scanned = len(data) - 3
    data += b"\nGET /next"
    assert request_head.head_end(data, scanned) == len(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_bare_lf_and_long_request_lines_are_seen_before_the_head_ends():
    assert request_head.has_bare_lf(b"GET / HTTP/1.1\nHost: x")
    assert not request_head.has_bare_lf(b"GET / HTTP/1.1\r\nHost: x\r")
    assert request_head.has_bare_lf(b"GET / HTTP/1.1\r\nA: b\n", 15)  # the lookbehind sees the byte before
    assert request_head.request_line_too_long(b"GET /" + b"a" * 100, 50)
    assert not request_head.request_line_too_long(b"GET /" + b"a" * 40, 50)
    assert not request_head.request_line_too_long(b"GET /a HTTP/1.1\r\n" + b"b" * 100, 50)


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Framing()),
        (b"POST / HTTP/1.1\r\ncontent-LENGTH:  12 \r\n\r\n", Framing(length=12)),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Framing(chunked=True)),
        (
            b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n",
            Framing(length=5, expects_continue=True),
        ),
        # HTTP/1.0 clients do not wait for 100 Continue, and gunicorn ignores the field for them
        (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", Framing(length=5)),
        # framing the parser refuses (or answers 417 to): never waited for
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", request_head.PARSER_DECIDES),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", request_head.PARSER_DECIDES),
        (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", request_head.PARSER_DECIDES),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", request_head.PARSER_DECIDES),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", request_head.PARSER_DECIDES),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            request_head.PARSER_DECIDES,
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", request_head.PARSER_DECIDES),
        (b"POST / HTTP/1.1\r\nExpect: something\r\n\r\n", request_head.PARSER_DECIDES),
    ],
)
def test_framing(head, expected):
    assert framing(head) == expected


def test_without_expect_keeps_everything_else():
    head = b"POST http://x:80/ HTTP/1.1\r\nHost: x\r\nexpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert request_head.without_expect(head) == b"POST http://x:80/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"


def test_chunked_body_end_as_bytes_arrive():
    body = b"5;name=value\r\nhello\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\nTrailer: yes\r\n\r\n"
    pipelined = b"GET / HTTP/1.1\r\n\r\n"
    scan = ChunkedBody(0, line_limit=100, trailer_limit=100)
    seen = []
    for end in range(1, len(body) + 1):
        seen.append(scan.end(body[:end]))
    assert seen[:-1] == [ChunkedBody.NEED_MORE] * (len(body) - 1)
    assert seen[-1] == len(body)
    assert ChunkedBody(0, 100, 100).end(body + pipelined) == len(body)
    assert scan.size == 5 + 16
    assert ChunkedBody(0, 100, 100).end(b"0\r\n\r\n") == 5


@pytest.mark.parametrize(
    "data",
    [
        b"zz\r\nhello\r\n",  # not a size
        b"5\r\nhelloXX0\r\n\r\n",  # chunk data not followed by CRLF
        b"5" * 120,  # a size line longer than the limit
        b"0\r\n" + b"T: " + b"t" * 200,  # a trailer section longer than the limit
    ],
)
def test_chunked_body_that_the_parser_refuses(data):
    assert ChunkedBody(0, line_limit=100, trailer_limit=100).end(data) == ChunkedBody.MALFORMED
