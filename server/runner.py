"""Run the app on a real socket: in the foreground for the CLI, in a thread for tests and benchmarks."""
from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietRequestHandler(WSGIRequestHandler):
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


def serve_forever(app, host: str, port: int, on_ready=None, access_log: bool = False) -> None:
    handler = WSGIRequestHandler if access_log else QuietRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    server.daemon_threads = True
    if on_ready:
        on_ready(f"http://{host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
