"""Image-only datasets: ``axonlink import NAME --image SRC`` without a segmentation writes the image
layer with its mips and registers it; the viewer shows the image, and every route answers a clear
4xx or a sensible empty answer (never a 5xx) where a segmentation would be needed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from segmentation.demo.phantom import make_phantom
from server import endpoints
from server.cli import main
from tests.helpers import SQLITE_ONLY, call, image_mips, read_back

SHAPE = (101, 90, 19)  # x, y, z: odd, and not a multiple of the chunk
CHUNK = "32,32,16"
NO_SEGMENTATION = "has no segmentation layer"


@pytest.fixture(scope="module")
def em():
    """An EM-like uint8 image (x, y, z), no labels."""
    made = make_phantom(5, neuron_count=4, shape=(112, 96, 24))
    return np.ascontiguousarray(made.image[: SHAPE[0], : SHAPE[1], : SHAPE[2]])


def save_zyx(folder: Path, image: np.ndarray) -> str:
    """As numpy tools save volumes: indexed [z, y, x]."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stack.npy"
    np.save(path, np.ascontiguousarray(image.transpose(2, 1, 0)))
    return str(path)


def axonlink(settings, *args: str) -> int:
    return main([*args, "--home", str(settings.home), "--database-url", settings.database_url])


def import_image(settings, name: str, image_file: str, *extra: str) -> int:
    return axonlink(settings, "import", name, "--image", image_file, "--workers", "1", *extra)


def site_admin_token(database_url: str) -> str:
    from segmentation.access import Accounts

    accounts = Accounts(database_url)
    accounts.add_user("root", site_admin=True, by="tests")
    return accounts.create_token("root", by="tests")[1]


# ---- every route of the table, for an image-only dataset ------------------------------------------
FILLS = {"token": "axonlink", "mode": "was", "node_spec": "1:0", "coords": "5,6,7", "filename": "x.js"}
QUERIES = {"search_neurons": "?q=astrocyte%20dataset:em", "list_tags": "?include_retracted=1"}
BODIES = {  # what a client would send; other routes with a body get {}
    "add_tag": {"position": [5, 6, 7], "term": "astrocyte"},
    "post_link_at": {"dataset": "em", "voxel": [5, 6, 7]},
    "set_grant": {"role": "viewer"},
    "update_dataset": {"description": "EM, not segmented yet"},
    "cg_merge": [[1, 40, 48, 280], [2, 48, 48, 280]],
    "cg_split": {"sources": [[1, 40, 48, 280]], "sinks": [[2, 48, 48, 280]]},
    "cg_split_preview": {"sources": [[1, 40, 48, 280]], "sinks": [[2, 48, 48, 280]]},
    "cg_undo": {"operation_id": 1},
    "cg_redo": {"operation_id": 1},
    "mat_live_query": {"timestamp": "2030-01-01T00:00:00"},
}


def route_requests(state: dict, first_chunk: str):
    """(endpoint, method, path, body, headers) for every route of the table, naming dataset ``em``
    (``state``: the state posted to the state routes; ``first_chunk``: a key of its image's mip 0)."""
    for name, spec in endpoints.BY_ENDPOINT.items():

        def fill(match, name=name):
            kind, parameter = match.group(1), match.group(2)
            if parameter in endpoints.DATASET_PARAMETERS:
                return "em"
            if parameter in FILLS:
                return FILLS[parameter]
            return "1" if kind == "int" else ("info" if kind == "path" else "x")

        path = re.sub(r"<(?:([a-z]+):)?([a-z_]+)>", fill, spec.rule) + QUERIES.get(name, "")
        for method in spec.methods:
            if method == "HEAD":
                continue
            body, headers = None, {}
            if spec.body == "csv":
                body, headers = (
                    b"pt_position_x,pt_position_y,pt_position_z,cell_type\n5,6,7,astrocyte\n",
                    {"Content-Type": "text/csv"},
                )
            elif spec.body == "binary":
                body, headers = np.array([1], "<u8").tobytes(), {"Content-Type": "application/octet-stream"}
            elif spec.body is not None or method in ("POST", "PUT", "PATCH"):
                document = state if name in ("post_state", "nglstate_post") else BODIES.get(name, {})
                body, headers = json.dumps(document).encode(), {"Content-Type": "application/json"}
            if name == "layer_file":  # both the layer it has and the one it has not
                for ref, layer in (("em", "image"), ("em", "segmentation"), ("em@supervoxels", "segmentation")):
                    yield name, method, f"/data/{ref}/{layer}/info", None, headers
                yield name, method, f"/data/em@1700000000/image/{first_chunk}", None, headers
                continue
            yield name, method, path, body, headers


