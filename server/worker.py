"""gunicorn's threaded worker, changed so that a thread only ever gets a request that has arrived whole.

Why: gunicorn 27's ``gthread`` worker hands each new connection to a thread,
which waits up to 5 s for a first byte and then blocks in the parser until the
request head is complete; kept-alive connections and pipelined leftovers go
straight to a thread. A few hundred clients sending one header line every few
seconds (slowloris) hold every thread, and the server stops answering
everybody. Here:

- **Intake.** Every connection passes through ``enqueue_req`` before a thread
  takes it: a new one, a kept-alive one that became readable, one with
  pipelined bytes left over. Its bytes are read non-blocking in the poller
  (the worker's main thread) into a buffer until the head is complete and the
  body too (a Content-Length body, or a chunked one up to its last chunk; a
  client expecting ``100 Continue`` gets it from the poller). Only then does
  a thread get the connection, with those bytes as the parser's source
  (:class:`_Prefetched`).
- **Deadlines.** The head must arrive within ``header_timeout`` of the wait's
  start, the body within ``body_timeout`` plus its size at ``body_min_rate``.
  A connection that misses its deadline gets a 408 (or, if it sent nothing,
  nothing) and is closed.
- **Limits.** A head longer than gunicorn's own limits is answered 414/431 and
  closed, never buffered without bound. At most ``waiting_per_address``
  connections from one client address (IPv6: one /64) wait for their request
  per worker; further ones are closed at once.
- **Bodies the poller does not buffer** — larger than the application
  accepts (it refuses them unread), or than the worker's budget for buffered
  bodies: the connection goes to a thread after its head, and the thread's
  reads end at the body deadline with a 408. A body the application leaves
  unread is not waited for after the response (gunicorn's drain would hold
  the thread up to 5 s): the connection closes.
- **Closing.** gunicorn closes a finished connection "gracefully" (write side
  shut, then read until the peer closes, RFC 9112 section 9.6) in the main
  thread with the socket blocking, up to 2 s per connection: a client that
  never closes stalls the whole worker. Here that drain runs in the poller.

TLS, the PROXY protocol, uwsgi and HTTP/2 prior knowledge are left to
gunicorn's own path (axonlink serves plain HTTP/1.1 and uses none of them).

gunicorn internals this relies on (hence ``gunicorn>=27,<28`` in setup.cfg):
``ThreadWorker.enqueue_req`` is the one way to the thread pool (called by
``accept``, ``on_client_socket_readable``, ``on_pending_socket_readable`` and
``finish_request``); ``accept`` (copied here to make our connection class),
``nr_conns``, ``poller``, ``finish_request`` and ``murder_pending`` /
``murder_keepalived`` run in the main thread, the latter two once per loop
turn and at shutdown; ``TConn.init()`` makes an HTTP/1 ``RequestParser``
whose ``SocketUnreader`` reads through ``unreader.sock.recv`` and has
``take_buffered``/``unread``; ``Parser.finish_body`` bounds its drain with
``unreader.sock.settimeout`` and stops at a ``TimeoutError``; a ``Body`` whose
read raised makes the connection close after the response; the head limits
of ``gunicorn.http.message``; ``STOP_KEEPALIVE_LINGER``.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import selectors
import socket
import ssl
import time
from collections import Counter, deque
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import NamedTuple

from gunicorn import util
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker
from werkzeug.exceptions import RequestTimeout

from . import request_head

HEAD_RECV = 64 * 1024
BODY_RECV = 1024 * 1024  # at most, for a body of known length
CHUNKED_RECV = 256 * 1024
#: A lingering close reads at most this much before closing anyway (as gunicorn's).
LINGER_MAX_DRAIN = 64 * 1024
#: How long accepting pauses when the process is out of file descriptors.
ACCEPT_PAUSE = 0.5
#: How often a worker logs what it refused (one line, not one per connection).
REPORT_EVERY = 10.0
# The heartbeat the arbiter checks against its timeout (30 s by default) is a file's time, written
# once per loop turn by gunicorn: a system call per request when the poller answers each one.
HEARTBEAT_EVERY = 1.0
# gunicorn asks getppid() once per loop turn (whether the arbiter is still its parent): with the
# poller answering, a system call per request; once a second tells as well that the arbiter is gone.
PARENT_CHECK_EVERY = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How long and how much a client may take to send its request (per worker process)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 64 * 1024  # bytes per second the body deadline grants on top
    max_body: int = 64 * 1024 * 1024  # the largest body the poller buffers (the application's limit)
    body_budget: int = 256 * 1024 * 1024  # all bodies buffered at once
    waiting_per_address: int = 64
    linger: float = 2.0  # how long a closing connection is drained

    def __post_init__(self):
        for name in ("header_timeout", "body_timeout", "body_min_rate", "linger"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', ' ')} must be positive, not {getattr(self, name)}")
        if self.waiting_per_address < 1:
            raise ValueError("at least one connection per address must be allowed to wait")

    def body_deadline(self, start: float, length: int) -> float:
        return start + self.body_timeout + length / self.body_min_rate


class RequestBodyTimeout(RequestTimeout):
    """Raised to the application when a body it reads has not arrived by its deadline.

    An HTTP error rather than an ``OSError``: werkzeug takes any ``OSError``
    from the input stream for a client that went away and answers 400.
    """

    description = "The request body did not arrive in time."


class HeadLimits(NamedTuple):
    """gunicorn's bounds on a request head, in bytes (``gunicorn.http.message``)."""

    line: int  # the request line
    field: int  # one field line (and one chunk-size line)
    fields: int  # all field lines (and a chunked body's trailer section)

    @property
    def head(self) -> int:
        return self.line + 2 + self.fields

    @classmethod
    def of(cls, cfg) -> HeadLimits:
        line = cfg.limit_request_line
        if line < 0 or line >= MAX_REQUEST_LINE:
            line = MAX_REQUEST_LINE
        elif line == 0:  # "unlimited": the bound gunicorn's C parser uses
            line = 1024 * 1024
        count = cfg.limit_request_fields
        if count <= 0 or count > MAX_HEADERS:
            count = MAX_HEADERS
        field = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        return cls(line, field, count * (field + 2) + 4)


