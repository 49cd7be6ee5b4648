"""Built-in meshes (segmentation/meshing, `axonlink mesh`): one fragment per root per chunk, manifests
that cover exactly a root's supervoxels, no remeshing after a merge, only the cut chunks after a split,
resumable runs, and the graphene mesh routes (byte ranges, fragments made after edits); the volume and
the helpers are in tests/meshing_helpers.py, the ``tubes`` fixture in conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, ingest_dataset
from segmentation.meshing import DatasetMeshes, mesh_dataset
from segmentation.meshing import build as build_module
from segmentation.meshing import levels as levels_module
from segmentation.meshing.surfaces import decode
from server.cli import main
from tests.helpers import proofreader_token
from tests.meshing_helpers import (
    EXACT,
    MESH_CHUNK,
    OFFSET,
    RESOLUTION,
    SHAPE,
    TUBES,
    manifest_of,
    meshes_of,
    shows,
    sv,
    vertices_of,
    write_tubes,
)


def test_each_root_is_shown_by_one_fragment_per_chunk_covering_exactly_its_supervoxels(tubes):
    summary = mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    assert summary["chunks"] == 12 and summary["chunks_meshed"] == 12
    graph = Graph.open(tubes.database_url, "tubes")
    meshes = meshes_of(tubes)
    root_a, root_b = (int(graph.root(sv(first))) for first, *_ in TUBES.values())
    names = manifest_of(meshes, graph, root_a)
    # tube a spans 6 of the 3 x 2 x 2 chunks; the top level (a block of 4 x 4 x 4 chunks) shows it in one fragment
    assert len(names) == 1 and names[0].split(":")[1] == "~g1-L2_0_0_0.frags" and names[0].count(":") == 3
    vertices = vertices_of(meshes, names)
    assert shows(vertices, range(1, 8))
    assert not shows(vertices, [11])
    lo = (OFFSET + [0, 10, 2]) * RESOLUTION
    hi = (OFFSET + [70, 20, 14]) * RESOLUTION
    # nm in the volume's frame (where a tube meets the volume's edge, its surface stops at the last voxels' centres)
    assert (vertices >= lo - 0.05).all() and (vertices <= hi + 0.05).all()
    assert shows(vertices_of(meshes, manifest_of(meshes, graph, root_b)), range(11, 18))


def test_a_merge_lists_both_roots_fragments_and_a_split_remeshes_only_the_chunks_it_cut(tubes):
    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    graph = Graph.open(tubes.database_url, "tubes")
    meshes = meshes_of(tubes)
    root_a, root_b = (int(graph.root(sv(first))) for first, *_ in TUBES.values())
    before = set(manifest_of(meshes, graph, root_a)) | set(manifest_of(meshes, graph, root_b))
    merged = graph.merge(sv(4), sv(14), user="p").new_root_ids[0]
    assert set(manifest_of(meshes, graph, merged)) == before  # nothing to remesh
    generation = meshes.generation
    assert not list(Path(generation.location, "dynamic").glob("*"))

    # cut neuron a (now part of the merged root) between supervoxels 3 and 4: x = 30, inside chunk x 0-32
    graph.split([sv(1), sv(2), sv(3)], [sv(4)], user="p")
    piece = int(graph.root(sv(1)))
    rest = int(graph.root(sv(4)))
    assert piece != rest
    # at once: the cut chunks are listed by quick twins (unsimplified, made on request) …
    piece_first = meshes.manifest_state(piece, graph.leaves(piece))
    rest_first = meshes.manifest_state(rest, graph.leaves(rest))
    assert piece_first[1] is False and rest_first[1] is False  # not settled: being made in the background
    quick = [n for n in piece_first[0] + rest_first[0] if ":~" not in n]
    assert quick and all(n.endswith("q") for n in quick)
    assert {n.split(":")[1].rsplit("_", 1)[0] for n in quick} <= {"0_0_0", "0_0_1"}
    piece_vertices = vertices_of(meshes, piece_first[0])
    assert shows(piece_vertices, [1, 2, 3]) and not shows(piece_vertices, [4, 5])
    assert shows(vertices_of(meshes, rest_first[0]), [4, 5, 6, 7, 11, 17])
    # … then, once made in the background, by the simplified fragments (the switch)
    assert meshes.settle()
    piece_names, rest_names = manifest_of(meshes, graph, piece), manifest_of(meshes, graph, rest)
    assert meshes.manifest_state(piece, graph.leaves(piece))[1] is True
    made_after = [n for n in piece_names + rest_names if ":~" not in n]
    assert made_after and not any(n.endswith("q") for n in made_after)
    assert sorted(f"~{n[1:].split(':')[0]}q:{n.split(':')[1]}q" for n in made_after) == sorted(quick)  # same chunks
    assert {n.split(":")[1].rsplit("_", 1)[0] for n in made_after} <= {"0_0_0", "0_0_1"}
    assert not any(int(n[1:].split(":")[0]) & (1 << 39) for n in piece_names + rest_names if ":~" in n)
    stored = set(piece_names + rest_names) - set(made_after)
    # elsewhere stored fragments: neuron b's whole (top level), the level-1 block of chunks x 2, chunks x 1
    assert sorted(n.split(":")[1] for n in stored) == [
        "~g1-1_0_0.frags",
        "~g1-1_0_1.frags",
        "~g1-L1_1_0_0.frags",
        "~g1-L2_0_0_0.frags",
    ]
    piece_vertices = vertices_of(meshes, piece_names)
    assert shows(piece_vertices, [1, 2, 3]) and not shows(piece_vertices, [5])
    assert shows(vertices_of(meshes, rest_names), [4, 5, 6, 7, 11, 17])
    made = [p.name for p in Path(generation.location, "dynamic").glob("*.drc")]
    assert len([n for n in made if not n.endswith("q.drc")]) == len(made_after)  # (a quick twin asked after its
    assert len([n for n in made if n.endswith("q.drc")]) <= len(made_after)  # simplified one is made: that one)


def test_asking_an_unsettled_manifest_again_and_again_queues_each_fragment_once(tubes, monkeypatch):
    import threading

    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    graph = Graph.open(tubes.database_url, "tubes")
    meshes = meshes_of(tubes)
    graph.split([sv(1), sv(2), sv(3)], [sv(4)], user="p")
    piece = int(graph.root(sv(1)))
    release, made = threading.Event(), []
    real = meshes._make_dynamic

    def held(name, wait):  # the background thread is busy until released
        release.wait(30)
        made.append(name)
        return real(name, wait)

    monkeypatch.setattr(meshes, "_make_dynamic", held)
    for _ in range(50):  # a client polling the manifest while the cut chunks are being made
        names, settled = meshes.manifest_state(piece, graph.leaves(piece))
        assert not settled
    pending = [n for n in names if n.endswith("q")]
    assert pending and meshes._queued == len(pending)  # not 50 times as many
    release.set()
    assert meshes.settle()
    assert sorted(made) == sorted(n.partition(":")[2].removesuffix("q") for n in pending)
    assert meshes.manifest_state(piece, graph.leaves(piece))[1] is True


def test_an_interrupted_run_resumes_where_it_stopped(tubes, monkeypatch):
    calls = {"n": 0}
    real = build_module.mesh_chunk

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(build_module, "mesh_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    assert meshes_of(tubes).generation is None  # nothing half-done in use
    monkeypatch.setattr(build_module, "mesh_chunk", real)
    summary = mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    assert summary["generation"] == 1 and summary["chunks_meshed"] == 12 - 4
    again = mesh_dataset(
        tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, restart=True, progress=False
    )
    assert again["generation"] == 2 and again["chunks_meshed"] == 12


def test_the_graphene_routes_serve_manifests_byte_ranges_and_fragments_made_after_edits(tubes, capsys):
    from server import create_app

    status = main(
        ["mesh", "tubes", "--chunk", "32,32,12", "--home", str(tubes.home), "--database-url", tubes.database_url]
    )
    assert status == 0
    assert '"chunks": 12' in capsys.readouterr().out
    client = create_app(tubes).test_client()
    assert client.get("/segmentation/table/tubes/info").get_json()["mesh"] == "graphene_meshes"
    graph = Graph.open(tubes.database_url, "tubes")
    root = int(graph.root(sv(1)))
    answer = client.get(f"/meshing/api/v1/table/tubes/manifest/{root}:0?verify=1&prepend_seg_ids=1")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-cache"
    fragments = answer.get_json()["fragments"]
    assert (
        client.get(
            f"/meshing/api/v1/table/tubes/manifest/{root}:0", headers={"If-None-Match": answer.headers["ETag"]}
        ).status_code
        == 304
    )
    base = "/data/tubes@supervoxels/segmentation/graphene_meshes"
    assert client.get(f"{base}/info").get_json()["@type"] == "neuroglancer_legacy_mesh"
    _, _, rest = fragments[0][1:].partition(":")
    path, offset, size = rest[1:].split(":")
    whole = client.get(f"{base}/initial/{path}")
    assert whole.status_code == 200
    first, last = int(offset), int(offset) + int(size) - 1
    ranged = client.get(f"{base}/initial/{path}", headers={"Range": f"bytes={first}-{last}"})
    assert ranged.status_code == 206 and ranged.headers["Content-Range"] == f"bytes {first}-{last}/{len(whole.data)}"
    assert ranged.data == whole.data[first : last + 1] and "Content-Encoding" not in ranged.headers
    assert len(decode(ranged.data)[0])
    assert client.get(f"{base}/initial/{path}", headers={"Range": "bytes=999999-"}).status_code == 416
    bad_names = (
        "initial/g1-9_9_9.frags",
        "initial/g2-0_0_0.frags",
        "initial/0_0_0.frags",
        "initial/../generation.json",
    )
    for bad in (*bad_names, "dynamic/0_0_0_0123456789abcdef", "dynamic/x"):
        assert client.get(f"{base}/{bad}").status_code in (400, 404), bad  # never a file outside the run

    # a split through the route: the cut chunks' new fragments are made in the background from then on;
    # until made, the manifest lists their quick twins (made on request), then switches
    token = proofreader_token(tubes.database_url, "tubes")
    split = client.post(
        "/segmentation/api/v1/table/tubes/split",
        json={"sources": [[sv(k), 0, 0, 0] for k in (1, 2, 3)], "sinks": [[sv(4), 0, 0, 0]]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert split.status_code == 200, split.data
    piece = int(graph.root(sv(1)))
    manifest_url = f"/meshing/api/v1/table/tubes/manifest/{piece}:0"
    first = client.get(manifest_url)
    meshes = DatasetMeshes.of(tubes.home, "tubes", Datasets(tubes.database_url).get("tubes").layer("segmentation").url)
    if first.headers["ETag"].endswith('-quick"'):  # (made already, on a fast machine: no quick twin to see)
        quick = [n.partition(":")[2] for n in first.get_json()["fragments"] if n.endswith("q")]
        assert quick  # (another cut chunk may be made already)
        for rest in quick:
            fragment = client.get(f"{base}/dynamic/{rest}")
            assert fragment.status_code == 200 and len(decode(fragment.data)[0])
    assert meshes.settle()
    switched = client.get(manifest_url, headers={"If-None-Match": first.headers["ETag"]})
    if first.headers["ETag"].endswith('-quick"'):
        assert switched.status_code == 200 and not switched.headers["ETag"].endswith('-quick"')
    else:
        assert switched.status_code == 304
        switched = first
    names = switched.get_json()["fragments"]
    made = [n.partition(":")[2] for n in names if ":~" not in n]
    assert made
    for rest in made:
        fragment = client.get(f"{base}/dynamic/{rest}")
        assert fragment.status_code == 200 and len(decode(fragment.data)[0])


def test_ingest_graph_meshes_a_segmentation_that_has_no_meshes(settings, small_volumes, tmp_path, capsys):
    import json

    db.upgrade(settings.database_url)
    url = write_tubes(tmp_path / "plain-seg")
    Datasets(settings.database_url).add("plain", image=small_volumes["image"], segmentation=url)
    common = ["--home", str(settings.home), "--database-url", settings.database_url]
    assert main(["ingest-graph", "plain", *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["draco_fragments"] == 0 and summary["meshes"]["fragments"] > 0
    graph = Graph.open(settings.database_url, "plain")
    meshes = DatasetMeshes(settings.home, "plain", url)
    for first, (y0, y1), (z0, z1) in TUBES.values():
        for k in range(7):  # without an agglomeration every supervoxel is a neuron of its own
            vertices = vertices_of(meshes, manifest_of(meshes, graph, int(graph.root(sv(first + k)))))
            lo = (OFFSET + [10 * k, y0, z0]) * RESOLUTION
            hi = (OFFSET + [10 * (k + 1), y1, z1]) * RESOLUTION
            slack = 40 + RESOLUTION / 2  # simplified (40 nm by default); at the volume's edge, voxel centres
            assert (vertices >= lo - slack).all() and (vertices <= hi + slack).all()
            assert (vertices.max(axis=0) - vertices.min(axis=0) >= (hi - lo) / 2).all()  # not a sliver


def test_meshes_belong_to_their_volume_and_go_with_their_dataset(tubes, capsys):
    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, progress=False)
    assert meshes_of(tubes).generation is not None
    other = DatasetMeshes(tubes.home, "tubes", "file:///elsewhere/another-volume")
    assert other.generation is None  # a dataset added again under the name, with another volume
    common = ["--home", str(tubes.home), "--database-url", tubes.database_url]
    drafts = tubes.home / "graphene" / "tubes"  # Draco copies of legacy meshes, had it any
    drafts.mkdir(parents=True)
    (drafts / "72057594037927937.drc").write_bytes(b"DRACO")
    assert main(["remove-dataset", "tubes", "--yes", *common]) == 0
    assert not drafts.exists()
    assert '"meshes": true' in capsys.readouterr().out
    assert not (tubes.home / "meshes" / "tubes").exists()


def test_levels_stop_when_one_block_covers_the_grid_or_blocks_reach_8_chunks():
    from segmentation.meshing.levels import level_count

    assert [level_count(s) for s in ((1, 1, 1), (2, 1, 1), (3, 2, 2), (8, 8, 8), (9, 1, 1), (500, 3, 2))] == [
        0,
        1,
        2,
        3,
        3,
        3,
    ]


def test_meshing_in_processes_writes_the_same_fragments_and_index_as_one_process(tubes, monkeypatch):
    """Chunks and the coarser levels' joins spread over processes end in the same bytes, whether a
    level's blocks are joined together or a wave of blocks at a time."""
    import hashlib

    def digest(summary) -> dict:
        folder = tubes.home / "meshes" / "tubes" / f"g{summary['generation']}"
        return {
            str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.parent.name in ("initial", "index")
        }

    one = mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    two = mesh_dataset(
        tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, workers=2, restart=True, progress=False
    )
    assert two["generation"] == one["generation"] + 1
    serial, spread = digest(one), digest(two)
    assert any(name.startswith("initial/L") for name in serial)  # coarser levels were joined
    assert serial == spread
    monkeypatch.setattr(levels_module, "WAVE_BYTES", 1)  # every block joined on its own
    waves = mesh_dataset(
        tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, workers=2, restart=True, progress=False
    )
    assert digest(waves) == serial


