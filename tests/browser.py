"""What the browser tests share: Debian's Chromium (headless, WebGL 2 on SwiftShader), a server that
records every request, and waiting on a page.

The ``browser`` fixture itself lives in ``conftest.py``; the tests import the rest from here.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1200, "height": 800}
SCREENSHOTS = Path(  # where browser tests leave their screenshots ($AXONLINK_SCREENSHOTS)
    os.environ.get("AXONLINK_SCREENSHOTS") or Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
)

# Runs in a blank page: can this Chromium give us a WebGL 2 context, and if not, why not.
WEBGL_PROBE = """() => {
  const canvas = document.createElement("canvas");
  let message = "";
  canvas.addEventListener("webglcontextcreationerror", (event) => { message = event.statusMessage || ""; });
  const gl = canvas.getContext("webgl2");
  if (!gl) {
    return {ok: false, message: message || "getContext('webgl2') returned null and gave no status message"};
  }
  const debug = gl.getExtension("WEBGL_debug_renderer_info");
  return {ok: true, renderer: gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER)};
}"""


class RecordingServer:
    """The axonlink app on a free port of 127.0.0.1, remembering the path and status of every request."""

    def __init__(self, settings):
        from server import create_app

        self.app = create_app(settings)
        self.url = ""  # set once it is listening
        self.requests: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        inner = self.app.wsgi_app

        def record(environ, start_response):
            path = environ.get("PATH_INFO", "")

            def recording_start_response(status, headers, *exc_info):
                with self._lock:
                    self.requests.append((path, int(status.split()[0])))
                return start_response(status, headers, *exc_info)

            return inner(environ, recording_start_response)

        self.app.wsgi_app = record

    def forget(self) -> None:
        with self._lock:
            self.requests.clear()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.requests]

    def chunks(self, dataset: str, layer: str) -> list[tuple[str, list[int], int]]:
        """(scale key, [x0, x1, y0, y1, z0, z1], status) of each chunk request for ``layer``.

        The segmentation of a dataset with a graph is a graphene:// source: its chunks are the
        supervoxel view (``<dataset>@supervoxels``), coloured by root in the viewer.
        """
        if layer == "segmentation":
            dataset = f"{dataset}@supervoxels"
        pattern = re.compile(
            rf"^/data/{re.escape(dataset)}/{re.escape(layer)}/([^/]+)/(\d+)-(\d+)_(\d+)-(\d+)_(\d+)-(\d+)$"
        )
        with self._lock:
            found = [(pattern.match(path), status) for path, status in self.requests]
        return [(m.group(1), [int(g) for g in m.groups()[1:]], status) for m, status in found if m]

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path) as response:
            return json.load(response)


def page_errors(page) -> list[str]:
    """A list that collects the page's uncaught errors and console errors from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
    return errors


def wait_until(page, condition, seconds=15.0):
    for _ in range(int(seconds / 0.25)):
        if condition():
            return True
        page.wait_for_timeout(250)
    return condition()
