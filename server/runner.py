"""Run the app on a real socket.

``axonlink serve`` runs gunicorn (threaded workers, the app built once and
forked); tests and benchmarks that need a server inside their own process use
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

    def start(self) -> "BackgroundServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def serve_forever(app, host: str, port: int, *, workers: int | None = None, threads: int = 32,
                  access_log: bool = False, on_ready=None) -> None:
    """Serve ``app`` with gunicorn until interrupted (several processes share the port)."""
    from gunicorn.app.base import BaseApplication

    from segmentation.db import dispose_engines_after_fork

    class Application(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers or default_workers(),
                "worker_class": "gthread",
                "threads": threads,
                "preload_app": True,
                "accesslog": "-" if access_log else None,
                "post_fork": lambda _server, _worker: dispose_engines_after_fork(),
                "when_ready": lambda _server: on_ready and on_ready(f"http://{host}:{port}"),
                "graceful_timeout": 2,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Application().run()