def test_a_levels_joins_are_cut_in_runs_of_about_equal_bytes_in_order():
    from segmentation.meshing.levels import batches

    parts = [[(0, (i, 0, 0), 0, size)] for i, size in enumerate([100, 1, 1, 1, 100, 50, 50, 0, 100])]
    runs = batches(parts, 4)
    assert [part for run in runs for part in run] == parts
    assert 2 <= len(runs) <= 4
    weights = [sum(child[3] for part in run for child in part) for run in runs]
    assert max(weights) <= 200  # no run holds most of the bytes
    assert batches([], 4) == [] and batches(parts, 1) == [parts]


def test_a_dataset_without_a_graph_gets_multiresolution_meshes_cloudvolume_reads(settings, small_volumes, tmp_path):
    """Its stored labels are meshed; the layer's info names a neuroglancer_multilod_draco directory whose
    per-label index and fragments (byte ranges, integer Draco positions) CloudVolume reads over HTTP."""
    import DracoPy
    from cloudvolume import CloudVolume
    from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

    from server import create_app
    from server.runner import BackgroundServer

    db.upgrade(settings.database_url)
    url = write_tubes(tmp_path / "labels-seg")
    Datasets(settings.database_url).add("labels", image=small_volumes["image"], segmentation=url)
    summary = mesh_dataset(
        settings.database_url, settings.home, "labels", chunk=MESH_CHUNK, params=EXACT, progress=False
    )
    assert summary["chunks"] == 12
    client = create_app(settings).test_client()
    base = "/data/labels/segmentation"
    assert client.get(f"{base}/info").get_json()["mesh"] == "axonlink_meshes"
    mesh_info = client.get(f"{base}/axonlink_meshes/info").get_json()
    assert mesh_info["@type"] == "neuroglancer_multilod_draco" and mesh_info["vertex_quantization_bits"] == 16
    for label in (4, 12):  # each spans 4 chunks (4: x 0-1 and z 0-1; 12: y 0-1 and z 0-1)
        index = client.get(f"{base}/axonlink_meshes/{label}.index").data
        manifest = MultiLevelPrecomputedMeshManifest.from_binary(index, label)  # checks the exact size
        data = client.get(f"{base}/axonlink_meshes/{label}").data
        # levels of detail: the chunks (4 of them), then blocks of 2x2x2 and 4x4x4 chunks (the whole grid)
        assert manifest.num_lods == 3 and list(manifest.lod_scales) == [1, 2, 4]
        assert [len(p) for p in manifest.fragment_positions] == [4, 1, 1]
        assert sum(int(s) for sizes in manifest.fragment_offsets for s in sizes) == len(data)
        chunk, origin = np.asarray(manifest.chunk_shape), np.asarray(manifest.grid_origin)
        start = 0
        for lod, (positions, sizes) in enumerate(zip(manifest.fragment_positions, manifest.fragment_offsets)):
            node, vertices = chunk * 2**lod, []
            for position, size in zip(positions, sizes):
                ranged = client.get(
                    f"{base}/axonlink_meshes/{label}", headers={"Range": f"bytes={start}-{start + int(size) - 1}"}
                )
                assert ranged.status_code == 206 and ranged.data == data[start : start + int(size)]
                stored = np.asarray(DracoPy.decode(ranged.data).points, dtype=np.float64).reshape(-1, 3)
                assert stored.min() >= 0 and stored.max() <= 65535  # integer positions across the node
                vertices.append((origin + (position + stored / 65535) * node) * RESOLUTION)
                start += int(size)
            assert shows(np.concatenate(vertices), [label]), lod  # every level shows the whole label
    assert client.get(f"{base}/axonlink_meshes/4").headers["Cache-Control"] == "no-cache"  # a new run may change it
    assert client.get(f"{base}/axonlink_meshes/999.index").status_code == 404
    assert client.get(f"{base}/axonlink_meshes/4.json").status_code == 404
    with BackgroundServer(create_app(settings)) as server:  # a real client, over HTTP
        volume = CloudVolume(f"{server.url}{base}", progress=False)
        for lod in (0, 2):
            mesh = volume.mesh.get(4, lod=lod)[4]
            assert shows(np.asarray(mesh.vertices, dtype=np.float64), [4]), lod
    # given a graph later, the graph's views ignore meshes of stored labels until it is meshed again
    ingest_dataset(settings.database_url, "labels", progress=False)
    client = create_app(settings).test_client()
    assert "mesh" not in client.get("/segmentation/table/labels/info").get_json()
    mesh_dataset(settings.database_url, settings.home, "labels", chunk=MESH_CHUNK, progress=False)
    DatasetMeshes.of(settings.home, "labels", url)._checked = -float("inf")  # no waiting for the recheck
    assert client.get("/segmentation/table/labels/info").get_json()["mesh"] == "graphene_meshes"


