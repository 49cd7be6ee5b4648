"""The bundled Neuroglancer viewer in Debian's Chromium (headless, WebGL 2 on SwiftShader) against a live server.

The server records the path and status of every request, so the tests can tell
that the viewer really fetched image and segmentation chunks from it.
Set ``AXONLINK_VIEWER_SCREENSHOT=/some/file.png`` to keep a copy of the screenshot.
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
from urllib.parse import quote, unquote

import pytest

from server.runner import BackgroundServer
from tests.browser import VIEWPORT, RecordingServer, page_errors, wait_until

CLIENT_PATH = "/v/axonlink/"
OK_STATUSES = (200, 206, 304)
STATUS_TEXTS = ("Connecting to Python server", "Disconnected from Python server")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(demo_home):
    recording = RecordingServer(demo_home)
    with BackgroundServer(recording.app) as server:
        recording.url = server.url
        yield recording


@pytest.fixture(scope="module")
def dataset(live):
    """The first registered dataset (the one ``/`` opens), its scale keys per layer."""
    first = live.get_json("/api/v1/datasets")["datasets"][0]
    first["scale_keys"] = {
        layer: {s["key"] for s in live.get_json(f"/data/{first['name']}/{layer}/info")["scales"]}
        for layer in ("image", "segmentation")
    }
    return first


def open_viewer(browser, live, url):
    """Load ``url``; wait until the client exists and has loaded what it shows. Returns (page, errors)."""
    live.forget()
    page = browser.new_page(viewport=VIEWPORT)
    errors = page_errors(page)
    page.goto(url)
    page.wait_for_function("typeof window.viewer !== 'undefined'", timeout=20_000)
    page.wait_for_function("window.viewer.isReady()", timeout=30_000)
    return page, errors


def loaded_state(page) -> dict:
    """The state the client has loaded, once it is seen to run under CLIENT_PATH with the image and segmentation layers."""
    assert page.evaluate("location.pathname") == CLIENT_PATH
    loaded = page.evaluate("viewer.state.toJSON()")
    assert [(l["name"], l["type"]) for l in loaded["layers"]] == [
        ("image", "image"),
        ("synapses", "annotation"),  # the demo has synapses: a selected neuron's show
        ("segmentation", "segmentation"),
    ]
    return loaded


def fragment_state(page) -> dict:
    hash_ = page.evaluate("location.hash")
    assert hash_.startswith("#!"), f"no state in the URL fragment: {hash_[:80]!r}"
    return json.loads(unquote(hash_[2:]))


def covering(chunks, position, scale_keys):
    """Answered chunk requests whose box holds ``position`` (voxels).

    Besides 200, Chromium's cache gets 304 (revalidation) and 206 (resuming a
    chunk it cancelled half way) answers.
    """
    return [
        (key, box)
        for key, box, status in chunks
        if status in OK_STATUSES
        and key in scale_keys
        and all(box[2 * i] <= position[i] < box[2 * i + 1] for i in range(3))
    ]


def screenshot_array(page, clip):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"), dtype=np.int16)


def set_visible(page, layer: str, visible: bool) -> None:
    page.evaluate(f"viewer.layerManager.getLayerByName({json.dumps(layer)}).setVisible({json.dumps(visible)})")
    page.wait_for_timeout(100)
    page.wait_for_function("window.viewer.isReady()", timeout=20_000)


def xy_rendering(page) -> dict:
    """What each layer draws in the xy panel (the top-left one of the 4-panel layout), from screenshots
    with the layer shown and hidden: the share of the panel it changes, how much it changes a patch
    just up-left of the crosshair (the position), and how the EM alone looks (share of grey, its spread).
    """
    x, y, w, h = page.evaluate("""(() => {
      const r = document.querySelector(".neuroglancer-rendered-data-panel").getBoundingClientRect();
      return [r.x, r.y, r.width, r.height];
    })()""")
    assert x < 10 and y < 100 and w > 300 and h > 200, ("the first panel is not the top-left xy one", x, y, w, h)
    clip = {"x": x + 10, "y": y + 60, "width": w - 20, "height": h - 70}  # clear of the axis legend
    cx, cy = int(w / 2 - 10), int(h / 2 - 60)  # the crosshair, in the clip
    shown = screenshot_array(page, clip)
    result = {}
    for layer in ("image", "segmentation"):
        set_visible(page, layer, False)
        hidden = screenshot_array(page, clip)
        set_visible(page, layer, True)
        change = abs(shown - hidden).max(axis=2)
        result[f"{layer}_share"] = float((change > 20).mean())
        result[f"{layer}_at_position"] = float(change[cy - 10 : cy - 3, cx - 10 : cx - 3].mean())
        if layer == "segmentation":
            spread = hidden.max(axis=2) - hidden.min(axis=2)
            grey = hidden[spread < 12].mean(axis=1)
            result["em_grey_share"] = float(grey.size / spread.size)
            result["em_grey_std"] = float(grey.std())
    return result


def assert_em_renders(rendering: dict) -> None:
    assert rendering["image_share"] > 0.3, rendering
    assert rendering["em_grey_share"] > 0.5 and rendering["em_grey_std"] > 10, (
        f"the EM is not textured grey: {rendering}"
    )


def test_fragment_state_is_loaded_and_both_layers_fetch_chunks(browser, live, dataset, tmp_path):
    """A #! state with a non-centre position and two selected neurons; the client runs under /v/axonlink/."""
    from cloudvolume import CloudVolume

    name = dataset["name"]
    state = live.get_json(f"/api/v1/datasets/{name}/state")
    truth = json.loads((live.app.config["AXONLINK_SETTINGS"].demo_dir / "ground_truth.json").read_text())
    # Two neurons, each at the middle point of its first skeleton branch; the view goes to the first.
    branches = [truth["neurons"][n]["skeleton_voxels"][0] for n in list(truth["neurons"])[:2]]
    points = [branch[len(branch) // 2] for branch in branches]
    segmentation = CloudVolume(f"precomputed://{live.url}/data/{name}/segmentation", progress=False)
    segments = sorted({str(int(segmentation[x, y, z][0, 0, 0, 0])) for x, y, z in points} - {"0"})
    assert len(segments) == 2, f"expected two neurons under {points}, found {segments}"
    position = [c + 0.5 for c in points[0]]
    centre = [o + s / 2 for o, s in zip(dataset["voxel_offset"], dataset["volume_size"])]
    assert max(abs(a - b) for a, b in zip(position, centre)) > 10, "pick a point away from the centre"
    state["position"] = position
    by_name = {layer["name"]: layer for layer in state["layers"]}
    by_name["segmentation"]["segments"] = segments

    page, errors = open_viewer(browser, live, f"{live.url}/#!" + quote(json.dumps(state), safe=""))
    try:
        loaded = loaded_state(page)
        assert all(abs(a - b) < 0.5 for a, b in zip(loaded["position"], position)), loaded["position"]
        seg_layer = next(l for l in loaded["layers"] if l["name"] == "segmentation")
        assert sorted(seg_layer["segments"]) == segments
        # The fragment now carries the loaded state (the client rewrites it).
        assert all(abs(a - b) < 0.5 for a, b in zip(fragment_state(page)["position"], position))
        for layer in ("image", "segmentation"):
            assert wait_until(
                page, lambda: covering(live.chunks(name, layer), position, dataset["scale_keys"][layer])
            ), (
                f"no {layer} chunk holding {position} reached the server; {layer} requests: "
                f"{live.chunks(name, layer)[:10]}"
            )
        failed = [
            (key, box, status)
            for layer in ("image", "segmentation")
            for key, box, status in live.chunks(name, layer)
            if status not in OK_STATUSES
        ]
        assert not failed, f"chunk requests that failed: {failed[:10]}"
        # graphene colours a root's supervoxels once it has its leaves (asked per chunk when zoomed in)
        assert wait_until(page, lambda: any(f"/node/{segments[0]}/leaves" in p for p in live.paths()))
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / "viewer.png"))
        if os.environ.get("AXONLINK_VIEWER_SCREENSHOT"):
            page.screenshot(path=os.environ["AXONLINK_VIEWER_SCREENSHOT"])
        rendering = xy_rendering(page)
        assert_em_renders(rendering)
        # The first selected neuron lies under the position: highlighted there.
        assert rendering["segmentation_at_position"] > 20, f"no selected segment drawn at the position: {rendering}"
        assert not [e for e in errors if "Failed to determine token" in e], errors
        assert not errors, errors
        assert not event_stream_requests(live)
        assert not [text for text in STATUS_TEXTS if text in page.evaluate("document.body.innerText")]
    finally:
        page.close()