def test_an_image_only_import_reads_back_every_mip_and_every_route_answers_without_a_5xx(
    settings, em, tmp_path, capsys
):
    from segmentation.datasets import Datasets
    from server import create_app
    from server.runner import BackgroundServer

    stack = save_zyx(tmp_path / "src", em)
    capsys.readouterr()
    flags = ("--voxel-size", "4,4,40", "--chunk", CHUNK, "--image-encoding", "raw")
    assert import_image(settings, "em", stack, *flags) == 0  # --mesh (the default) has nothing to do
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["layers"]) == ["image"] and summary["layers"]["image"]["mips"] == 3
    assert "graph" not in summary and "meshes" not in summary and "skeletons" not in summary
    destination = settings.home / "volumes" / "em"
    assert (destination / "image" / "info").is_file() and not (destination / "segmentation").exists()
    assert not (settings.home / "meshes" / "em").exists()

    dataset = Datasets(settings.database_url).get("em")
    assert [(layer.name, layer.kind) for layer in dataset.layers] == [("image", "image")]
    assert not dataset.has_segmentation
    assert dataset.volume_size == list(SHAPE) and dataset.voxel_resolution == [4.0, 4.0, 40.0]
    admin = site_admin_token(settings.database_url)

    with BackgroundServer(create_app(settings)) as server:
        # every mip, voxel for voxel, through the server
        served = read_back(f"precomputed://{server.url}/data/em/image")
        assert len(served) == 3 and np.array_equal(served[0], em)
        for mip, expected in enumerate(image_mips(em, len(served) - 1), start=1):
            assert np.array_equal(served[mip], expected), f"mip {mip}"

        # the default state shows the image alone (and the viewer opens on it)
        status, body = call(f"{server.url}/api/v1/datasets/em/state")
        state = json.loads(body)
        assert status == 200 and [(layer["name"], layer["type"]) for layer in state["layers"]] == [("image", "image")]
        assert state["layers"][0]["source"] == f"precomputed://{server.url}/data/em/image"
        assert state["selectedLayer"]["layer"] == "image"
        status, script = call(f"{server.url}/viewer-config.js")
        assert status == 200 and b"/data/em/image" in script and b"graphene://" not in script
        status, body = call(f"{server.url}/api/v1/datasets/em")
        described = json.loads(body)
        assert status == 200 and [layer["name"] for layer in described["layers"]] == ["image"]
        assert "graph_layer" not in described
        status, page = call(f"{server.url}/datasets")
        assert status == 200 and b"image only" in page

        answers = {}
        scale = json.loads((destination / "image" / "info").read_text())["scales"][0]
        first_chunk = f"{scale['key']}/" + "_".join(f"0-{c}" for c in scale["chunk_sizes"][0])
        for name, method, path, body, headers in route_requests(state, first_chunk):
            status, answer = call(server.url + path, body, method=method, token=admin, headers=headers)
            assert status < 500, (name, method, path, status, answer[:300])
            answers.setdefault(name, []).append((status, answer))
        assert set(answers) == set(endpoints.BY_ENDPOINT)

        def only(name):
            (status, answer), *more = answers[name]
            assert not more
            return status, answer

        # what needs the segmentation says so (409), for the graph, meshes, tags and tables
        for name in (
            "cg_info",
            "cg_segment_properties",
            "cg_root",
            "cg_roots",
            "cg_leaves",
            "cg_merge",
            "cg_split",
            "latest_roots",
            "mesh_manifest",
            "add_tag",
            "import_tags",
            "mat_versions",
            "mat_live_query",
        ):
            status, answer = only(name)
            assert status == 409 and NO_SEGMENTATION in json.loads(answer)["message"], (name, status, answer)
        (image_info, _), (segmentation_info, missing), (supervoxels, _), (past_chunk, _) = answers["layer_file"]
        assert image_info == 200 and past_chunk == 200  # an image is the same at every moment
        assert segmentation_info == supervoxels == 404 and b"no layer 'segmentation'" in missing
        # sensible empty answers
        status, answer = only("list_tags")
        assert status == 200 and json.loads(answer)["tags"] == []
        status, answer = only("search_neurons")
        assert status == 200 and json.loads(answer)["results"] == []
        status, answer = only("export_tags")
        assert status == 200 and answer.decode().count("\n") == 1  # the header, no rows
        status, answer = only("info_datastack")
        datastack = json.loads(answer)
        assert status == 200 and datastack["segmentation_source"] is None
        assert datastack["aligned_volume"]["image_source"] == f"precomputed://{server.url}/data/em/image"
        # a link to a voxel: the image centred there, no neuron to select
        status, answer = only("post_link_at")
        assert status == 201, answer
        assert only("open_voxel_link")[0] == 200  # the viewer page it redirects to
        request_state = _voxel_link_state(server.url + "/at/em/5,6,7")
        assert [layer["name"] for layer in request_state["layers"]] == ["image"]
        assert request_state["position"] == [5.5, 6.5, 7.5]
        status, answer = call(f"{server.url}/at/em/500,6,7")
        assert status == 400 and b"outside the volume" in answer
        # a stored state of the image opens as it was and as it is now
        status, answer = only("post_state")
        stored = json.loads(answer)
        assert status == 201
        for mode in ("was", "now"):
            status, answer = call(f"{server.url}/api/v1/states/{stored['short_id']}/{mode}.json")
            assert status == 200 and [layer["name"] for layer in json.loads(answer)["layers"]] == ["image"]


