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
    """HTTP/1.0 like ``python -m http.server`` (with HTTP/1.1 keep-alive it stalls on Nagle/delayed ACK)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        ranged = self._range(path)
        if ranged is not None:
            return ranged
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

    def _range(self, path):
        """A single ``Range: bytes=a-b`` (or ``-n``) on a plain file, answered 206, as sharded reads need."""
        header = self.headers.get("Range", "")
        if not header.startswith("bytes=") or "," in header or not os.path.isfile(path):
            return None
        size = os.path.getsize(path)
        first, _, last = header[len("bytes=") :].partition("-")
        start, end = (size - int(last), size - 1) if not first else (int(first), int(last or size - 1))
        end = min(end, size - 1)
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)


class _Server(http.server.ThreadingHTTPServer):
    # http.server's listen backlog of 5 drops connections when a client opens many at once,
    # and the retried SYN costs a second; a production static server (nginx: 511) would not.
    request_queue_size = 128


class StaticServer:
    """``python -m http.server`` for a directory, threaded, on a free port, in the background."""

    def __init__(self, directory: str | os.PathLike, host: str = "127.0.0.1", port: int = 0):
        handler = functools.partial(GzipAwareHandler, directory=str(directory))
        self._server = _Server((host, port), handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