def test_root_without_a_fragment_opens_the_first_dataset(browser, live, dataset):
    """``/`` alone: the default state of the first dataset, centred, and the URL then carries it."""
    page, errors = open_viewer(browser, live, f"{live.url}/")
    try:
        loaded = loaded_state(page)
        by_name = {layer["name"]: json.dumps(layer["source"]) for layer in loaded["layers"]}
        assert f"/data/{dataset['name']}/image" in by_name["image"]
        assert f"graphene://{live.url}/segmentation/table/{dataset['name']}" in by_name["segmentation"]
        centre = [o + s / 2 for o, s in zip(dataset["voxel_offset"], dataset["volume_size"])]
        assert all(abs(a - b) < 0.5 for a, b in zip(loaded["position"], centre)), (loaded["position"], centre)
        in_url = fragment_state(page)
        assert [l["name"] for l in in_url["layers"]] == ["image", "synapses", "segmentation"]
        assert all(abs(a - b) < 0.5 for a, b in zip(in_url["position"], centre))
        for layer in ("image", "segmentation"):
            assert wait_until(
                page, lambda: covering(live.chunks(dataset["name"], layer), centre, dataset["scale_keys"][layer])
            ), f"no {layer} chunk at the centre"
        rendering = xy_rendering(page)
        assert_em_renders(rendering)
        # Nothing selected: every segment is drawn, over much of the panel.
        assert rendering["segmentation_share"] > 0.2, f"the segmentation is not drawn: {rendering}"
        assert not errors, errors
        assert not event_stream_requests(live)
    finally:
        page.close()


