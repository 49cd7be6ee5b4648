"""Idle, slow and half-sent connections against the real ``axonlink serve`` (gunicorn, ``server.worker``).

The server runs 2 workers of 2 threads each, so four connections holding a
thread would stop it. Attacks come from 127.0.0.2-4 (all of 127/8 is local on
Linux), the requests that must keep being answered from 127.0.0.1. Nothing
here measures speed: a request "answers" if it succeeds within a generous
timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
CHUNK = "/data/demo/image/8_8_40/0-64_0-64_0-32"
API = "/api/v1/datasets"
VIEWER_STATE = json.dumps({"c": "tests", "g": 1, "pg": 0, "s": {}}).encode()
PER_ADDRESS = 64  # server.worker.ConnectionLimits.waiting_per_address, per worker
WORKERS = 2


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors():
    """A thousand client sockets at once need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Served:
    """``axonlink serve`` in a process group of its own, its output kept in a file."""

    def __init__(self, settings, log_dir: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"serve-{self.port}.log"
        env = {**os.environ, "AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(WORKERS),
                    "--threads",
                    "2",
                    *flags,
                ],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + API, timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"axonlink serve did not start:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.2)

    def stop(self) -> int | None:
        """SIGTERM, as a service manager would; the exit status (None if it had to be killed)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return None
        return self.process.returncode


@pytest.fixture(scope="module")
def server(demo_home, tmp_path_factory):
    served = Served(
        demo_home,
        tmp_path_factory.mktemp("connections"),
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
    )
    yield served
    served.stop()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def others_are_answered(server, count: int = 20) -> None:
    """``count`` requests in a row from 127.0.0.1, each answered (a generous timeout: no speed is measured)."""
    for _ in range(count):
        with urllib.request.urlopen(server.url + API, timeout=10) as response:
            assert response.status == 200 and json.load(response)["datasets"]


def read_response(reader, head: bool = False) -> tuple[int, dict, bytes]:
    """One response from a buffered socket reader (several may follow each other on one connection)."""
    status_line = reader.readline()
    if not status_line:
        raise EOFError("connection closed before a response")
    status = int(status_line.split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head or status in (204, 304) or status < 200:
        return status, headers, b""
    return status, headers, reader.read(int(headers["content-length"]))


def ending(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not within ``timeout``)."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


class Slowloris:
    """Sockets from ``source`` sending a request head one field line every ``interval`` seconds, never ending it.

    Remembers, per socket, what the server sent before closing it.
    """

    def __init__(self, port: int, source: str, count: int, interval: float = 0.5):
        self.sockets = []
        for _ in range(count):
            sock = connect(port, source)
            sock.sendall(b"GET /api/v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            self.sockets.append(sock)
        self.ended: dict[int, bytes] = {}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        line = 0
        while not self._stop.is_set() and len(self.ended) < len(self.sockets):
            for index, sock in enumerate(self.sockets):
                if index in self.ended:
                    continue
                try:
                    received = sock.recv(65536)
                except BlockingIOError:
                    received = None
                except OSError:
                    received = b""
                if received is None:
                    try:
                        sock.send(b"X-Drip-%d: a header line\r\n" % line)
                        continue
                    except BlockingIOError:
                        continue
                    except OSError:
                        received = b""
                self.ended[index] = received
                sock.close()
            line += 1
            self._stop.wait(self._interval)

    def wait_all_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.ended) < len(self.sockets) and time.monotonic() < deadline:
            time.sleep(0.1)
        return len(self.ended) == len(self.sockets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slowloris_from_one_address_leaves_others_answered(server):
    """300 sockets dripping header lines from 127.0.0.2: requests from 127.0.0.1 are answered meanwhile,
    and the server closes every slow socket (408 for those that waited out the header timeout)."""
    attack = Slowloris(server.port, "127.0.0.2", 300)
    try:
        others_are_answered(server)
        assert attack.wait_all_closed(timeout=10 * HEADER_TIMEOUT), (
            f"{len(attack.sockets) - len(attack.ended)} slow sockets still open"
        )
        timed_out = [data for data in attack.ended.values() if data.startswith(b"HTTP/1.1 408 ")]
        closed_at_once = [data for data in attack.ended.values() if data == b""]
        assert len(timed_out) + len(closed_at_once) == len(attack.sockets), set(attack.ended.values())
        # each worker lets 64 of them wait for their head: at most 128 wait, the rest are closed on arrival
        assert 0 < len(timed_out) <= PER_ADDRESS * WORKERS
        others_are_answered(server, 3)
    finally:
        attack.close()


def test_idle_connections_beyond_the_per_address_limit_are_closed_at_once(demo_home, tmp_path):
    """500 sockets from 127.0.0.2 that send nothing. With a header timeout of a minute, only the per-address
    limit can close any of them within seconds: it does so for all but 64 per worker, and others are answered."""
    served = Served(demo_home, tmp_path, "--header-timeout", "60")
    idle = []
    try:
        idle = [connect(served.port, "127.0.0.2") for _ in range(500)]
        others_are_answered(served)
        for sock in idle:
            sock.setblocking(False)

        def closed() -> int:
            count = 0
            for sock in idle:
                try:
                    count += sock.recv(1) == b""
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    count += 1
            return count

        deadline = time.monotonic() + 15
        while closed() < len(idle) - PER_ADDRESS * WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert closed() >= len(idle) - PER_ADDRESS * WORKERS
        assert closed() < len(idle)  # the ones allowed to wait still wait for their request
        others_are_answered(served, 3)
        # a worker stops promptly with connections still waiting for their head (graceful timeout 2 s)
        assert served.stop() == 0
    finally:
        for sock in idle:
            sock.close()
        served.stop()


def test_a_stalled_body_holds_no_thread_and_is_closed_after_the_body_timeout(server):
    """POSTs that announce 1,000 bytes and send 10 (and chunked ones that stop after a chunk), more of them
    than the server has threads: others are answered meanwhile, and each stalled one gets 408 and is closed."""
    head = b"POST /state/axonlink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    stalled = []
    try:
        for count, rest in (
            (8, b"Content-Length: 1000\r\n\r\n0123456789"),
            (4, b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"c":\r\n'),
        ):
            for _ in range(count):
                sock = connect(server.port, "127.0.0.3")
                sock.sendall(head + rest)
                stalled.append(sock)
        others_are_answered(server)
        for sock in stalled:
            assert ending(sock, timeout=10 * BODY_TIMEOUT).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in stalled:
            sock.close()


def test_clients_that_never_close_do_not_stall_the_server(server):
    """Requests with "Connection: close" whose clients neither read nor close: the server's lingering close
    (write side shut, read until the peer closes, at most 2 s) must not keep it from answering others."""
    lingering = []
    try:
        for _ in range(100):
            sock = connect(server.port, "127.0.0.4")
            sock.sendall(b"GET /api/v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            lingering.append(sock)
        waiting_for_answers = set(lingering)
        deadline = time.monotonic() + 30
        while waiting_for_answers and time.monotonic() < deadline:  # answered: now the server closes them
            answered, _, _ = select.select(list(waiting_for_answers), [], [], 1)
            waiting_for_answers -= set(answered)
        assert not waiting_for_answers
        others_are_answered(server)
        for sock in lingering:  # each got its whole answer, then the server's end of the connection closed
            reader = sock.makefile("rb")
            status, _, body = read_response(reader)
            assert status == 200 and json.loads(body)["datasets"]
            assert reader.read() == b""
    finally:
        for sock in lingering:
            sock.close()


def test_a_thousand_event_stream_requests_each_end_at_once(server):
    """/events/axonlink (what old viewer pages and scripts may still ask for) answers at once and holds no
    thread: 1,000 of them, 8 at a time, with API requests among them, all complete; the API answers after."""

    def call(n: int):
        path = API if n % 50 == 0 else f"/events/axonlink?c=tab{n}"
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            return path, response.status, response.read()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(1050)))
    events = [(status, body) for path, status, body in answers if path.startswith("/events/")]
    assert len(events) >= 1000 and all(answer == (204, b"") for answer in events)
    assert all(status == 200 and json.loads(body)["datasets"] for path, status, body in answers if path == API)
    others_are_answered(server, 3)


def test_keepalive_and_pipelined_requests(server):
    """Several requests on one connection, two sent in one write, a POST body followed by the next request,
    and a request whose head arrives in two parts after another: each gets its own, right answer."""
    host = f"Host: 127.0.0.1:{server.port}"  # as urllib sends it: answers name the server by its Host
    chunk = fetch(server.url + CHUNK)
    datasets = json.loads(fetch(server.url + API))
    with connect(server.port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(
            f"GET {API} HTTP/1.1\r\n{host}\r\n\r\nGET {CHUNK} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept-Encoding: identity\r\n\r\n".encode()
        )
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == datasets
        status, _, body = read_response(reader)
        assert status == 200 and body == chunk
        for _ in range(3):  # kept alive
            sock.sendall(f"GET {CHUNK} HTTP/1.1\r\n{host}\r\nAccept-Encoding: identity\r\n\r\n".encode())
            status, headers, body = read_response(reader)
            assert status == 200 and body == chunk and headers.get("connection") != "close"
        sock.sendall(
            b"POST /state/axonlink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (len(VIEWER_STATE), VIEWER_STATE)
            + f"GET {API} HTTP/1.1\r\n{host}\r\n\r\nGET {API} HTTP/1.1\r\nHo".encode()
        )
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == {"g": "tests/1"}
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == datasets
        time.sleep(0.3)  # the third request's head is still incomplete
        sock.sendall(f"st: 127.0.0.1:{server.port}\r\n\r\n".encode())
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == datasets


def test_the_pollers_answer_on_the_wire_is_the_threads_answer(server):
    """A public stored chunk asked anonymously is answered by the worker's poller (server.quick_answers);
    the same request with a cookie goes to a thread and Flask. Status, headers and body agree."""
    host = f"Host: 127.0.0.1:{server.port}"
    for _ in range(4 * WORKERS):  # Flask checks this Host once in each worker before the poller answers
        fetch(server.url + API)
    answers = []
    for extra in ("", "Cookie: unrelated=1\r\n"):
        for encoding in ("gzip", "identity"):
            with connect(server.port) as sock:
                reader = sock.makefile("rb")
                sock.sendall(
                    f"GET {CHUNK} HTTP/1.1\r\n{host}\r\nAccept-Encoding: {encoding}\r\n"
                    f"X-Request-Id: compare-1\r\n{extra}\r\n".encode()
                )
                status, headers, body = read_response(reader)
                headers.pop("date")
                answers.append((status, headers, body))
    quick, threaded = answers[:2], answers[2:]
    assert quick == threaded
    assert quick[0][0] == 200 and len(quick[0][2]) == int(quick[0][1]["content-length"]) > 0
    assert quick[0][1]["connection"] == "keep-alive" and quick[0][1]["x-request-id"] == "compare-1"


def test_request_bodies_chunked_and_after_100_continue(server):
    with connect(server.port) as sock:
        reader = sock.makefile("rb")
        half = len(VIEWER_STATE) // 2
        sock.sendall(
            b"POST /state/axonlink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (half, VIEWER_STATE[:half])
        )
        time.sleep(0.3)
        sock.sendall(
            b"%x;note=rest\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (len(VIEWER_STATE) - half, VIEWER_STATE[half:])
        )
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == {"g": "tests/1"}
        # a client that waits for "100 Continue" gets it before it sends the body, and only once
        sock.sendall(
            b"POST /state/axonlink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(VIEWER_STATE)
        )
        assert read_response(reader)[0] == 100
        sock.sendall(VIEWER_STATE)
        status, _, body = read_response(reader)
        assert status == 200 and json.loads(body) == {"g": "tests/1"}


def test_head_and_range_requests(server):
    chunk = fetch(server.url + CHUNK)
    with connect(server.port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(f"HEAD {CHUNK} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n\r\n".encode())
        status, headers, _ = read_response(reader, head=True)
        assert status == 200 and int(headers["content-length"]) == len(chunk)
        sock.sendall(f"GET {CHUNK} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=100-1099\r\n\r\n".encode())
        status, headers, body = read_response(reader)  # the HEAD left no body bytes behind on the connection
        assert status == 206 and body == chunk[100:1100]
        assert headers["content-range"] == f"bytes 100-1099/{len(chunk)}"


def test_heads_beyond_the_limits_are_refused_not_buffered(server):
    with connect(server.port) as sock:
        sock.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n")
        assert ending(sock, timeout=10).startswith(b"HTTP/1.1 414 ")
    with connect(server.port) as sock:  # fields beyond gunicorn's 100 x 8 KiB, never ended
        sock.sendall(b"GET / HTTP/1.1\r\n")
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for n in range(120):
                sock.sendall(b"X-Field-%d: %s\r\n" % (n, b"v" * 8000))
        assert ending(sock, timeout=10).startswith(b"HTTP/1.1 431 ")
    with connect(server.port) as sock:  # a bare LF: gunicorn's own 400, at once
        sock.sendall(b"GET / HTTP/1.1\nHost: x\n")
        assert ending(sock, timeout=10).startswith(b"HTTP/1.1 400 ")
    others_are_answered(server, 3)


def test_a_body_larger_than_the_app_accepts_is_refused_without_waiting_for_it(server):
    """Content-Length beyond 64 MiB, and none of the body sent: the poller does not buffer it, the application
    answers 413 at once, and the connection closes (gunicorn would wait 5 s in the thread to drain the body).
    More of them than threads: others are answered meanwhile."""
    refused = []
    try:
        for _ in range(16):
            sock = connect(server.port, "127.0.0.5")
            sock.sendall(
                b"POST /state/axonlink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (65 * 1024 * 1024)
            )
            refused.append(sock)
        others_are_answered(server)
        for sock in refused:
            assert ending(sock, timeout=10).startswith(b"HTTP/1.1 413 ")
    finally:
        for sock in refused:
            sock.close()


def test_addresses_are_grouped_by_client():
    """The per-address limit counts an IPv4 address, an IPv6 /64 (one client's usual allocation), a Unix socket."""
    from server.worker import address_key

    assert address_key(("192.0.2.7", 5000)) == "192.0.2.7"
    assert address_key(("2001:db8:1:2::7", 5000, 0, 0)) == address_key(("2001:db8:1:2:ffff::1", 6000, 0, 0))
    assert address_key(("2001:db8:1:2::7", 5000, 0, 0)) != address_key(("2001:db8:1:3::7", 5000, 0, 0))
    assert address_key(("::ffff:192.0.2.7", 5000, 0, 0)) == "192.0.2.7"
    assert address_key("") == ""


def test_worker_connections_fit_the_open_file_limit():
    from server.runner import RESERVED_FILES, worker_connections

    assert worker_connections(20000) == 4096
    small = worker_connections(1024)
    assert small + small // 4 + RESERVED_FILES <= 1024  # connections, lingering closes, the worker's own files


def test_serve_refuses_a_timeout_that_is_not_positive(tmp_path, capsys):
    from server.cli import main

    assert main(["serve", "--home", str(tmp_path), "--header-timeout", "0"]) == 2
    assert "header timeout must be positive" in capsys.readouterr().err
