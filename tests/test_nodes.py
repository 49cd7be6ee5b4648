"""Several server nodes on one PostgreSQL and one S3 object store, behind nginx (issue 21).

Each node is an ``axonlink serve`` process with a home of its own (its own caches: live chunks,
graph copies, synapse snapshots), the same ``--database-url`` and the same graph and mesh stores
in a real S3 server (SeaweedFS); Debian's nginx balances them. What one node does, the others must
see: edits (roots, live chunks, mesh manifests) within 1 s, links at once, a revoked token within
2 s, meshes made by one machine served by all, fragments made after an edit included; a node killed
mid-stream of edits loses none it acknowledged, and a node started later catches up.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.front_server import axonlink_node, nginx_available, nginx_in_front
from tests.helpers import CG_SV, POSTGRES_URL, add_cg_dataset, cg_point_nm, postgres_available, proofreader_token

pytestmark = [
    pytest.mark.skipif(postgres_available() is not None, reason="several nodes share one PostgreSQL"),
    pytest.mark.skipif(not nginx_available(), reason="Debian's nginx balances the nodes (apt-get install nginx)"),
]


def call(url: str, body=None, token: str | None = None, method: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def root_on(node_url: str, sv: int) -> int:
    status, body = call(f"{node_url}/segmentation/api/v1/table/cg/node/{sv}/root")
    assert status == 200, body
    return int(body["root_id"])


def until(what, seconds: float, step: float = 0.02) -> float:
    """Seconds until ``what()`` is true (AssertionError past ``seconds``)."""
    started = time.monotonic()
    while not what():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(step)
    return time.monotonic() - started


def merge(url: str, token: str, a: int, b: int) -> dict:
    status, body = call(f"{url}/segmentation/api/v1/table/cg/merge", [[str(a), 0, 0, 0], [str(b), 0, 0, 0]], token)
    assert status == 200, body
    return body


def split(url: str, token: str, a: int, b: int) -> dict:
    labels = {sv: label for label, sv in enumerate(CG_SV, start=1)}
    body = {"sources": [[str(a), *cg_point_nm(labels[a])]], "sinks": [[str(b), *cg_point_nm(labels[b])]]}
    status, answer = call(f"{url}/segmentation/api/v1/table/cg/split", body, token)
    assert status == 200, answer
    return answer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server, small_volumes):
    """Nodes a and b (one worker each) and nginx in front, for the whole module (starting nodes is
    the slow part); ``start(name)`` starts another node. The tests run in file order: the last
    one kills node a."""
    from contextlib import ExitStack

    from segmentation import db
    from segmentation.db import private_schema
    from segmentation.meshing import mesh_dataset

    tmp_path = tmp_path_factory.mktemp("nodes")
    with pytest.MonkeyPatch.context() as patch, private_schema(POSTGRES_URL) as url, ExitStack() as stack:
        for key, value in s3_server.environment().items():
            patch.setenv(key, value)
        patch.setenv("AXONLINK_GRAPH_STORE", s3_server.url("graphs"))  # the nodes' common graph store
        patch.setenv("AXONLINK_GRAPH_CACHE", str(tmp_path / "graph-cache"))
        patch.setenv("AXONLINK_MESH_STORE", s3_server.url("meshes"))  # and their common mesh store
        db.upgrade(url)
        add_cg_dataset(url, small_volumes["image"], tmp_path, dtype=np.uint32)  # labels as labs store them
        # meshed by another machine; one chunk: every root of these slabs has a surface in it
        mesh_dataset(url, tmp_path / "mesher", "cg", chunk=(32, 32, 8), progress=False)
        nodes, homes = {}, {}

        def start(name: str):
            home = homes[name] = tmp_path / f"node-{name}"
            home.mkdir()
            env = {"AXONLINK_GRAPH_CACHE": str(home / "graph-cache")}  # each machine its own copy
            nodes[name] = stack.enter_context(axonlink_node(home, url, tmp_path, env=env))
            return nodes[name]

        start("a")
        start("b")
        front = stack.enter_context(nginx_in_front([nodes["a"].url, nodes["b"].url], tmp_path / "nginx"))
        yield {
            "url": url,
            "nodes": nodes,
            "front": front,
            "start": start,
            "token": proofreader_token(url, "cg"),
            "homes": homes,
        }


def edit_once(url: str, token: str) -> dict:
    """Join the neuron's pieces if it is cut, else cut it between its two ends: an edit the graph
    as it is accepts, whatever the tests before did."""
    pieces = {root_on(url, sv): sv for sv in CG_SV}
    if len(pieces) > 1:
        first, second = list(pieces.values())[:2]
        return merge(url, token, first, second)
    return split(url, token, CG_SV[0], CG_SV[3])


def labels_on(node_url: str) -> np.ndarray:
    from cloudvolume import CloudVolume

    volume = CloudVolume(f"{node_url}/data/cg/segmentation", mip=0, progress=False, cache=False)
    return np.asarray(volume[0:32, 0:32, 0:8])[..., 0]


def test_an_edit_on_one_node_is_seen_on_the_other_within_a_second(cluster):
    a, b, token = cluster["nodes"]["a"].url, cluster["nodes"]["b"].url, cluster["token"]
    labels_on(b)  # warm: b has served the chunks (its caches hold them)
    for _ in range(2):  # a merge or a split, then the other
        done = edit_once(a, token)
        now = [int(r) for r in done["new_root_ids"]]
        assert until(lambda: {root_on(b, sv) for sv in CG_SV} == set(now), 1.0) <= 1.0
        assert until(lambda: set(np.unique(labels_on(b)).tolist()) == set(now), 1.0) <= 1.0
        for root in now:
            status, manifest = call(f"{b}/meshing/api/v1/table/cg/manifest/{root}:0")
            assert status == 200 and manifest["fragments"], manifest
    # through the front server: an edit made there is read there at once, whichever node answers
    front = cluster["front"]
    now = {int(r) for r in edit_once(front, token)["new_root_ids"]}
    for _ in range(6):
        assert root_on(front, CG_SV[0]) in now


def test_links_and_revoked_tokens_cross_nodes(cluster):
    from segmentation.access import Accounts

    a, b = cluster["nodes"]["a"].url, cluster["nodes"]["b"].url
    state = {"layers": [{"type": "segmentation", "source": f"precomputed://{a}/data/cg/segmentation", "name": "s"}]}
    status, made = call(f"{a}/api/v1/states", state)
    assert status == 201
    status, again = call(f"{b}/api/v1/states/{made['short_id']}")
    assert status == 200 and again["layers"][0]["name"] == "s"
    accounts = Accounts(cluster["url"])
    accounts.add_user("visitor")
    _, token = accounts.create_token("visitor")
    assert call(f"{b}/api/v1/me", token=token)[1]["user"] == "visitor"  # b has it cached now
    accounts.revoke_token(token)
    assert until(lambda: call(f"{b}/api/v1/me", token=token)[0] == 401, 2.0, step=0.05) <= 2.0


def fetch(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def fragments_shown(node_url: str, manifest: list[str]) -> list[int]:
    """The triangle count of every fragment a manifest names, read from ``node_url`` as Neuroglancer's
    graphene source reads them: a stored one by byte range, one made after an edit whole."""
    from segmentation.meshing.surfaces import decode

    meshes = f"{node_url}/data/cg@supervoxels/segmentation/graphene_meshes"
    triangles = []
    for name in manifest:
        rest = name[1:].split(":", 1)[1]
        if rest.startswith("~"):
            path, offset, size = rest[1:].split(":")
            wanted = {"Range": f"bytes={offset}-{int(offset) + int(size) - 1}"}
            status, body = fetch(f"{meshes}/initial/{path}", wanted)
            assert status == 206 and len(body) == int(size), (name, status)
        else:
            status, body = fetch(f"{meshes}/dynamic/{rest}")
            assert status == 200, (name, status, body[:200])
        triangles.append(len(decode(body)[1]))
    return triangles


def test_meshes_in_the_bucket_are_served_by_every_node_with_fragments_made_after_edits(cluster):
    a, b, front, token = (*(cluster["nodes"][n].url for n in "ab"), cluster["front"], cluster["token"])

    def manifest(node_url: str, root: int) -> list[str]:
        status, body = call(f"{node_url}/meshing/api/v1/table/cg/manifest/{root}:0")
        assert status == 200, body
        return body["fragments"]

    while len({root_on(a, sv) for sv in CG_SV}) > 1:  # one neuron first, whatever the tests before did
        edit_once(a, token)
    made_after = set()
    cut = lambda: split(a, token, CG_SV[0], CG_SV[1])  # noqa: E731 - a piece no meshing run showed alone
    join = lambda: merge(a, token, CG_SV[0], CG_SV[1])  # noqa: E731
    for edit in (cut, join):
        roots = {int(r) for r in edit()["new_root_ids"]}
        for root in roots:
            on_a = manifest(a, root)
            made_after |= {name for name in on_a if ":~" not in name}
            assert on_a and all(count > 0 for count in fragments_shown(b, on_a))  # a's list, b's bytes
            until(lambda: manifest(b, root) == manifest(a, root), 30.0, step=0.2)  # both list the made ones
            assert all(count > 0 for count in fragments_shown(front, manifest(front, root)))
    assert made_after  # the split's pieces: fragments made after it, on a and served by b
    for name in "ab":  # each node keeps only its copy of the index
        assert (cluster["homes"][name] / "mesh-cache").is_dir() and not (cluster["homes"][name] / "meshes").exists()


def test_a_node_started_later_catches_up(cluster):
    a, token = cluster["nodes"]["a"].url, cluster["token"]
    edit_once(a, token)
    edit_once(a, token)
    late = cluster["start"]("c").url
    assert [root_on(late, sv) for sv in CG_SV] == [root_on(a, sv) for sv in CG_SV]
    assert np.array_equal(labels_on(late), labels_on(a))


def test_a_node_killed_mid_stream_of_edits_loses_nothing_it_acknowledged(cluster):
    """Last in the module: it kills node a."""
    a, b, token = cluster["nodes"]["a"], cluster["nodes"]["b"].url, cluster["token"]
    acknowledged, stop = [], threading.Event()

    def edit():
        while not stop.is_set():
            try:
                acknowledged.append(edit_once(a.url, token)["operation_id"])
            except (AssertionError, OSError):
                return  # the node is gone (no edit here is refused: each is asked of the graph as it is)

    worker = threading.Thread(target=edit)
    worker.start()
    until(lambda: len(acknowledged) >= 6, 60)
    a.kill()  # mid-stream: a request is in flight
    stop.set()
    worker.join(timeout=30)
    ids = ",".join(str(i) for i in acknowledged)
    status, details = call(f"{b}/segmentation/api/v1/table/cg/operation_details?operation_ids=[{ids}]")
    assert status == 200 and sorted(int(k) for k in details) == sorted(acknowledged), details
    assert edit_once(b, token)["operation_id"] > max(acknowledged)  # b edits on: no lock left behind