def test_the_roots_view_of_any_moment_shows_built_in_meshes_as_legacy_meshes(tubes):
    """Share links that open "as it was" read the live precomputed view of a moment: its info names a
    legacy mesh directory whose manifests list the same fragments as the graphene ones."""
    from segmentation.meshes import legacy_mesh
    from server import create_app

    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    graph = Graph.open(tubes.database_url, "tubes")
    before = graph.root(sv(1))
    moment = graph.split([sv(1), sv(2), sv(3)], [sv(4)], user="p").timestamp
    client = create_app(tubes).test_client()
    assert client.get("/data/tubes/segmentation/info").get_json()["mesh"] == "axonlink_meshes"
    assert client.get("/data/tubes@supervoxels/segmentation/info").get_json().get("mesh") is None
    past = f"/data/tubes@{(moment.timestamp() - 0.001):.6f}/segmentation/axonlink_meshes"
    now = "/data/tubes/segmentation/axonlink_meshes"
    assert client.get(f"{now}/info").get_json() == {"@type": "neuroglancer_legacy_mesh"}
    for base, root, labels in ((past, before, range(1, 8)), (now, graph.root(sv(1)), [1, 2, 3])):
        names = client.get(f"{base}/{root}:0").get_json()["fragments"]
        assert names and all(":" not in n and "/" not in n for n in names)
        vertices = []
        for name in names:
            answer = client.get(f"{base}/{name}")
            assert answer.status_code == 200, name
            vertices.append(legacy_mesh(answer.data)[0])
        assert shows(np.concatenate(vertices), labels)
    assert client.get(f"{now}/g1-0_0_0-0-999999999").status_code == 404
    assert client.get(f"{now}/g9-0_0_0-0-10").status_code == 404