def address_key(client) -> str:
    """Whose connection this is, for the per-address limit: the IPv4 address, or the IPv6 /64."""
    if not isinstance(client, tuple) or not client:
        return ""  # a Unix socket: one local client
    host = client[0]
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _response(status: str, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (
        f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


TIMED_OUT = _response("408 Request Timeout", "the request did not arrive in time")
URI_TOO_LONG = _response("414 URI Too Long", "request line too long")
HEAD_TOO_LARGE = _response("431 Request Header Fields Too Large", "request head too large")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Prefetched:
    """The parser's byte source for one request: what the poller already read, then the socket until a deadline.

    Installed as the ``SocketUnreader``'s socket. A request the poller read
    whole is served from memory alone. Otherwise (a body too large to buffer)
    the application's reads of the rest wait on the socket until the body
    deadline, then get a 408. gunicorn's drain of a body the application left
    unread (the one caller that sets a timeout of its own) takes only what has
    already arrived: waiting for the rest would hold the thread for a client
    that may never send it, so the connection closes instead.
    """

    __slots__ = ("sock", "_data", "_offset", "_deadline")

    def __init__(self, sock, data, deadline: float):
        self.sock = sock
        self._data = memoryview(data)
        self._offset = 0
        self._deadline = deadline

    def recv(self, size: int) -> bytes:
        if self._offset < len(self._data):
            chunk = self._data[self._offset : self._offset + size].tobytes()
            self._offset += len(chunk)
            return chunk
        prior = self.sock.gettimeout()
        if prior is not None:
            return self._recv_arrived(size, prior)
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestBodyTimeout()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            raise RequestBodyTimeout() from None
        finally:
            self.sock.settimeout(None)

    def _recv_arrived(self, size: int, prior) -> bytes:
        """For gunicorn's drain: bytes already here, or a ``TimeoutError`` (which ends the drain)."""
        self.sock.settimeout(0.0)
        try:
            return self.sock.recv(size)
        except BlockingIOError:
            raise TimeoutError("the rest of the unread request body has not arrived") from None
        finally:
            self.sock.settimeout(prior)

    def gettimeout(self):
        return self.sock.gettimeout()

    def settimeout(self, value) -> None:
        self.sock.settimeout(value)

    def rest(self) -> bytes:
        """What the parser has not taken (the start of a pipelined request); the source is empty after."""
        rest = self._data[self._offset :].tobytes()
        self._data, self._offset = memoryview(b""), 0
        return rest


class _Conn(TConn):
    """gunicorn's connection, whose graceful close is left to the poller instead of blocking it."""

    def __init__(self, cfg, sock, client, server, close_lingering, keepalive: float):
        super().__init__(cfg, sock, client, server)
        self._close_lingering = close_lingering
        self._keepalive = keepalive

    def set_timeout(self):
        """gunicorn's, with the keep-alive seconds read once per worker: each ``cfg.<setting>`` goes
        through ``Config.__getattr__`` (a dict lookup and a method call), on every request."""
        self.timeout = time.monotonic() + self._keepalive

    def close(self, graceful=False):
        if graceful and not isinstance(self.sock, ssl.SSLSocket):
            self._close_lingering(self.sock)
        else:
            super().close(graceful)


class _Waiting:
    """A connection whose request has not arrived whole: what came so far and until when the rest may take."""

    __slots__ = (
        "conn",
        "data",
        "deadline",
        "queued",
        "address",
        "scan_from",
        "head_end",
        "needed",
        "chunked",
        "body_start",
        "reserved",
        "done",
    )

    def __init__(self, conn, data: bytearray, deadline: float):
        self.conn = conn
        self.data = data
        self.deadline = deadline
        self.queued = None  # the deadline last pushed on the worker's heap
        self.address = None
        self.scan_from = 0
        self.head_end = -1
        self.needed = -1  # bytes the poller waits for (head, and a Content-Length body if buffered)
        self.chunked = None  # a request_head.ChunkedBody while the poller waits for a chunked body
        self.body_start = 0.0
        self.reserved = 0  # body bytes counted against the worker's budget
        self.done = False  # handed to a thread, or closed


_WAIT, _READY, _DONE = object(), object(), object()


class _Sending:
    """An answer the poller is writing to a client that does not take it all at once."""

    __slots__ = ("conn", "rest", "close", "pipelined", "deadline")

    def __init__(self, conn, rest: memoryview, close: bool, pipelined: bytes, deadline: float):
        self.conn = conn
        self.rest = rest
        self.close = close
        self.pipelined = pipelined  # bytes of the client's next request(s), read with this one
        self.deadline = deadline


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker that reads requests in its poller (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits: ConnectionLimits = getattr(self.app, "connection_limits", None) or ConnectionLimits()
        self.head_limits = HeadLimits.of(self.cfg)
        self._guarded = (
            not self.cfg.is_ssl and self.cfg.proxy_protocol == "off" and getattr(self.cfg, "protocol", "http") == "http"
        )
        # settings read on every request, read once here (gunicorn's Config.__getattr__ and its HTTP/2
        # check took an eighth of a worker's time during a CloudVolume cutout)
        self._keepalive = self.cfg.keepalive
        self._h2_prior_knowledge = self.cfg.http2_cleartext in ("prior-knowledge", "both")
        self._waiting: dict = {}  # connection -> _Waiting
        self._per_address: Counter = Counter()
        self._deadlines: list = []  # heap of (deadline, n, _Waiting); stale entries are skipped
        self._numbers = count()
        self._buffered_bodies = 0
        self._lingering: dict = {}  # socket -> bytes drained
        self._linger_queue: deque = deque()  # (deadline, socket), in deadline order
        self._max_lingering = max(64, self.worker_connections // 4)
        self._accept_paused_until = 0.0
        self._stopping = False
        self._refused = Counter()
        self._reported = time.monotonic()
        # ``(head, client, must_close) -> (response, close) | None``: see server.quick_answers
        self._quick = getattr(self.app, "quick_answers", None)
        # a kept-alive connection's next request may be answered straight from its first read (_answer_whole)
        self._quick_lane = self._quick is not None and self._guarded and not self._h2_prior_knowledge
        self._sending: dict = {}  # socket -> _Sending
        self._unsent = 0  # bytes of answers waiting in _sending (bounded by the body budget)
        self._heartbeat = 0.0
        self._parent_checked = 0.0

    def notify(self):
        now = time.monotonic()
        if now - self._heartbeat >= HEARTBEAT_EVERY:
            self._heartbeat = now
            super().notify()

    def is_parent_alive(self):
        now = time.monotonic()
        if now - self._parent_checked < PARENT_CHECK_EVERY:
            return True
        self._parent_checked = now
        return super().is_parent_alive()

    # -- accepting ------------------------------------------------------------------------------------

    def accept(self, listener):
        """gunicorn's ``accept``, making our connection class, and pausing instead of dying without descriptors."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log.warning("Cannot accept connections for now: %s", e.strerror)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self.set_accept_enabled(False)
            elif e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(
            _Conn(self.cfg, client_sock, client_addr, listener.getsockname(), self._close_lingering, self._keepalive)
        )

    def set_accept_enabled(self, enabled):
        if enabled and time.monotonic() < self._accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    # -- intake ---------------------------------------------------------------------------------------

    def enqueue_req(self, conn):
        """Every connection passes here on its way to a thread: read its request in the poller first."""
        if (
            not self._guarded
            or conn.is_http2
            or (self._h2_prior_knowledge and negotiation.prior_knowledge_allowed(self.cfg, conn.client))
        ):
            self._release(conn.sock)
            super().enqueue_req(conn)
            return
        self._intake(conn, b"")

    def _intake(self, conn, arrived: bytes) -> None:
        """Read the connection's request in the poller (``arrived``: its first bytes, already read)."""
        waiting = _Waiting(conn, bytearray(), time.monotonic() + self.limits.header_timeout)
        try:
            if conn.sock.gettimeout() != 0.0:  # a system call each time: kept-alive sockets are non-blocking already
                conn.sock.setblocking(False)
            if conn.parser is not None:
                waiting.data += conn.parser.unreader.take_buffered()
            waiting.data += arrived
            state = self._examine(waiting) if waiting.data else _WAIT
            if state is _WAIT:
                if not self._receive(waiting):
                    return
                state = self._examine(waiting)
            self._act(waiting, state)
        except Exception:  # noqa: BLE001 - a bug here must cost one connection, not the worker and its requests
            self._abandon(waiting)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request is arriving: read it here, its socket left registered.

        gunicorn's version unregisters the socket, and answering in the poller registered it again:
        two system calls a request, most of what separated a kept-alive request from nginx's. What
        arrived is read at once: a whole head the poller answers takes the quick lane
        (:meth:`_answer_whole`), anything else the intake, with those bytes.
        """
        try:
            self.keepalived_conns.remove(conn)
        except ValueError:  # closed as expired in this same turn of the loop
            return
        if not self._quick_lane or not self.alive or conn.is_http2 or conn.sock.gettimeout() != 0.0:
            self.enqueue_req(conn)
            return
        # what a thread's parser read ahead (a connection a thread answered before) comes first
        arrived = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        try:
            arrived += conn.sock.recv(HEAD_RECV)
        except OSError:  # nothing after all, or a reset: the intake reads again and finds out
            pass
        if not (arrived and self._answer_whole(conn, arrived)):
            self._intake(conn, arrived)

    def _answer_whole(self, conn, head: bytes) -> bool:
        """The quick lane: a kept-alive connection's next request arrived as one whole head and nothing
        more (what a client sending one request at a time always sends), and the poller answers it.

        What the intake would do for such a head changes nothing here: no body to wait for (the quick
        answers take no request with a body field), no deadline (it is all here), no limit reached
        (within the head limits, counted as a connection already). So it is answered at once, with no
        waiting state, no second look for framing, and the socket left registered as it is (it came
        through this very callback). Anything else goes through the intake, as before."""
        if len(head) > self.head_limits.head or head.find(request_head.HEAD_END) != len(head) - 4:
            return False
        try:
            answer = self._quick(head, conn.client, self._must_close())
        except Exception:  # noqa: BLE001 - a bug here must cost the quick answer, not the request
            self.log.exception("Error answering a request in the poller")
            return False
        if answer is None:
            return False
        self._deliver(conn, *answer, b"", watching=True)
        return True

    def _watch(self, sock, events: int, callback) -> None:
        """Have the poller call ``callback`` when ``sock`` is ready for ``events``. A socket already
        registered only has its callback changed (no system call when the events stay the same)."""
        try:
            self.poller.modify(sock, events, callback)
        except KeyError:
            self.poller.register(sock, events, callback)

    def _release(self, sock) -> None:
        """The poller stops watching ``sock`` (before a thread takes it, or it is closed)."""
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass

    def _on_readable(self, waiting, _sock):
        if self._waiting.get(waiting.conn) is not waiting:
            return
        try:
            if self._receive(waiting):
                self._act(waiting, self._examine(waiting))
        except Exception:  # noqa: BLE001 - as in enqueue_req
            self._abandon(waiting)

    def _abandon(self, waiting) -> None:
        client = waiting.conn.client
        self.log.exception("Error reading a request from ip=%s", client[0] if isinstance(client, tuple) else client)
        if self._leave(waiting):
            util.close(waiting.conn.sock)

    def _receive(self, waiting) -> bool:
        """Read what has arrived; False if the connection is gone (then it is closed)."""
        if waiting.head_end < 0:
            size = HEAD_RECV
        elif waiting.chunked is not None:
            size = CHUNKED_RECV
        else:
            size = min(BODY_RECV, max(HEAD_RECV, waiting.needed - len(waiting.data)))
        try:
            chunk = waiting.conn.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            chunk = b""
        if not chunk:
            self._leave(waiting)
            util.close(waiting.conn.sock)
            return False
        waiting.data += chunk
        return True

    def _examine(self, waiting):
        """_READY when a thread may take the connection, _WAIT for more bytes, else the response refusing it."""
        data = waiting.data
        if waiting.head_end < 0:
            skip = request_head.empty_lines(data)
            if skip:
                del data[:skip]
                waiting.scan_from = 0
            end = request_head.head_end(data, waiting.scan_from)
            if end < 0:
                if request_head.has_bare_lf(data, waiting.scan_from):
                    return _READY  # gunicorn's parser answers 400 without reading on
                if request_head.request_line_too_long(data, self.head_limits.line):
                    return URI_TOO_LONG
                if len(data) > self.head_limits.head:
                    return HEAD_TOO_LARGE
                waiting.scan_from = max(0, len(data) - 3)
                return _WAIT
            self._start_body(waiting, end)
        if waiting.chunked is not None:
            return self._examine_chunked(waiting)
        return _READY if len(data) >= waiting.needed else _WAIT

    def _start_body(self, waiting, end: int) -> None:
        """The head has arrived: decide how much body to wait for, and until when."""
        data, limits = waiting.data, self.limits
        frame = request_head.framing(bytes(data[:end]))
        waiting.body_start = time.monotonic()
        waiting.deadline = limits.body_deadline(waiting.body_start, frame.length)
        waiting.head_end = waiting.needed = end  # unless the body is waited for: the thread reads it, by the deadline
        if frame.parser_decides or frame.length > limits.max_body or not self._reserve(waiting, frame.length):
            return
        if frame.expects_continue:  # answered here, so the parser must not answer it again
            self._send_quietly(waiting.conn.sock, CONTINUE)
            head = request_head.without_expect(bytes(data[:end]))
            data[:end] = head
            waiting.head_end = waiting.needed = end = len(head)
        if frame.chunked:
            waiting.chunked = request_head.ChunkedBody(end, self.head_limits.field, self.head_limits.fields)
        else:
            waiting.needed = end + frame.length

    def _examine_chunked(self, waiting):
        chunked, data = waiting.chunked, waiting.data
        if chunked.end(data) != chunked.NEED_MORE:
            return _READY  # the whole body, or framing the parser refuses
        received = len(data) - waiting.head_end
        waiting.deadline = self.limits.body_deadline(waiting.body_start, received)
        if chunked.size > self.limits.max_body or not self._reserve(waiting, received):
            return _READY  # the thread reads the rest, by the deadline (the application refuses it if too large)
        return _WAIT

    def _reserve(self, waiting, total: int) -> bool:
        """Count ``total`` body bytes of this request against the worker's budget, if it has room."""
        extra = total - waiting.reserved
        if extra > 0 and self._buffered_bodies + extra > self.limits.body_budget:
            return False
        self._buffered_bodies += extra
        waiting.reserved = total
        return True

    def _act(self, waiting, state) -> None:
        if state is _READY:
            self._dispatch(waiting)
        elif state is _WAIT:
            self._wait(waiting)
        else:
            self._refuse(waiting, state)

    def _wait(self, waiting) -> None:
        conn = waiting.conn
        if conn not in self._waiting:
            waiting.address = address_key(conn.client)
            if self._per_address[waiting.address] >= self.limits.waiting_per_address:
                self._refused["over the per-address limit"] += 1
                self._leave(waiting)
                util.close(conn.sock)
                return
            self._per_address[waiting.address] += 1
            self._waiting[conn] = waiting
            self._watch(conn.sock, selectors.EVENT_READ, partial(self._on_readable, waiting))
        self._schedule(waiting)

    def _schedule(self, waiting) -> None:
        """Have ``murder_pending`` look at the connection by its deadline.

        One heap entry per connection at a time: a later deadline (the body's,
        after the head's) is pushed when the earlier entry comes due.
        """
        if waiting.queued is None or waiting.deadline < waiting.queued:
            waiting.queued = waiting.deadline
            heapq.heappush(self._deadlines, (waiting.deadline, next(self._numbers), waiting))

    def _dispatch(self, waiting) -> None:
        """Answer here what may be answered here (pipelined requests one after another), else give the
        connection to a thread, its parser reading what the poller read."""
        while self._quick is not None and waiting.needed == waiting.head_end and self.alive:
            outcome = self._answer_here(waiting)
            if outcome is None:
                break  # not one the poller answers
            if outcome is _DONE:
                return
            waiting = outcome  # the next pipelined request, already here
            state = self._examine(waiting)
            if state is not _READY:
                self._act(waiting, state)
                return
        self._forget(waiting)
        conn = waiting.conn
        conn.init()
        conn.parser.unreader.sock = _Prefetched(conn.sock, waiting.data, waiting.deadline)
        super().enqueue_req(conn)
        waiting.done = True

    # -- answers written by the poller (server.quick_answers) -----------------------------------------

    def _answer_here(self, waiting):
        """None if the request is not one the poller answers; else _DONE, or the next pipelined request."""
        conn, data, end = waiting.conn, waiting.data, waiting.head_end
        try:
            answer = self._quick(bytes(data[:end]), conn.client, self._must_close())
        except Exception:  # noqa: BLE001 - a bug here must cost the quick answer, not the request
            self.log.exception("Error answering a request in the poller")
            return None
        if answer is None:
            return None
        self._forget(waiting, release=False)  # until it is known what comes next for the socket
        waiting.done = True
        return self._deliver(conn, *answer, bytes(data[end:]))

    def _must_close(self) -> bool:
        return (
            not self._keepalive or self.nr + 1 >= self.max_requests or len(self.keepalived_conns) >= self.max_keepalived
        )

    def _deliver(self, conn, response: bytes, close: bool, pipelined: bytes, watching: bool = False):
        """Write a quick answer; then as :meth:`_answered` (``watching``: the socket is registered for
        its next request already). _DONE, or the next pipelined request."""
        self.nr += 1
        if self.nr >= self.max_requests:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        try:
            sent = conn.sock.send(response)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_now(conn)
            return _DONE
        if sent < len(response):
            if self._unsent + len(response) - sent > self.limits.body_budget:
                self._refused["over the memory for unsent answers"] += 1  # many clients that do not read
                self._close_now(conn)
                return _DONE
            self._start_sending(
                _Sending(conn, memoryview(response)[sent:], close, pipelined, self._send_deadline(response))
            )
            return _DONE
        return self._answered(conn, close, pipelined, watching)

    def _send_deadline(self, response: bytes) -> float:
        return self.limits.body_deadline(time.monotonic(), len(response))

    def _answered(self, conn, close: bool, pipelined: bytes, watching: bool = False):
        """The answer is out: close, keep the connection alive, or go on with the next request
        (``watching``: the socket is registered for reading with this callback already)."""
        if close:
            self.nr_conns -= 1
            self._close_lingering(conn.sock)
            return _DONE
        if pipelined:
            return _Waiting(conn, bytearray(pipelined), time.monotonic() + self.limits.header_timeout)
        # As gunicorn keeps a connection after a thread's answer (finish_request): its keepalive
        # timeout and limits, its poller callback (which brings the next request through enqueue_req).
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        if not watching:
            self._watch(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        return _DONE

    def _start_sending(self, sending: _Sending) -> None:
        self._sending[sending.conn.sock] = sending
        self._unsent += len(sending.rest)
        self._watch(sending.conn.sock, selectors.EVENT_WRITE, partial(self._on_writable, sending))

    def _on_writable(self, sending: _Sending, sock) -> None:
        if self._sending.get(sock) is not sending:
            return
        try:
            sent = sock.send(sending.rest)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._stop_sending(sending)
            self._close_now(sending.conn)
            return
        sending.rest = sending.rest[sent:]
        self._unsent -= sent
        if len(sending.rest):
            return
        self._stop_sending(sending, release=False)  # _answered decides what the poller watches for next
        following = self._answered(sending.conn, sending.close, sending.pipelined)
        if following is not _DONE:
            try:
                self._act(following, self._examine(following))
            except Exception:  # noqa: BLE001 - as in enqueue_req
                self._abandon(following)

    def _stop_sending(self, sending: _Sending, release: bool = True) -> None:
        if self._sending.pop(sending.conn.sock, None) is not None:
            self._unsent -= len(sending.rest)
        if release:
            self._release(sending.conn.sock)

    def _close_now(self, conn) -> None:
        self.nr_conns -= 1
        self._release(conn.sock)
        util.close(conn.sock)

    def _expire_sending(self, now: float) -> None:
        """Close connections whose client has not taken its answer by the deadline (or all, at the end)."""
        for sending in [s for s in self._sending.values() if s.deadline <= now]:
            self._refused["too slow to take their answer"] += 1
            self._stop_sending(sending)
            self._close_now(sending.conn)

    def _refuse(self, waiting, response: bytes) -> None:
        client = waiting.conn.client
        self.log.warning(
            "Invalid request from ip=%s: %s",
            client[0] if isinstance(client, tuple) else client,
            response.split(b"\r\n", 1)[0].decode(),
        )
        self._leave(waiting)
        self._send_quietly(waiting.conn.sock, response)
        self._close_lingering(waiting.conn.sock)

    def _expire(self, waiting) -> None:
        self._refused["too slow to send their request"] += 1
        self._leave(waiting)
        if waiting.data:
            self._send_quietly(waiting.conn.sock, TIMED_OUT)
            self._close_lingering(waiting.conn.sock)
        else:
            util.close(waiting.conn.sock)

    def _forget(self, waiting, release: bool = True) -> None:
        """Stop waiting on the connection (it goes to a thread or away; with ``release=False`` the
        caller registers the socket for what comes next, or releases it)."""
        if self._waiting.pop(waiting.conn, None) is waiting:
            self._per_address[waiting.address] -= 1
            if not self._per_address[waiting.address]:
                del self._per_address[waiting.address]
        if release:  # also a kept-alive socket, registered though it never waited here
            self._release(waiting.conn.sock)
        self._buffered_bodies -= waiting.reserved
        waiting.reserved = 0

    def _leave(self, waiting) -> bool:
        """The connection is about to be closed by the poller: it no longer counts. False if it was already done."""
        if waiting.done:
            return False
        waiting.done = True
        self._forget(waiting)
        self.nr_conns -= 1
        return True

    @staticmethod
    def _send_quietly(sock, data: bytes) -> None:
        try:
            sock.send(data)
        except OSError:
            pass

    # -- after a request ------------------------------------------------------------------------------

    def finish_request(self, conn, fs):
        """Give back what the parser did not take from the poller's bytes, so gunicorn sees a pipelined request."""
        unreader = getattr(conn.parser, "unreader", None)
        source = getattr(unreader, "sock", None)
        if isinstance(source, _Prefetched):
            unreader.sock = source.sock
            rest = source.rest()
            if rest:
                unreader.unread(unreader.take_buffered() + rest)
        super().finish_request(conn, fs)

    def _close_lingering(self, sock) -> None:
        """Shut the write side, then read until the peer closes (or briefly), in the poller; then close."""
        if len(self._lingering) >= self._max_lingering:
            self._release(sock)
            util.close(sock)
            return
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self._watch(sock, selectors.EVENT_READ, self._drain_lingering)
        except (OSError, ValueError, KeyError):
            self._release(sock)
            util.close(sock)
            return
        self._lingering[sock] = 0
        self._linger_queue.append((time.monotonic() + self.limits.linger, sock))

    def _drain_lingering(self, sock) -> None:
        drained = self._lingering.get(sock)
        if drained is None:
            return
        try:
            data = sock.recv(LINGER_MAX_DRAIN)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and drained + len(data) < LINGER_MAX_DRAIN:
            self._lingering[sock] = drained + len(data)
        else:
            self._end_lingering(sock)

    def _end_lingering(self, sock) -> None:
        if self._lingering.pop(sock, None) is None:
            return
        self._release(sock)
        util.close(sock)

    # -- once per loop turn, and at shutdown ------------------------------------------------------------

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and not self._stopping:
            self._stopping = True
            self._cap_waiting(now + STOP_KEEPALIVE_LINGER)
        while self._deadlines and self._deadlines[0][0] <= now:
            due, _, waiting = heapq.heappop(self._deadlines)
            if self._waiting.get(waiting.conn) is not waiting or due != waiting.queued:
                continue  # gone to a thread or away, or a stale entry
            waiting.queued = None
            if waiting.deadline <= now:
                self._expire(waiting)
            else:
                self._schedule(waiting)
        while self._linger_queue and self._linger_queue[0][0] <= now:
            self._end_lingering(self._linger_queue.popleft()[1])
        if self._sending:
            self._expire_sending(now)
        self._report(now)

    def _cap_waiting(self, deadline: float) -> None:
        """A stopping worker still takes requests on their way, for a moment (like kept-alive ones)."""
        for waiting in self._waiting.values():
            waiting.deadline = min(waiting.deadline, deadline)
            self._schedule(waiting)

    def murder_keepalived(self, force=False):
        super().murder_keepalived(force)
        if force:  # the worker is going: close everything still waiting or lingering
            for waiting in list(self._waiting.values()):
                self._leave(waiting)
                util.close(waiting.conn.sock)
            for sock in list(self._lingering):
                self._end_lingering(sock)
            self._expire_sending(float("inf"))

    def _report(self, now: float) -> None:
        if now - self._reported < REPORT_EVERY:
            return
        if self._refused:
            self.log.warning(
                "Closed in the last %.0f s: %s",
                now - self._reported,
                ", ".join(f"{n} connection(s) {why}" for why, n in self._refused.items()),
            )
            self._refused.clear()
        self._reported = now