def event_stream_requests(live) -> list[str]:
    return [path for path in live.paths() if path.startswith("/events/")]


def test_no_event_stream_and_no_python_server_status(browser, live):
    """The client's EventSource on /events/ is the config script's stand-in: it opens at once, so neither
    "Connecting to…" nor "Disconnected from Python server" shows, and it never reaches the server (an open
    stream held a server thread per tab)."""
    page, errors = open_viewer(browser, live, f"{live.url}/")
    try:
        page.wait_for_timeout(1500)  # a refused or dropped stream shows "Disconnected…" within this
        shown = page.evaluate("document.body.innerText")
        assert not [text for text in STATUS_TEXTS if text in shown], shown[:500]
        assert not event_stream_requests(live), event_stream_requests(live)
        assert not page.evaluate(
            "performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
            ".filter(path => path.startsWith('/events/'))"
        )
        assert not errors, errors
    finally:
        page.close()
    # Both checks can fail: with window.EventSource frozen before the config script runs, the client opens
    # the real stream, which the server refuses (204: do not reconnect), and the bar shows.
    live.forget()
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.add_init_script(
            "Object.defineProperty(window, 'EventSource', {value: window.EventSource, writable: false})"
        )
        page.goto(f"{live.url}/")
        page.wait_for_function(
            f"{json.dumps(STATUS_TEXTS)}.some((text) => document.body.innerText.includes(text))", timeout=10_000
        )
        assert wait_until(page, lambda: event_stream_requests(live), seconds=10)
    finally:
        page.close()


def test_an_event_stream_request_is_answered_at_once(live):
    """A page from before the stand-in, or a script, asking for /events/<token> gets 204 at once (EventSource's
    "stop reconnecting"), not a stream that holds a server thread."""
    with urllib.request.urlopen(f"{live.url}/events/axonlink?c=an-old-tab", timeout=5) as response:
        assert response.status == 204 and response.read() == b""