def test_a_new_run_names_its_fragments_anew_so_no_cache_keeps_old_bytes(tubes):
    """Fragment files are served immutable: a new run (other chunks, other settings) must not reuse a name."""
    from server import create_app

    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, progress=False)
    graph = Graph.open(tubes.database_url, "tubes")
    root = int(graph.root(sv(1)))
    client = create_app(tubes).test_client()
    first = client.get(f"/meshing/api/v1/table/tubes/manifest/{root}:0").get_json()["fragments"]
    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=(16, 16, 8), restart=True, progress=False)
    url = Datasets(tubes.database_url).get("tubes").layer("segmentation").url
    meshes = DatasetMeshes.of(tubes.home, "tubes", url)  # the server's own (in this process)
    meshes._checked = -float("inf")  # servers look for a new run every second; this test does not wait
    second = meshes.manifest(root, graph.leaves(root))
    assert {n.split(":")[1] for n in first}.isdisjoint(n.split(":")[1] for n in second)
    assert {n.split(":")[0] for n in first}.isdisjoint(n.split(":")[0] for n in second)
    base = "/data/tubes@supervoxels/segmentation/graphene_meshes/initial"
    assert client.get(f"{base}/{first[0].split(':')[1][1:]}").status_code == 404  # the old run's file
    assert shows(vertices_of(meshes, second), range(1, 8))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the volume's format is what varies
