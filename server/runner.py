"""Run the app on a real socket.

``axonlink serve`` runs gunicorn (threaded workers that read each request in
their poller before a thread takes it, ``server.worker``; the app built once
and forked); tests and benchmarks that need a server inside their own process use
:class:`BackgroundServer` (werkzeug's threaded server in a thread).
"""

from __future__ import annotations

import os
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class BufferedRequestHandler(WSGIRequestHandler):
    """Buffer each response write so headers and body leave in one send (werkzeug flushes per write)."""

    wbufsize = 64 * 1024


class QuietRequestHandler(BufferedRequestHandler):
    """No access log line per request: chunk serving makes thousands of them."""

    def log_request(self, code="-", size="-"):
        pass


class BackgroundServer:
    """A threaded WSGI server on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self._server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


DEFAULT_THREADS = 32
# AXONLINK_GRAPH_FOLLOW_SECONDS: how often a server worker replays other workers' edits in the
# background (0: only when a request reads the graph)
DEFAULT_GRAPH_FOLLOW_SECONDS = 0.03  # measured at 10 M, 4 workers: merge p50 30 ms at 0.2 s, 20 ms at 0.03 s


def after_fork(app) -> None:
    """In each new worker: fresh database connections, and its graphs followed in the background."""
    from segmentation.db import dispose_engines_after_fork
    from segmentation.graph.registry import follow

    from .workspace import EXTENSION

    dispose_engines_after_fork()
    interval = float(os.environ.get("AXONLINK_GRAPH_FOLLOW_SECONDS", DEFAULT_GRAPH_FOLLOW_SECONDS))
    found = getattr(app, "extensions", {}).get(EXTENSION)
    if interval > 0 and found is not None:
        follow(found.graphs, interval)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


#: File descriptors a worker keeps for itself (database, layer files, pipes) besides its connections.
RESERVED_FILES = 256
MAX_WORKER_CONNECTIONS = 4096


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (within the hard limit); the new soft limit.

    Workers inherit it. Idle and slow clients cost a descriptor each, and a
    worker that runs out cannot accept anyone.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def worker_connections(open_files: int) -> int:
    """Connections one worker holds at most: a few thousand, within its open-file limit.

    Beyond it gunicorn stops accepting in that worker; a quarter more may be
    closing (see ``server.worker``).
    """
    return max(64, min(MAX_WORKER_CONNECTIONS, (open_files - RESERVED_FILES) * 4 // 5))


def serve_forever(
    app,
    host: str,
    port: int,
    *,
    workers: int | None = None,
    threads: int | None = None,
    on_ready=None,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
    waiting_per_address: int | None = None,
) -> None:
    """Serve ``app`` with gunicorn until interrupted (several processes share the port).

    The workers are :class:`server.worker.GuardedThreadWorker`: a thread gets
    a request only once it has arrived whole, within ``header_timeout`` (head)
    and ``body_timeout`` (body, plus time for its size) seconds; at most
    ``waiting_per_address`` connections from one address wait for theirs in
    each worker. None: the defaults of :class:`server.worker.ConnectionLimits`.
    """
    from gunicorn.app.base import BaseApplication

    from . import metrics
    from .app import MAX_BODY_BYTES
    from .worker import ConnectionLimits

    given = {"header_timeout": header_timeout, "body_timeout": body_timeout, "waiting_per_address": waiting_per_address}
    limits = ConnectionLimits(
        max_body=getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or MAX_BODY_BYTES,
        **{name: value for name, value in given.items() if value is not None},
    )
    connections = worker_connections(raise_open_file_limit())
    served = getattr(app, "config", {}).get("AXONLINK_SETTINGS")
    if served is not None:  # before the workers fork: a scrape answered by any of them shows them all
        metrics.use_multiprocess(served.home)

    class Application(BaseApplication):
        connection_limits = limits  # read by each worker (gunicorn hands it this application)
        quick_answers = getattr(app, "quick_answers", None)  # answered in the poller (server.quick_answers)

        def load_config(self):
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers or default_workers(),
                "worker_class": "server.worker.GuardedThreadWorker",
                "threads": threads or DEFAULT_THREADS,
                "worker_connections": connections,
                "preload_app": True,
                "accesslog": None,  # axonlink.requests logs each request (server/request_log.py)
                "post_fork": lambda _server, _worker: after_fork(app),
                "child_exit": lambda _server, worker: metrics.worker_exited(worker.pid),
                "on_exit": lambda _server: metrics.server_stopped(),
                "when_ready": lambda _server: on_ready and on_ready(f"http://{host}:{port}"),
                "graceful_timeout": 2,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Application().run()
