"""A plain static file server for precomputed layers written by CloudVolume.

It serves ``key`` from ``key.gz`` with ``Content-Encoding: gzip``, the way a
bucket holding CloudVolume's gzip objects answers. The benchmark uses it as the
baseline and the tests as a stand-in remote (``http://``) source.
"""
from __future__ import annotations

import functools
import http.server
import io
import os
import threading


class GzipAwareHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.exists(path) and os.path.exists(path + ".gz"):
            with open(path + ".gz", "rb") as handle:
                data = handle.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return io.BytesIO(data)
        return super().send_head()


class StaticServer:
    """``python -m http.server`` for a directory, threaded, on a free port, in the background."""

    def __init__(self, directory: str | os.PathLike, host: str = "127.0.0.1", port: int = 0):
        handler = functools.partial(GzipAwareHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