@pytest.mark.parametrize(
    "dtype, encoding, sharded",
    [
        ("uint64", "compressed_segmentation", True),
        ("uint16", "raw", True),
        ("uint8", "raw", False),
        ("uint32", "compressed_segmentation", False),
    ],
)
def test_any_label_type_encoding_and_sharding_is_meshed(settings, small_volumes, tmp_path, dtype, encoding, sharded):
    """What labs store: uint8/16/64 labels, compressed_segmentation or raw, sharded or not (CloudVolume
    reads them all); each label's multi-resolution mesh lies on its voxels."""
    from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

    from segmentation.precomputed import write_layer
    from server import create_app

    db.upgrade(settings.database_url)
    labels = np.zeros(SHAPE, dtype=dtype)
    labels[:, 10:20, 2:14] = 3
    labels[30:, 30:42, 6:20] = 200
    # odd chunks that tile the volume: CloudVolume cannot read back sharded raw edge chunks it wrote
    url = write_layer(tmp_path / "seg", [labels], "segmentation", encoding, RESOLUTION, (14, 13, 8), sharded=sharded)
    Datasets(settings.database_url).add("kinds", image=small_volumes["image"], segmentation=url)
    summary = mesh_dataset(settings.database_url, settings.home, "kinds", chunk=MESH_CHUNK, progress=False)
    assert summary["fragments"] > 0
    client = create_app(settings).test_client()
    base = "/data/kinds/segmentation/axonlink_meshes"
    for label, low, high in ((3, [0, 10, 2], [70, 20, 14]), (200, [30, 30, 6], [70, 42, 20])):
        manifest = MultiLevelPrecomputedMeshManifest.from_binary(client.get(f"{base}/{label}.index").data, label)
        data = client.get(f"{base}/{label}").data
        sizes = manifest.fragment_offsets[0]
        chunk, origin = np.asarray(manifest.chunk_shape), np.asarray(manifest.grid_origin)
        vertices, start = [], 0
        for position, size in zip(manifest.fragment_positions[0], sizes):
            stored = np.asarray(decode_points(data[start : start + int(size)]), dtype=np.float64)
            vertices.append((origin + (position + stored / 65535) * chunk) * RESOLUTION)
            start += int(size)
        vertices = np.concatenate(vertices)
        slack = 40 + RESOLUTION / 2  # simplified at 40 nm; at the volume's edge, voxel centres
        assert (vertices >= np.asarray(low) * RESOLUTION - slack).all(), label
        assert (vertices <= np.asarray(high) * RESOLUTION + slack).all(), label
        assert (vertices.max(axis=0) - vertices.min(axis=0) >= (np.asarray(high) - low) * RESOLUTION / 2).all()


