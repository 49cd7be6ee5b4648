"""The bundled Neuroglancer viewer in Debian's Chromium (headless, software WebGL), against a live server."""
from __future__ import annotations

import json
import os
import threading
import urllib.request
from urllib.parse import quote

import pytest

from server import create_app
from server.runner import BackgroundServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


class RecordingServer:
    """The axonlink app on a free port, remembering every path it was asked for."""

    def __init__(self, settings):
        self.app = create_app(settings)
        self.paths: list[str] = []
        self._lock = threading.Lock()
        inner = self.app.wsgi_app

        def record(environ, start_response):
            with self._lock:
                self.paths.append(environ.get("PATH_INFO", ""))
            return inner(environ, start_response)

        self.app.wsgi_app = record

    def chunk_requests(self, layer: str) -> list[str]:
        with self._lock:
            return [p for p in self.paths if p.startswith(f"/data/demo/{layer}/") and "-" in p.rsplit("/", 1)[-1]]


@pytest.fixture(scope="module")
def live(demo_home):
    recording = RecordingServer(demo_home)
    with BackgroundServer(recording.app) as server:
        recording.url = server.url
        yield recording


def open_viewer(browser, url):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("typeof window.viewer !== 'undefined'", timeout=30_000)
    webgl = page.evaluate("!!document.createElement('canvas').getContext('webgl2')")
    if not webgl:
        pytest.skip("Chromium could not create a WebGL 2 context with SwiftShader on this machine")
    page.wait_for_function("window.viewer.isReady()", timeout=60_000)
    return page, errors


def wait_for_chunks(live, page, layers):
    for _ in range(60):
        if all(live.chunk_requests(layer) for layer in layers):
            return
        page.wait_for_timeout(500)


def test_state_in_the_fragment_is_loaded_and_chunks_are_fetched(browser, live, tmp_path):
    state = json.load(urllib.request.urlopen(f"{live.url}/api/v1/datasets/demo/state"))
    state["position"] = [100.5, 300.5, 40.5]
    truth = list(json.loads((live.app.config["AXONLINK_SETTINGS"].demo_dir / "ground_truth.json").read_text())
                 ["supervoxel_to_neuron"])[:2]
    state["layers"][1]["segments"] = truth
    page, errors = open_viewer(browser, f"{live.url}/#!" + quote(json.dumps(state), safe=""))
    wait_for_chunks(live, page, ["image", "segmentation"])
    loaded = page.evaluate("viewer.state.toJSON()")
    assert page.evaluate("location.pathname") == "/v/axonlink/"
    assert [(l["name"], l["type"]) for l in loaded["layers"]] == [("image", "image"), ("segmentation", "segmentation")]
    assert all(abs(a - b) < 0.5 for a, b in zip(loaded["position"], state["position"]))
    assert sorted(loaded["layers"][1]["segments"]) == sorted(truth)
    assert live.chunk_requests("image"), "no image chunk reached the server"
    assert live.chunk_requests("segmentation"), "no segmentation chunk reached the server"
    assert not errors, errors
    status = page.evaluate("document.body.innerText")
    assert "Connecting to Python server" not in status and "Disconnected" not in status
    page.screenshot(path=str(tmp_path / "viewer.png"))
    page.close()


def test_root_without_a_fragment_opens_the_first_dataset(browser, live):
    dataset = json.load(urllib.request.urlopen(f"{live.url}/api/v1/datasets/demo"))
    page, errors = open_viewer(browser, f"{live.url}/")
    loaded = page.evaluate("viewer.state.toJSON()")
    assert [l["name"] for l in loaded["layers"]] == ["image", "segmentation"]
    centre = [o + s / 2 for o, s in zip(dataset["voxel_offset"], dataset["volume_size"])]
    assert all(abs(a - b) < 0.5 for a, b in zip(loaded["position"], centre))
    assert page.evaluate("location.hash").startswith("#!")
    assert not errors, errors
    page.close()
