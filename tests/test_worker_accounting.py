"""The worker's books: however connections end, each leaves gunicorn's connection count and the worker's
waiting, lingering and body-buffer tallies as it found them, and a stopping worker lets go of the rest.

The worker's real event loop runs in a thread of this process (no fork), serving a small WSGI app, so its
counters can be read once everything has ended.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from server.quick_answers import QuickAnswers
from server.worker import TIMED_OUT, ConnectionLimits, GuardedThreadWorker


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(str(len(body)))))])
    return [str(len(body)).encode()]


QUICK = {"header_timeout": 0.5, "body_timeout": 0.5, "waiting_per_address": 3, "linger": 0.5}


@pytest.fixture
def start_worker():
    """Start a worker with the given ``ConnectionLimits``; stopped (and checked to stop) at the end."""
    started = []

    def start(quick_answers=None, keepalive=2, **limits):
        cfg = Config()
        settings = {"threads": 2, "worker_connections": 200, "keepalive": keepalive, "graceful_timeout": 2}
        for name, value in settings.items():
            cfg.set(name, value)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)

        class Application:
            connection_limits = ConnectionLimits(**limits)

        Application.quick_answers = quick_answers

        served = GuardedThreadWorker(0, os.getppid(), [listener], Application(), 30, cfg, Logger(cfg))
        served.wsgi = app
        served.tpool = served.get_thread_pool()
        served.poller = selectors.DefaultSelector()
        served.method_queue.init()
        served.port = listener.getsockname()[1]
        served.loop = threading.Thread(target=served.run, daemon=True)
        served.loop.start()
        started.append(served)
        return served

    yield start
    for served in started:
        stop(served)
        assert not served.loop.is_alive(), "the worker did not stop"


def stop(served) -> None:
    """What gunicorn's SIGTERM handler does."""
    served.handle_exit(None, None)
    served.loop.join(timeout=10)


def connect(port, source="127.0.0.1"):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    return sock