def _voxel_link_state(url: str) -> dict:
    """The state a /at/ link redirects the viewer to (in the URL's fragment)."""
    import urllib.request

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(Keep)
    try:
        opener.open(url)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302
        location = answer.headers["Location"]
    return json.loads(unquote(location.split("#!", 1)[1]))


# ---- the command line -------------------------------------------------------------------------------
@SQLITE_ONLY
@pytest.mark.parametrize(
    "flags, named",
    [
        (("--agglomeration", "bodies.csv"), "--agglomeration"),
        (("--skeletons",), "--skeletons"),
        (("--background", "-1"), "--background"),
    ],
)
def test_what_needs_a_segmentation_is_refused_in_one_line_naming_the_fix(settings, em, tmp_path, capsys, flags, named):
    from segmentation.datasets import Datasets

    stack = save_zyx(tmp_path / "src", em)
    capsys.readouterr()
    assert import_image(settings, "em", stack, "--voxel-size", "4,4,40", *flags) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and named in error and "--segmentation SRC" in error, error
    assert not Datasets(settings.database_url).exists("em")
    assert not (settings.home / "volumes" / "em").exists()  # refused before anything is written


@SQLITE_ONLY
def test_commands_that_need_a_segmentation_refuse_an_image_only_dataset(settings, small_volumes, tmp_path, capsys):
    from segmentation.datasets import DatasetError, Datasets

    registry = Datasets(settings.database_url)
    # add-dataset with an image alone; neither layer is refused, and so are supervoxel layers alone
    assert axonlink(settings, "add-dataset", "em", "--image", small_volumes["image"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in added["layers"]] == ["image"] and added["volume_size"] == [64, 48, 20]
    assert axonlink(settings, "add-dataset", "nothing") == 1
    assert "--image URL" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="register the segmentation too"):
        registry.add("svs", image=small_volumes["image"], supervoxel_layers={"copy": small_volumes["segmentation"]})
    dataset = registry.add("em2", image=small_volumes["image"], extra_layers={"channel": small_volumes["image"]})
    assert [layer.name for layer in dataset.layers] == ["image", "channel"] and not dataset.has_segmentation

    assert axonlink(settings, "ingest-graph", "em") == 1
    assert "has no segmentation layer: nothing to build a graph from" in capsys.readouterr().err
    for command in (("mesh", "em"), ("undo", "em"), ("compact", "em")):
        assert axonlink(settings, *command) == 1, command
        assert f"dataset 'em' {NO_SEGMENTATION}" in capsys.readouterr().err, command
    csv = tmp_path / "tags.csv"
    csv.write_text("pt_position_x,pt_position_y,pt_position_z,cell_type\n5,6,7,astrocyte\n")
    assert axonlink(settings, "tags", "import", "em", str(csv)) == 1
    assert NO_SEGMENTATION in capsys.readouterr().err
    # check: a warning, not a problem (the image is fine as it is)
    assert axonlink(settings, "check", "em") == 0
    out = capsys.readouterr().out
    assert f"warning  segmentation: dataset 'em' {NO_SEGMENTATION}" in out
    assert "ok       layers: all 1 layer(s) share the image's mip-0 bounds" in out
