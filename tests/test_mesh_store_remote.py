"""Built-in meshes in object storage (``AXONLINK_MESH_STORE=s3://…``, issue 21): a meshing run writes
its fragments, parts and index to a real S3 server (SeaweedFS), and another machine (a home of its
own, nothing shared but the bucket and the database) serves them: the same manifests and the same
bytes as a run kept in a home, fragments read by byte range, the index copied once and verified, and
fragments made after an edit on one machine readable on the other."""

from __future__ import annotations

import time

import numpy as np
import pytest

from segmentation.datasets import Datasets
from segmentation.graph import Graph
from segmentation.meshing import DatasetMeshes, mesh_dataset
from segmentation.meshing.store import MeshStore
from tests.meshing_helpers import EXACT, MESH_CHUNK, TUBES, manifest_of, shows, sv, vertices_of


def machine(home, tubes) -> DatasetMeshes:
    """The meshes as a server with home ``home`` reads them."""
    url = Datasets(tubes.database_url).get("tubes").layer("segmentation").url
    return DatasetMeshes(home, "tubes", url)


def test_meshes_in_a_bucket_are_served_by_another_machine_as_a_local_run_serves_them(tubes, s3, monkeypatch, tmp_path):
    graph = Graph.open(tubes.database_url, "tubes")
    roots = [int(graph.root(sv(first))) for first, *_ in TUBES.values()]
    kept_at_home = mesh_dataset(tubes.database_url, tubes.home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    local = machine(tubes.home, tubes)
    expected = {root: manifest_of(local, graph, root) for root in roots}

    store = s3.url()  # a fresh prefix
    monkeypatch.setenv("AXONLINK_MESH_STORE", store)
    a_home, b_home = tmp_path / "machine-a", tmp_path / "machine-b"
    in_bucket = mesh_dataset(tubes.database_url, a_home, "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    assert {k: in_bucket[k] for k in ("chunks", "fragments", "megabytes")} == {
        k: kept_at_home[k] for k in ("chunks", "fragments", "megabytes")
    }
    assert not (a_home / "meshes").exists() and not (b_home / "meshes").exists()
    listed = s3.client().list_objects_v2(Bucket="axonlink", Prefix=store.split("/axonlink/", 1)[1] + "/tubes/g1/")
    keys = {entry["Key"].rsplit("/g1/", 1)[1] for entry in listed["Contents"]}  # boto3's own listing
    assert {"generation.json", "index/manifest.json", "index/svs.npy", "initial/L2_0_0_0.frags"} <= keys

    b = machine(b_home, tubes)
    assert b.remote and b.generation is not None and b.generation.complete
    for root in roots:
        names = manifest_of(b, graph, root)
        assert names == expected[root]  # the same fragments, by the same names
        assert np.array_equal(vertices_of(b, names), vertices_of(local, names))  # read by byte range from S3
    index_copy = b.generation.cache / "index"
    assert (index_copy / "manifest.json").exists() and (index_copy / "svs.npy").exists()

    # an edit on machine a: its fragments made after the split are read on machine b
    a = machine(a_home, tubes)
    graph.split([sv(1), sv(2), sv(3)], [sv(4)], user="p")
    piece = int(graph.root(sv(1)))
    a.manifest_state(piece, graph.leaves(piece))
    assert a.settle()
    names = manifest_of(a, graph, piece)
    made_after = [n for n in names if ":~" not in n]
    assert made_after and not any(n.endswith("q") for n in made_after)
    for name in made_after:
        fragment = name.split(":")[1]
        assert b.dynamic_fragment(fragment) == a.dynamic_fragment(fragment)
    assert shows(vertices_of(b, names), [1, 2, 3]) and not shows(vertices_of(b, names), [4, 5])
    assert not (b.generation.cache / "dynamic").exists()  # b made nothing itself


def test_a_damaged_index_in_the_bucket_is_refused_and_removing_the_dataset_empties_its_prefix(
    tubes, s3, monkeypatch, tmp_path, caplog
):
    from segmentation.errors import Unavailable

    store = s3.plain_url()
    monkeypatch.setenv("AXONLINK_MESH_STORE", store)
    mesh_dataset(tubes.database_url, tmp_path / "a", "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False)
    client = s3.client()
    prefix = f"{store.removeprefix('s3://axonlink/')}/tubes/g1/index"
    svs = client.get_object(Bucket="axonlink", Key=f"{prefix}/svs.npy")["Body"].read()
    client.put_object(Bucket="axonlink", Key=f"{prefix}/svs.npy", Body=svs[:-8] + bytes(8))
    graph = Graph.open(tubes.database_url, "tubes")
    root = int(graph.root(sv(1)))
    node = machine(tmp_path / "b", tubes)
    with pytest.raises(Unavailable) as refused:  # a 503: the server's data is at fault, not the request
        node.manifest(root, graph.leaves(root))
    assert "axonlink" not in str(refused.value) and "s3" not in str(refused.value)  # no bucket told to clients
    assert "mesh index" in caplog.text and "svs.npy is missing or damaged" in caplog.text  # the log says what
    assert not (node.generation.cache / "index").exists()  # nothing half-copied kept
    caplog.clear()
    with pytest.raises(Unavailable):  # not copied again at once (an index may be gigabytes)
        node.manifest(root, graph.leaves(root))
    assert "svs.npy" not in caplog.text

    assert MeshStore(tmp_path / "b", "tubes").remove() is True
    left = client.list_objects_v2(Bucket="axonlink", Prefix=f"{store.removeprefix('s3://axonlink/')}/tubes/")
    assert left.get("KeyCount", 0) == 0
    assert machine(tmp_path / "c", tubes).generation is None


def test_a_new_run_in_the_bucket_is_used_once_its_index_is_copied_and_the_old_one_answers_meanwhile(
    tubes, s3, monkeypatch, tmp_path
):
    import threading

    from segmentation import folder_copies
    from segmentation import meshing as meshing_module

    monkeypatch.setenv("AXONLINK_MESH_STORE", s3.url())
    monkeypatch.setattr(meshing_module, "_RECHECK_SECONDS", 0.0)
    run = lambda **extra: mesh_dataset(  # noqa: E731
        tubes.database_url, tmp_path / "mesher", "tubes", chunk=MESH_CHUNK, params=EXACT, progress=False, **extra
    )
    run()
    graph = Graph.open(tubes.database_url, "tubes")
    root = int(graph.root(sv(1)))
    node = machine(tmp_path / "node", tubes)
    assert node.manifest(root, graph.leaves(root))[0].split(":")[1].startswith("~g1-")

    copying, release = threading.Event(), threading.Event()
    copy = folder_copies.verified_copy

    def slow_copy(url, target, *args):  # the node's copy of the second run's index waits for the test
        if (tmp_path / "node") in target.parents:
            copying.set()
            assert release.wait(30)
        return copy(url, target, *args)

    monkeypatch.setattr(folder_copies, "verified_copy", slow_copy)
    assert run(restart=True)["generation"] == 2
    assert node.generation.number == 1 and copying.wait(10)  # published; copied in the background
    assert node.manifest(root, graph.leaves(root))[0].split(":")[1].startswith("~g1-")  # the old run answers
    release.set()
    deadline = time.monotonic() + 10
    while node.generation.number != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node.manifest(root, graph.leaves(root))[0].split(":")[1].startswith("~g2-")
