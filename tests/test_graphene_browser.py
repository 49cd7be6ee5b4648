"""Proofreading in the stock Neuroglancer (Debian's Chromium, headless) through the graphene:// source.

The viewer is signed in the way a person does it (/login#token=..., an HttpOnly cookie), opens the
demo with a graphene segmentation layer, and edits through its own graph connection: merges with
``graphConnection.bulkMerge`` and splits with ``graphConnection.submitMulticut`` — the functions the
merge and multicut tools call on Enter/Submit. Clicks are not used: ctrl+clicks on a WebGL canvas
need pixel positions of supervoxels that vary with rendering; the functions are the layer's own
JavaScript API, so the requests, the selection update and the mesh reload are the stock ones.
Screenshots before and after each edit go to $AXONLINK_SCREENSHOTS (default test-artifacts/screenshots).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np
import pytest

from tests.browser import SCREENSHOTS, VIEWPORT, RecordingServer, page_errors, wait_until
from tests.helpers import proofreader_token

pytestmark = pytest.mark.browser

GC = "viewer.layerManager.getLayerByName('segmentation').layer.graphConnection.value"
SELECTED = (
    "[...viewer.layerManager.getLayerByName('segmentation').layer.displayState"
    ".segmentationGroupState.value.selectedSegments].map(String)"
)


@pytest.fixture
def proofread(fresh_demo):
    """A live server on a demo of its own, the demo's truth, and a proofreader's token."""
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids
    from server.runner import BackgroundServer

    recording = RecordingServer(fresh_demo)
    truth = json.loads((fresh_demo.demo_dir / "ground_truth.json").read_text())
    with BackgroundServer(recording.app) as server:
        recording.url = server.url
        recording.graph = Graph.open(fresh_demo.database_url, "demo")
        recording.token = proofreader_token(fresh_demo.database_url, "demo", user="viewer-proofreader")
        recording.as_sv = lambda label: int(supervoxel_ids(np.array([int(label)], dtype=np.uint64))[0])
        recording.neuron_of = {recording.as_sv(k): v for k, v in truth["supervoxel_to_neuron"].items()}
        recording.false_merges = [[recording.as_sv(x) for x in pair] for pair in truth["false_merges"]]
        yield recording


def patient(page, condition, seconds=30.0):
    """wait_until with room for a CI machine busy with other tests (the viewer renders on the CPU)."""
    return wait_until(page, condition, seconds)


def voxel_of(server, sv):
    from segmentation.datasets import Datasets
    from segmentation.graph.points import voxel_of_supervoxel

    graph = server.graph
    url = Datasets(server.app.config["AXONLINK_SETTINGS"].database_url).get("demo").layer("segmentation").url
    return voxel_of_supervoxel(url, sv, graph.index.boxes[graph.index.index_of([sv])[0]])


def graphene_state(server, segments, position):
    state = server.get_json("/api/v1/datasets/demo/state")
    layer = next(l for l in state["layers"] if l["type"] == "segmentation")
    layer["source"] = f"graphene://{server.url}/segmentation/table/demo"
    layer["segments"] = [str(s) for s in segments]
    layer["toolBindings"] = {"M": "grapheneMergeSegments", "C": "grapheneMulticutSegments"}
    state["position"] = [c + 0.5 for c in position]
    state["crossSectionScale"] = 0.5  # zoomed in: the viewer asks for leaves and colours supervoxels by root
    state["layout"] = "xy-3d"
    return state


def sign_in_and_open(browser, server, state):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = page_errors(page)
    # sign in as the login page does (its own flow is tested in test_viewer_browser.py); the login page
    # then opens "/", whose state would race with the one opened here
    page.goto(f"{server.url}/login")
    signed_in = page.evaluate(
        """token => fetch('/api/v1/session', {method: 'POST', body: JSON.stringify({token})})
                                          .then(r => r.json())""",
        server.token,
    )
    assert signed_in["user"], signed_in
    server.forget()
    page.goto(f"{server.url}/v/axonlink/#!" + quote(json.dumps(state), safe=""))
    page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
    page.wait_for_function(f"(() => {{ try {{ return !!{GC}; }} catch (e) {{ return false; }} }})()", timeout=30_000)
    return context, page, errors


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_merge_and_multicut_in_the_stock_viewer(browser, proofread):
    server, graph = proofread, proofread.graph
    kept, wrong = server.false_merges[0]  # one root holding two neurons
    root = graph.root(kept)
    piece = next(sv for sv, n in server.neuron_of.items() if n == server.neuron_of[kept] and graph.root(sv) != root)
    other = graph.root(piece)
    at_kept, at_piece, at_wrong = voxel_of(server, kept), voxel_of(server, piece), voxel_of(server, wrong)
    context, page, errors = sign_in_and_open(browser, server, graphene_state(server, [root, other], at_kept))
    try:
        # what the 2D and 3D views asked of the server
        def asked(fragment):
            return [p for p in server.paths() if fragment in p]

        assert patient(page, lambda: asked("/segmentation/table/demo/info"))
        for selected in (root, other):  # both selected neurons get their mesh manifests
            assert patient(page, lambda: asked(f"/meshing/api/v1/table/demo/manifest/{selected}:0")), selected
        assert patient(page, lambda: asked("/data/demo@supervoxels/segmentation/graphene_meshes/dynamic/"))
        assert patient(
            page, lambda: [p for p in asked("/data/demo@supervoxels/segmentation/") if "graphene_meshes" not in p]
        )  # supervoxel chunks for 2D
        assert patient(page, lambda: asked(f"/segmentation/api/v1/table/demo/node/{root}/leaves"))
        shot(page, "1-before-merge.png")

        merged = page.evaluate(f"""(async () => {{
          const gc = {GC};
          const sub = {{id: 'axonlink-test-merge', locked: false,
            sink: {{segmentId: {kept}n, rootId: {root}n, position: Float32Array.of(...{json.dumps(at_kept)})}},
            source: {{segmentId: {piece}n, rootId: {other}n, position: Float32Array.of(...{json.dumps(at_piece)})}}}};
          gc.state.mergeState.merges.value = [sub];
          await gc.bulkMerge([sub]);
          return {{root: String(sub.mergedRoot), status: sub.status || null, error: sub.error || null}};
        }})()""")
        graph.sync()
        new_root = graph.root(kept)
        assert merged["error"] is None and merged["root"] == str(new_root) != str(root), merged
        assert graph.root(piece) == new_root
        assert [op["kind"] for op in graph.user_operations("viewer-proofreader")] == ["merge"]  # the cookie's user
        assert patient(page, lambda: str(new_root) in page.evaluate(SELECTED))
        assert str(root) not in page.evaluate(SELECTED) and str(other) not in page.evaluate(SELECTED)
        assert patient(page, lambda: asked(f"/meshing/api/v1/table/demo/manifest/{new_root}:0"))
        shot(page, "2-after-merge.png")

        # multicut: red group (JSON "sources") the kept neuron, blue group ("sinks") the falsely merged piece
        split = page.evaluate(f"""(async () => {{
          const gc = {GC};
          const ms = gc.state.multicutState;
          ms.focusSegment.value = {new_root}n;
          ms.sinks.add({{segmentId: {kept}n, rootId: {new_root}n, position: Float32Array.of(...{json.dumps(at_kept)})}});
          ms.sources.add({{segmentId: {wrong}n, rootId: {new_root}n,
                           position: Float32Array.of(...{json.dumps(at_wrong)})}});
          return await gc.submitMulticut(Float64Array.of(8, 8, 40));
        }})()""")
        assert split is True
        graph.sync()
        assert [op["kind"] for op in graph.user_operations("viewer-proofreader")] == ["merge", "split"]
        assert graph.root(kept) != graph.root(wrong) and graph.root(kept) == graph.root(piece)
        halves = {str(graph.root(kept)), str(graph.root(wrong))}
        assert patient(page, lambda: halves <= set(page.evaluate(SELECTED)))
        assert str(new_root) not in page.evaluate(SELECTED)
        for half in halves:
            assert patient(page, lambda: asked(f"/meshing/api/v1/table/demo/manifest/{half}:0")), half
        shot(page, "3-after-split.png")

        # an edit through the API while the viewer is open: the selection follows within seconds
        from tests.helpers import call

        status, body = call(
            f"{server.url}/segmentation/api/v1/table/demo/merge",
            json.dumps([[str(kept), 0, 0, 0], [str(wrong), 0, 0, 0]]).encode(),
            token=server.token,
        )
        assert status == 200, body
        rejoined = json.loads(body)["new_root_ids"][0]
        assert patient(page, lambda: set(page.evaluate(SELECTED)) == {str(rejoined)}, seconds=15), page.evaluate(
            SELECTED
        )
        assert patient(page, lambda: asked(f"/meshing/api/v1/table/demo/manifest/{rejoined}:0"))
        # the page's undo control takes back this user's newest edit (that API merge)
        page.click("#axonlink-undo")
        assert patient(page, lambda: "Undone" in page.inner_text("#axonlink-undo"))
        graph.sync()
        assert graph.root(kept) != graph.root(wrong)
        apart = {str(graph.root(kept)), str(graph.root(wrong))}
        assert patient(page, lambda: set(page.evaluate(SELECTED)) == apart, seconds=15), page.evaluate(SELECTED)
        assert [op["kind"] for op in graph.user_operations("viewer-proofreader")] == ["merge", "split", "merge", "undo"]
        failed = [(path, status) for path, status in server.requests if status >= 500]
        assert not failed, failed
        assert not [e for e in errors if "graphene" in e.lower() or "manifest" in e.lower()], errors
    finally:
        context.close()


def test_a_viewer_without_the_proofreader_role_is_refused_and_nothing_changes(browser, proofread):
    server, graph = proofread, proofread.graph
    kept, wrong = server.false_merges[0]
    root = graph.root(kept)
    server.token = proofreader_token(server.app.config["AXONLINK_SETTINGS"].database_url, "demo", user="looker")
    from segmentation.access import Accounts

    Accounts(server.app.config["AXONLINK_SETTINGS"].database_url).grant("looker", "demo", "viewer")
    context, page, errors = sign_in_and_open(browser, server, graphene_state(server, [root], voxel_of(server, kept)))
    try:
        message = page.evaluate(f"""(async () => {{
          const gc = {GC};
          const ms = gc.state.multicutState;
          ms.focusSegment.value = {root}n;
          ms.sinks.add({{segmentId: {kept}n, rootId: {root}n, position: Float32Array.of(0, 0, 0)}});
          ms.sources.add({{segmentId: {wrong}n, rootId: {root}n, position: Float32Array.of(0, 0, 0)}});
          try {{ await gc.submitMulticut(Float64Array.of(8, 8, 40)); return 'no error'; }}
          catch (e) {{ return String(e && e.message || e); }}
        }})()""")
        assert "proofreader" in message, message  # the server's JSON message reaches the viewer
        graph.sync()
        assert graph.root(kept) == graph.root(wrong) == root
    finally:
        context.close()
