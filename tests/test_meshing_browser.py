"""A dataset with no meshes of its own, meshed by `axonlink mesh`, shown in 3D by the stock Neuroglancer
(Debian's Chromium, headless) through its graphene:// source: the manifest, byte-range fragment reads
(206) and fragments made after a split all succeed, and the 3D panel draws the neuron."""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np
import pytest

from tests.browser import SCREENSHOTS, VIEWPORT, RecordingServer, page_errors, wait_until
from tests.meshing_helpers import MESH_CHUNK, OFFSET, RESOLUTION, SHAPE, sv, write_tubes

pytestmark = pytest.mark.browser


def _state(url: str, segments) -> dict:
    center = (OFFSET + np.array(SHAPE) / 2).tolist()
    return {
        "dimensions": {axis: [float(r) * 1e-9, "m"] for axis, r in zip("xyz", RESOLUTION)},
        "position": center,
        "projectionScale": 110,  # in units of x (8 nm): the volume fills the panel
        "layers": [
            {
                "type": "segmentation",
                "name": "segmentation",
                "source": f"graphene://{url}/segmentation/table/tubes",
                "segments": [str(s) for s in segments],
            }
        ],
        "layout": "3d",
    }


def _panel_change(page) -> float:
    """Share of the 3D panel's pixels the segmentation layer changes (shown against hidden)."""
    import io

    from PIL import Image

    box = page.evaluate("""(() => {
      const r = document.querySelector(".neuroglancer-rendered-data-panel").getBoundingClientRect();
      return {x: r.x, y: r.y, width: r.width, height: r.height};
    })()""")

    def grab():
        return np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB"), dtype=np.int16)

    shown = grab()
    page.evaluate("viewer.layerManager.getLayerByName('segmentation').setVisible(false)")
    page.wait_for_timeout(300)
    hidden = grab()
    page.evaluate("viewer.layerManager.getLayerByName('segmentation').setVisible(true)")
    page.wait_for_timeout(300)
    return float((abs(shown - hidden).max(axis=2) > 20).mean())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_stock_viewer_shows_built_in_meshes_and_the_pieces_of_a_split(browser, tubes):
    from segmentation.datasets import Datasets
    from segmentation.graph import Graph
    from segmentation.meshing import DatasetMeshes, mesh_dataset
    from server.runner import BackgroundServer

    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, progress=False)
    graph = Graph.open(tubes.database_url, "tubes")
    graph.split([sv(1), sv(2), sv(3)], [sv(4)], user="p")  # the chunks on the cut need new fragments
    pieces = sorted({int(graph.root(sv(1))), int(graph.root(sv(4)))})
    recording = RecordingServer(tubes)
    with BackgroundServer(recording.app) as server:
        recording.url = server.url
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        errors = page_errors(page)
        try:
            page.goto(f"{server.url}/v/axonlink/#!" + quote(json.dumps(_state(server.url, pieces)), safe=""))
            page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)

            def asked(fragment):
                return [(p, s) for p, s in recording.requests if fragment in p]

            for piece in pieces:
                assert wait_until(page, lambda: asked(f"/manifest/{piece}:0"), 30), piece
            mesh_files = "/data/tubes@supervoxels/segmentation/graphene_meshes/"
            # first the cut chunks' quick twins (unsimplified, made on request), the rest stored fragments
            assert wait_until(page, lambda: asked(mesh_files + "initial/") and asked(mesh_files + "dynamic/"), 30)
            page.wait_for_function("window.viewer.isReady()", timeout=30_000)
            page.wait_for_timeout(1500)
            fragments = asked(mesh_files)
            assert {s for _, s in asked(mesh_files + "initial/")} <= {206, 200, 304}, fragments
            assert {s for _, s in asked(mesh_files + "dynamic/")} == {200}, fragments
            assert all(p.endswith("q") for p, _ in asked(mesh_files + "dynamic/")), fragments
            assert not [(p, s) for p, s in recording.requests if s >= 400 and "favicon" not in p]
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "built-in-meshes-after-split-quick.png"))
            assert _panel_change(page) > 0.01  # the tubes are drawn

            # then the switch: made in the background, the cut chunks' new fragments are what a viewer gets
            url = Datasets(tubes.database_url).get("tubes").layer("segmentation").url
            assert DatasetMeshes.of(tubes.home, "tubes", url).settle()
            recording.requests.clear()
            page.reload()
            page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
            assert wait_until(page, lambda: asked(mesh_files + "dynamic/"), 30)
            page.wait_for_function("window.viewer.isReady()", timeout=30_000)
            page.wait_for_timeout(1500)
            fragments = asked(mesh_files)
            assert {s for _, s in asked(mesh_files + "dynamic/")} == {200}, fragments
            assert not any(p.endswith("q") for p, _ in asked(mesh_files + "dynamic/")), fragments  # switched
            assert not [(p, s) for p, s in recording.requests if s >= 400 and "favicon" not in p]
            page.screenshot(path=str(SCREENSHOTS / "built-in-meshes-after-split.png"))
            assert _panel_change(page) > 0.01
            assert not [e for e in errors if "mesh" in e.lower() or "draco" in e.lower()], errors
        finally:
            context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_stock_viewer_shows_multiresolution_meshes_of_a_dataset_without_a_graph(
    browser, settings, small_volumes, tmp_path
):
    from segmentation import db
    from segmentation.datasets import Datasets
    from segmentation.meshing import mesh_dataset
    from server.runner import BackgroundServer

    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add(
        "labels", image=small_volumes["image"], segmentation=write_tubes(tmp_path / "seg")
    )
    mesh_dataset(settings.database_url, settings.home, "labels", chunk=MESH_CHUNK, progress=False)
    recording = RecordingServer(settings)
    with BackgroundServer(recording.app) as server:
        state = _state(server.url, [4, 12])
        state["layers"][0]["source"] = f"precomputed://{server.url}/data/labels/segmentation"
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        errors = page_errors(page)
        try:
            page.goto(f"{server.url}/v/axonlink/#!" + quote(json.dumps(state), safe=""))
            page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
            mesh_files = "/data/labels/segmentation/axonlink_meshes/"

            def asked(suffix):
                return [(p, s) for p, s in recording.requests if p.startswith(mesh_files) and p.endswith(suffix)]

            for label in (4, 12):
                assert wait_until(page, lambda: asked(f"/{label}.index") and asked(f"/{label}"), 30), label
            page.wait_for_function("window.viewer.isReady()", timeout=30_000)
            page.wait_for_timeout(1500)
            statuses = {s for p, s in recording.requests if p.startswith(mesh_files)}
            assert statuses <= {200, 206, 304}, recording.requests
            assert {s for _, s in asked("/4")} == {206}  # fragments by strict byte range
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "multiresolution-meshes.png"))
            assert _panel_change(page) > 0.005  # two supervoxel-sized pieces are drawn
            assert not [e for e in errors if "mesh" in e.lower() or "draco" in e.lower()], errors
        finally:
            context.close()