def test_share_button_stores_the_state_and_its_link_opens_it(browser, live, dataset):
    """Neuroglancer's own Share button (shown because the page defines STATE_SERVERS) posts to our state service."""
    context = browser.new_context(viewport=VIEWPORT, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        page.goto(f"{live.url}/")
        page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
        page.evaluate("viewer.navigationState.position.value = Float32Array.from([100.5, 200.5, 40.5])")
        live.forget()
        page.locator("div.neuroglancer-icon[title='Share State']").click()
        assert wait_until(page, lambda: "/nglstate/api/v1/post" in live.paths()), live.paths()
        page.wait_for_function(
            "navigator.clipboard.readText().then(t => t.includes('/nglstate/api/v1/'))", timeout=10_000
        )
        link = page.evaluate("navigator.clipboard.readText()")
        assert link.startswith(f"{live.url}/#!{live.url}/nglstate/api/v1/"), link
    finally:
        context.close()
    page, errors = open_viewer(browser, live, link)
    try:
        loaded = page.evaluate("viewer.state.toJSON()")
        assert [round(v, 1) for v in loaded["position"]] == [100.5, 200.5, 40.5]
        assert [l["name"] for l in loaded["layers"]] == ["image", "synapses", "segmentation"]
        assert not errors, errors
    finally:
        page.close()


def test_short_link_opens_as_it_was_and_says_so(browser, live, dataset):
    """/s/<id> opens the stored state pinned to its creation; the banner names the mode and links the other."""
    name = dataset["name"]
    state = live.get_json(f"/api/v1/datasets/{name}/state")
    centre = [int(c) for c in state["position"]]
    root = live.get_json(
        f"/segmentation/api/v1/table/{name}/node/"
        f"{live.get_json(f'/api/v1/states/{_voxel_link(live, name, centre)}/info')['anchors'][0]['supervoxel_id']}/root"
    )["root_id"]
    state["layers"][-1]["segments"] = [str(root)]  # the segmentation is the last layer
    request = urllib.request.Request(f"{live.url}/api/v1/states", data=json.dumps(state).encode(), method="POST")
    with urllib.request.urlopen(request) as response:
        short = json.load(response)["short_id"]
    page, errors = open_viewer(browser, live, f"{live.url}/s/{short}")
    try:
        loaded = page.evaluate("viewer.state.toJSON()")
        segmentation = next(l for l in loaded["layers"] if l["name"] == "segmentation")
        assert f"/data/{name}@" in json.dumps(segmentation["source"]) and segmentation["segments"] == [str(root)]
        page.wait_for_function(
            "document.querySelector('#axonlink-link-mode')?.textContent.includes('as it was')", timeout=10_000
        )
        page.click("#axonlink-link-mode a")
        page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
        page.wait_for_function(
            "document.querySelector('#axonlink-link-mode')?.textContent.includes('as it is now')", timeout=10_000
        )
        now = next(l for l in page.evaluate("viewer.state.toJSON()")["layers"] if l["name"] == "segmentation")
        assert "@" not in json.dumps(now["source"])
        # the viewer's own "Short link" button stores what is on screen
        page.click("#axonlink-short-link")
        page.wait_for_function(
            "document.querySelector('#axonlink-short-link-url').value.includes('/s/')", timeout=10_000
        )
        assert not errors, errors
    finally:
        page.close()


def _voxel_link(live, name, voxel) -> str:
    request = urllib.request.Request(
        f"{live.url}/api/v1/links/at", method="POST", data=json.dumps({"dataset": name, "voxel": voxel}).encode()
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["short_id"]


def test_segment_list_filters_neurons_by_cell_type_tag(browser, live, dataset):
    """The stock segment list, queried with #L2/3_pyramidal, lists exactly the demo's L2/3 pyramidal neurons."""
    name = dataset["name"]
    expected = {
        hit["root_id"]
        for hit in live.get_json(f"/api/v1/search?q={quote('L2/3 pyramidal dataset:' + name)}&per_page=1000")["results"]
    }
    assert expected, "the demo ships L2/3 pyramidal tags"
    state = live.get_json(f"/api/v1/datasets/{name}/state")
    segmentation = next(layer for layer in state["layers"] if layer["type"] == "segmentation")
    segmentation["segmentQuery"] = "#L2/3_pyramidal"
    segmentation["tab"] = "segments"
    state["selectedLayer"] = {"layer": segmentation["name"], "visible": True, "size": 500}
    page, errors = open_viewer(browser, live, f"{live.url}/#!" + quote(json.dumps(state), safe=""))
    try:
        assert wait_until(page, lambda: "/segmentation/table/demo/segment_properties/info" in live.paths())

        def listed():  # the ids in the segment list (not the column header)
            return set(
                page.evaluate(
                    "Array.from(document.querySelectorAll('.neuroglancer-segment-list-entry-id'))"
                    ".map(e => e.textContent).filter(t => /^[0-9]+$/.test(t))"
                )
            )

        assert wait_until(page, lambda: listed() == expected), (
            sorted(listed() - expected),
            sorted(expected - listed()),
        )
        assert not errors, errors
    finally:
        page.close()


def test_signing_in_through_the_login_fragment_keeps_the_token_out_of_urls_and_scripts(browser, live, dataset):
    """/login#token=... sets an HttpOnly cookie, drops the token from the address and opens the viewer,
    whose badge names the user; the token is nowhere a page script, a URL or a stored state could carry it."""
    from tests.helpers import proofreader_token

    token = proofreader_token(
        live.app.config["AXONLINK_SETTINGS"].database_url, dataset["name"], user="browser-proofreader"
    )
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        live.forget()
        page.goto(f"{live.url}/login#token={token}")
        page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
        page.wait_for_function(
            "document.querySelector('#axonlink-user')?.dataset.user === 'browser-proofreader'", timeout=10_000
        )
        assert "Signed in as browser-proofreader" in page.inner_text("#axonlink-user")
        assert token not in page.url and token not in page.evaluate("document.cookie")
        cookie = next(c for c in context.cookies() if c["name"] == "axonlink_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert all(token not in path for path in live.paths())  # no request line ever held it
        assert token not in json.dumps(page.evaluate("viewer.state.toJSON()"))
        me = page.evaluate("fetch('/api/v1/me').then(r => r.json())")
        assert me["user"] == "browser-proofreader" and me["roles"][dataset["name"]] == "proofreader"
        page.click("#axonlink-user a")  # sign out
        page.wait_for_function("document.querySelector('#axonlink-user')?.dataset.user === 'anonymous'", timeout=30_000)
    finally:
        context.close()