def decode_points(data: bytes) -> np.ndarray:
    import DracoPy

    return np.asarray(DracoPy.decode(data).points).reshape(-1, 3)


def test_a_dataset_meshed_again_after_its_meshes_were_removed_is_served_anew_by_a_running_server(tubes, monkeypatch):
    """Run names start again at g1 once a dataset's meshes are removed: a server that kept the old g1
    (its document, index and sizes) must not serve it for the new one."""
    from segmentation import meshing as meshing_module
    from segmentation.meshing import MeshStore

    monkeypatch.setattr(meshing_module, "_RECHECK_SECONDS", 0.0)
    graph = Graph.open(tubes.database_url, "tubes")
    root = int(graph.root(sv(1)))
    mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    served = meshes_of(tubes)
    before = manifest_of(served, graph, root)
    assert served.generation.grid.chunk == tuple(MESH_CHUNK)
    assert MeshStore(tubes.home, "tubes").remove() is True
    finer = tuple(c // 2 for c in MESH_CHUNK)
    again = mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=finer, params=EXACT, progress=False)
    assert again["generation"] == 1  # the same name as the removed run
    assert served.generation.grid.chunk == finer
    after = manifest_of(served, graph, root)
    assert after != before and shows(vertices_of(served, after), range(1, 8))