def drain(sock) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def settled(worker, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (
            (
                worker.nr_conns,
                len(worker._waiting),
                len(worker._lingering),
                worker._buffered_bodies,
                sum(worker._per_address.values()),
            )
            == (0, 0, 0, 0, 0)
            and not worker.keepalived_conns
            and not worker._sending
        ):
            return True
        time.sleep(0.1)
    return False


def test_every_way_a_connection_ends_is_counted_once(start_worker):
    worker = start_worker(**QUICK)
    port = worker.port
    # kept alive for three requests (a POST body among them), then closed by the client
    with connect(port) as sock:
        for request in (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            sock.sendall(request)
            time.sleep(0.1)
        assert sock.recv(65536).count(b"HTTP/1.1 200") >= 1
    # "Connection: close": the server closes (lingering), the client reads to the end
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert drain(sock).startswith(b"HTTP/1.1 200")
    # a head that never ends, an idle socket, a stalled body, a chunked body that stops: timed out
    slow = [connect(port, "127.0.0.2") for _ in range(3)]
    slow[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    slow[1].sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    slow[2].sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    idle = connect(port, "127.0.0.3")
    # beyond 3 waiting from one address: closed at once
    crowd = [connect(port, "127.0.0.4") for _ in range(6)]
    # refused heads, and a client that goes away half-way
    long_line = connect(port)
    long_line.sendall(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n")
    bare_lf = connect(port)
    bare_lf.sendall(b"GET / HTTP/1.1\nHost: x\n\n")
    gone = connect(port)
    gone.sendall(b"GET / HTTP/1.1\r\nHo")
    gone.close()
    assert [drain(sock)[:12] for sock in slow] == [b"HTTP/1.1 408"] * 3
    assert drain(idle) == b""
    assert sum(drain(sock) == b"" for sock in crowd) == 6  # 3 closed at once, 3 after the header timeout
    assert drain(long_line).startswith(b"HTTP/1.1 414")
    assert drain(bare_lf).startswith(b"HTTP/1.1 400")
    for sock in [*slow, idle, *crowd, long_line, bare_lf]:
        sock.close()
    assert settled(worker), (
        worker.nr_conns,
        worker._waiting,
        worker._lingering,
        worker._buffered_bodies,
        worker._per_address,
        worker.keepalived_conns,
    )


def test_a_stopping_worker_lets_go_of_connections_still_waiting(start_worker):
    """Heads that would have a minute to arrive: a stopping worker gives them a moment, then closes them."""
    worker = start_worker(**{**QUICK, "header_timeout": 60})
    waiting = [connect(worker.port, "127.0.0.2") for _ in range(3)]
    for sock in waiting:
        sock.sendall(b"GET / HTTP/1.1\r\n")
    deadline = time.monotonic() + 5
    while len(worker._waiting) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.nr_conns == 3
    stop(worker)
    assert not worker.loop.is_alive()  # within stop()'s 10 s, not the minute of the header timeout
    for sock in waiting:
        assert drain(sock) in (b"", TIMED_OUT)
        sock.close()
    assert settled(worker)


class Quick:
    """What the poller may answer itself: ``GET /quick/<n>`` gets ``n`` bytes; each answer notes its thread."""

    def __init__(self):
        self.threads = []

    def __call__(self, environ):
        if not environ["PATH_INFO"].startswith("/quick/"):
            return None
        self.threads.append(threading.get_ident())
        size = int(environ["PATH_INFO"].rsplit("/", 1)[1])
        return "200 OK", [("Content-Length", str(size))], b"q" * size


def read_answer(reader) -> tuple[bytes, dict, bytes]:
    status = reader.readline().rstrip(b"\r\n")
    headers = {}
    while line := reader.readline().rstrip(b"\r\n"):
        name, value = line.decode().split(": ", 1)
        headers[name.lower()] = value
    return status, headers, reader.read(int(headers["content-length"]))


def test_the_poller_answers_pipelined_requests_in_order_around_one_a_thread_answers(start_worker):
    quick = Quick()
    worker = start_worker(QuickAnswers(quick), **QUICK)
    with connect(worker.port) as sock:
        sock.sendall(
            b"GET /quick/3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"  # a body: a thread answers
            b"GET /quick/5 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"  # not one of the quick ones: a thread
            b"GET /quick/2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = sock.makefile("rb")
        answers = [read_answer(reader) for _ in range(5)]
        assert [body for _, _, body in answers] == [b"qqq", b"4", b"qqqqq", b"0", b"qq"]
        assert all(status == b"HTTP/1.1 200 OK" for status, _, _ in answers)
        assert all(headers["connection"] == "keep-alive" for _, headers, _ in answers)
        sock.sendall(b"GET /quick/1 HTTP/1.1\r\nHost: x\r\n\r\n")  # later, on the kept-alive connection
        assert read_answer(reader)[2] == b"q"
    assert quick.threads == [worker.loop.ident] * 4  # answered in the worker's poller, not by its threads
    assert worker.nr == 6
    assert settled(worker)


def test_a_kept_alive_connections_whole_request_takes_the_quick_lane_and_anything_else_the_intake(start_worker):
    """The next request of a kept-alive connection, arrived whole, is answered from its first read
    (``_answer_whole``); a head in pieces, two requests at once, or one the poller does not answer
    go through the intake as before, and come out the same."""
    quick = Quick()
    worker = start_worker(QuickAnswers(quick), **QUICK)
    lane = []
    answer_whole = worker._answer_whole
    worker._answer_whole = lambda conn, head: lane.append((bytes(head[:16]), answer_whole(conn, head))) or lane[-1][1]
    with connect(worker.port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"GET /quick/1 HTTP/1.1\r\nHost: x\r\n\r\n")  # a new connection: the intake
        assert read_answer(reader)[2] == b"q"
        sock.sendall(b"GET /quick/2 HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive, whole: the lane
        assert read_answer(reader)[2] == b"qq"
        sock.sendall(b"GET /quick/3 HTTP/1.1\r\nHo")  # in two pieces
        time.sleep(0.2)
        sock.sendall(b"st: x\r\n\r\n")
        assert read_answer(reader)[2] == b"qqq"
        sock.sendall(b"GET /quick/4 HTTP/1.1\r\nHost: x\r\n\r\nGET /quick/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [read_answer(reader)[2] for _ in range(2)] == [b"q" * 4, b"q" * 5]
        sock.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")  # whole, but a thread's
        assert read_answer(reader)[2] == b"0"
        sock.sendall(b"GET /quick/6 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(reader)[2] == b"q" * 6
        sock.sendall(b"GET /quick/7 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(reader)[2] == b"q" * 7
    assert settled(worker)  # and the poller done with its books (it runs in a thread of this process)
    assert lane[:4] == [
        (b"GET /quick/2 HTT", True),
        (b"GET /quick/3 HTT", False),  # not whole: the intake waits for the rest
        (b"GET /quick/4 HTT", False),  # two requests: the intake answers them in order
        (b"GET /other HTTP/", False),
    ]
    assert lane[4:] == [(b"GET /quick/6 HTT", True), (b"GET /quick/7 HTT", True)]  # after a thread's answer too
    assert worker.nr == 8 and len(quick.threads) == 7


def test_kept_alive_connections_stay_registered_between_quick_answers_and_leave_nothing_behind(start_worker):
    """A kept-alive socket stays registered with the poller from one quick answer to the next (its
    callback changed, no system call); it must still be released before a thread takes it and
    before it is closed, or a later socket reusing its descriptor would never be heard."""
    quick = Quick()
    worker = start_worker(QuickAnswers(quick), **QUICK)
    for round_ in range(30):  # sockets come and go: descriptors are reused
        with connect(worker.port) as sock:
            reader = sock.makefile("rb")
            for n in range(1, 4):
                sock.sendall(f"GET /quick/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert read_answer(reader)[2] == b"q" * n
                sock.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")  # a thread, then back
                assert read_answer(reader)[2] == b"0"
            if round_ % 3 == 0:  # some leave with a request half sent
                sock.sendall(b"GET /quick/1 HTTP/1.1\r\nHo")
    assert settled(worker)
    listeners = {key.fileobj for key in worker.poller.get_map().values() if key.fileobj in worker.sockets}
    left = [
        key
        for key in worker.poller.get_map().values()
        if key.fileobj not in listeners and not isinstance(key.fileobj, int)  # ints: gunicorn's wake-up pipe
    ]
    assert not left, f"sockets left registered after they were closed: {left}"


def test_a_quick_answer_ends_the_connection_when_asked_and_kept_alive_ones_time_out(start_worker):
    worker = start_worker(QuickAnswers(Quick()), keepalive=1, **QUICK)
    with connect(worker.port) as sock:
        sock.sendall(b"GET /quick/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = drain(sock)  # the server closes after the answer
        assert b"Connection: close" in received and received.endswith(b"\r\n\r\nqqq")
    with connect(worker.port) as sock:
        sock.sendall(b"GET /quick/3 HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert drain(sock).endswith(b"qqq")  # then nothing more: closed at the keepalive timeout
        assert 0.5 < time.monotonic() - started < 4
    assert settled(worker)


def test_a_client_that_does_not_take_its_answer_is_closed_by_its_deadline_and_holds_nobody_up(start_worker):
    """An answer larger than the socket takes is written as the client reads, in the poller; a client that
    stops reading holds neither the poller nor a thread, and is closed when its time for the size is up."""
    big = 8 * 1024 * 1024
    worker = start_worker(QuickAnswers(Quick()), **{**QUICK, "body_timeout": 1.0, "body_min_rate": 8 * 1024 * 1024})
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", worker.port))
    stalled.sendall(f"GET /quick/{big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    deadline = time.monotonic() + 5
    while not worker._sending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker._sending  # the answer is being written as the client takes it
    with connect(worker.port) as other:  # meanwhile others are answered, by the poller and by threads
        other.sendall(b"GET /quick/2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = other.makefile("rb")
        assert [read_answer(reader)[2] for _ in range(2)] == [b"qq", b"0"]
    time.sleep(2.5)  # past 1 s + 8 MB at 8 MB/s
    stalled.settimeout(5)
    received = drain(stalled)
    assert 0 < len(received) < big  # cut off, not completed
    stalled.close()
    assert settled(worker)


def test_a_client_that_reads_slowly_gets_its_whole_answer(start_worker):
    big = 4 * 1024 * 1024
    worker = start_worker(QuickAnswers(Quick()), **QUICK)
    with connect(worker.port) as sock:
        sock.sendall(f"GET /quick/{big} HTTP/1.1\r\nHost: x\r\n\r\nGET /quick/1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.3)  # the answer fills the socket's buffers; the rest waits in the poller
        reader = sock.makefile("rb")
        assert read_answer(reader)[2] == b"q" * big
        assert read_answer(reader)[2] == b"q"  # the pipelined request after it
    assert settled(worker)


def test_a_request_from_a_trusted_proxy_is_left_to_the_application():
    answers = QuickAnswers(lambda environ: ("200 OK", [], b""), ("10.0.0.1",))
    head = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    assert answers(head, ("10.0.0.1", 80), False) is None
    assert answers(head, ("10.0.0.2", 80), False) is not None
