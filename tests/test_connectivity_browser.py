"""A neuron's synapses in the stock Neuroglancer (Debian's Chromium, headless, WebGL 2 on SwiftShader).

The viewer opens dataset ``wired`` with the state :func:`frontend_config.default_state` gives a
dataset with synapses (its graphene segmentation and the ``synapses`` annotation layer linked to it),
one neuron selected. The browser's own requests show it read the live annotation source (``info``,
then ``rel_pre``/``rel_post`` of the selected root); screenshots of the viewer's panels with the
synapse layer shown and hidden show its red (pre) and blue (post) ends drawn. After a merge through
the proofreading API the merged root is selected and the browser's ``rel_pre`` answer for it holds
the synapses of both neurons. The screenshot goes to $AXONLINK_SCREENSHOTS (default
test-artifacts/screenshots)/synapses.png.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from urllib.parse import quote, urlparse

import numpy as np
import pytest
import requests

from segmentation.graph.ids import supervoxel_ids
from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until
from tests.helpers import (
    wired_synapse_server,
)

pytestmark = pytest.mark.browser

SYNAPSES = 300
ANNOTATIONS = "/annotations/wired/synapses"
PANELS = """[...document.querySelectorAll('.neuroglancer-rendered-data-panel')].map(e => {
  const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"""


@pytest.fixture
def wired_server(settings, tmp_path, monkeypatch):
    """Dataset ``wired`` with SYNAPSES random synapses imported over HTTP, served live (tests/helpers.py)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient writes its caches under ~
    with wired_synapse_server(settings, tmp_path, SYNAPSES) as server:
        yield server


def svs_at(labels, columns, name):
    xyz = np.stack([np.asarray(columns[f"{name}_{a}"]).astype(int) for a in "xyz"], axis=1)
    return supervoxel_ids(labels[xyz[:, 0], xyz[:, 1], xyz[:, 2]].astype(np.uint64))


def roots_of(server, svs) -> np.ndarray:
    answer = requests.post(
        f"{server.url}/segmentation/api/v1/table/wired/roots", json={"node_ids": [str(s) for s in svs]}
    )
    assert answer.status_code == 200, answer.text
    return np.array([int(r) for r in answer.json()["root_ids"]], dtype=np.uint64)


def annotation_ids(body: bytes) -> list[int]:
    """The annotation ids of a list answer: a uint64 count, 28-byte records (a LINE and its size), the ids."""
    (count,) = np.frombuffer(body[:8], "<u8").tolist()
    assert len(body) == 8 + count * (28 + 8), (count, len(body))
    return np.frombuffer(body[8 + 28 * count :], "<u8").tolist()


def colour_pixels(page) -> dict:
    """Pixels of the synapse colours (red pre ends, blue post ends) over the viewer's panels."""
    from PIL import Image

    red = blue = 0
    for x, y, w, h in page.evaluate(PANELS):
        if w < 50 or h < 50:
            continue
        clip = {"x": x + 2, "y": y + 2, "width": w - 4, "height": h - 4}
        pixels = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"), dtype=np.int16)
        r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        red += int(((r > 150) & (r - g > 90) & (r - b > 90)).sum())
        blue += int(((b > 150) & (b - r > 90) & (b - g > 40)).sum())
    return {"red": red, "blue": blue}


def set_visible(page, layer: str, visible: bool) -> None:
    page.evaluate(f"viewer.layerManager.getLayerByName({json.dumps(layer)}).setVisible({json.dumps(visible)})")
    page.wait_for_timeout(300)
    page.wait_for_function("window.viewer.isReady()", timeout=20_000)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the HTTP tests cover PostgreSQL
def test_the_synapse_layer_shows_the_selected_neurons_synapses_and_follows_a_merge(browser, wired_server):
    from frontend_config import default_state
    from segmentation.datasets import Datasets

    server = wired_server
    pre_svs = svs_at(server.labels, server.columns, "pre_pt_position")
    pre = np.zeros(len(pre_svs), np.uint64)
    pre[pre_svs != 0] = roots_of(server, pre_svs[pre_svs != 0])
    neuron = int(Counter(pre.tolist()).most_common(1)[0][0])
    found = requests.get(f"{server.url}/api/v1/datasets/wired/neurons/{neuron}/partners", params={"limit": 100}).json()
    partner = next(int(p["root_id"]) for p in found["outputs"]["partners"] if int(p["root_id"]) not in (0, neuron))

    def rel_pre(root):
        answer = requests.get(f"{server.url}{ANNOTATIONS}/rel_pre/{root}")
        assert answer.status_code == 200, answer.text
        return annotation_ids(answer.content)

    before = {root: rel_pre(root) for root in (neuron, partner)}
    assert len(before[neuron]) == int((pre == neuron).sum()) > 0 and before[partner]

    dataset = Datasets(server.settings.database_url).get("wired")
    state = default_state(dataset, server.url, graphene=True, synapses=True)
    layers = {layer["name"]: layer for layer in state["layers"]}
    assert layers["synapses"]["source"] == f"precomputed://{server.url}{ANNOTATIONS}"
    assert layers["synapses"]["linkedSegmentationLayer"] == {
        "pre_synaptic_cell": "segmentation",
        "post_synaptic_cell": "segmentation",
    }
    layers["segmentation"]["segments"] = [str(neuron)]
    state["layout"] = "xy-3d"

    page = browser.new_page(viewport=VIEWPORT)
    errors = page_errors(page)
    responses = []  # every answer the page got: (path, status, the response)
    page.on("response", lambda r: responses.append((urlparse(r.url).path, r.status, r)))

    def answered(path):
        return [status for p, status, _ in responses if p == path]

    try:
        page.goto(f"{server.url}/v/axonlink/#!" + quote(json.dumps(state), safe=""))
        page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
        loaded = page.evaluate("viewer.state.toJSON()")
        synapse_layer = next(layer for layer in loaded["layers"] if layer["name"] == "synapses")
        assert synapse_layer["type"] == "annotation"
        assert sorted(synapse_layer["filterBySegmentation"]) == ["post_synaptic_cell", "pre_synaptic_cell"]

        # (a) the browser read the live source: its info, then the selected neuron's synapses on each side
        for path in (f"{ANNOTATIONS}/info", f"{ANNOTATIONS}/rel_pre/{neuron}", f"{ANNOTATIONS}/rel_post/{neuron}"):
            assert wait_until(page, lambda: answered(path), 20), (path, [p for p, _, _ in responses][-30:])
            assert set(answered(path)) == {200}, (path, answered(path))
        assert not [p for p, _, _ in responses if p.startswith(f"{ANNOTATIONS}/spatial")]  # filtered by segment

        # (b) drawn: red pre ends and blue post ends appear in the panels with the layer shown, not hidden
        page.wait_for_function("window.viewer.isReady()", timeout=20_000)
        page.wait_for_timeout(1000)
        shown = colour_pixels(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "synapses.png"))
        set_visible(page, "synapses", False)
        hidden = colour_pixels(page)
        set_visible(page, "synapses", True)
        # (about 7000 and 6000 here, against 300 of each colour elsewhere in the panels with the layer hidden)
        assert shown["red"] > hidden["red"] + 1000 and shown["blue"] > hidden["blue"] + 1000, (shown, hidden)

        # (c) merge the neuron with its main output partner; the merged root's synapses are both neurons'
        sv_neuron = int(pre_svs[pre == neuron][0])
        sv_partner = int(pre_svs[pre == partner][0])
        merged = requests.post(
            f"{server.url}/segmentation/api/v1/table/wired/merge",
            json=[[str(sv_neuron), 0, 0, 0], [str(sv_partner), 0, 0, 0]],
            headers={"Authorization": f"Bearer {server.proofreader}"},
        )
        assert merged.status_code == 200, merged.text
        new_root = int(merged.json()["new_root_ids"][0])
        assert new_root not in (neuron, partner)
        layers["segmentation"]["segments"] = [str(new_root)]
        page.evaluate("state => viewer.state.restoreState(state)", state)
        path = f"{ANNOTATIONS}/rel_pre/{new_root}"
        assert wait_until(page, lambda: answered(path), 20), [p for p, _, _ in responses][-30:]
        response = next(r for p, status, r in responses if p == path and status == 200)
        ids = annotation_ids(response.body())
        assert len(ids) == len(before[neuron]) + len(before[partner])
        assert sorted(ids) == sorted(before[neuron] + before[partner])
        assert not [e for e in errors if "/annotations/" in e], errors
    finally:
        page.close()
