"""A fly lab's data as Raveler/NeuTu export it, end to end: per-plane superpixels and a body table.

The demo's neurons are cut into per-plane superpixels (2D pieces, one z plane each) stored as
uint32 ``(z << 16) | superpixel`` compressed_segmentation (sharded) and as a running uint16
number (raw); the body table maps each superpixel to its neuron. After ``ingest-graph
--agglomeration`` from the shell, every root is exactly a body (bodies whose pieces do not touch
are joined by agglomeration-only edges), the views read back with CloudVolume and tensorstore,
and a proofreader splits a body through caveclient.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cloudvolume import CloudVolume

from segmentation.config import Settings
from segmentation.graph import Graph
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.ingest import has_graph
from server.cli import main
from tests.helpers import proofreader_token
from tests.layers import raveler_style, sharding, write_layer


@pytest.fixture(scope="module")
def raveler(tmp_path_factory):
    """Two datasets from one Raveler export: ``wide`` (uint32, compressed, sharded) and ``narrow`` (uint16 raw)."""
    root = tmp_path_factory.mktemp("raveler")
    wide, narrow, wide_body, narrow_body = raveler_style()
    home = root / "home"
    found = {}
    for name, labels, bodies, spec in (
        ("wide", wide, wide_body, dict(encoding="compressed_segmentation", shard=sharding())),
        ("narrow", narrow, narrow_body, dict(encoding="raw")),
    ):
        url = write_layer(root / name, [labels], chunk=(64, 64, 8), offset=(0, 0, 0), **spec)
        table = root / f"{name}_bodies.txt"  # Raveler's whitespace style, with a comment line
        table.write_text("# superpixel body\n" + "".join(f"{sp} {body}\n" for sp, body in sorted(bodies.items())))
        assert main(["add-dataset", name, "--segmentation", url, "--home", str(home)]) == 0
        found[name] = (labels, bodies, table)
    return home, found


def ingest(capsys, home, name, table) -> dict:
    capsys.readouterr()
    status = main(["ingest-graph", name, "--agglomeration", str(table), "--home", str(home)])
    out = capsys.readouterr()
    assert status == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def roots_by_label(graph: Graph, labels: np.ndarray) -> dict[int, int]:
    plain = np.unique(labels)
    plain = plain[plain != 0].astype(np.uint64)
    return dict(zip(plain.tolist(), graph.roots(supervoxel_ids(plain).tolist())))


@pytest.mark.parametrize("name", ["wide", "narrow"])
def test_roots_are_exactly_the_bodies_and_every_view_reads_back(raveler, name, capsys):
    home, found = raveler
    labels, bodies, table = found[name]
    summary = ingest(capsys, home, name, table)
    assert summary["bodies"] == len(set(bodies.values()))
    graph = Graph.open(Settings.load(home=home).database_url, name)
    roots = roots_by_label(graph, labels)
    root_of_body = {}
    for label, root in roots.items():
        assert root_of_body.setdefault(bodies[label], root) == root  # one root per body …
    assert len(set(root_of_body.values())) == len(root_of_body)  # … and one body per root
    # a neuron's pieces need not touch (a crossing neurite cuts its territory): such bodies are made whole
    import cc3d

    body_volume = np.vectorize(lambda v: bodies.get(int(v), 0), otypes=[np.uint32])(labels)
    apart = sum(
        cc3d.connected_components(body_volume == body, connectivity=6, return_N=True)[1] > 1
        for body in set(bodies.values())
    )
    assert apart >= 1 and summary["bodies_made_whole"] == apart
    assert summary["agglomeration_only_edges"] >= apart

    from server import create_app
    from server.runner import BackgroundServer

    expected = np.vectorize(lambda v: roots.get(int(v), 0), otypes=[np.uint64])(labels)
    with BackgroundServer(create_app(Settings.load(home=home))) as server:
        volume = CloudVolume(f"{server.url}/data/{name}/segmentation", progress=False, cache=False)
        assert volume.dtype == np.uint64
        assert np.array_equal(np.asarray(volume[volume.bounds])[..., 0], expected)
        ts = pytest.importorskip("tensorstore")
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": f"{server.url}/data/{name}/segmentation/"}, read=True
        ).result()
        assert np.array_equal(np.asarray(store.read().result())[..., 0], expected)


def test_a_proofreader_splits_a_body_through_caveclient(raveler, capsys, tmp_path, monkeypatch):
    """The largest body, split between its first and last plane: two neurons, the served volume follows."""
    caveclient = pytest.importorskip("caveclient")
    from server import create_app
    from server.runner import BackgroundServer

    home, found = raveler
    labels, bodies, table = found["wide"]
    database_url = Settings.load(home=home).database_url
    if not has_graph(database_url, "wide"):
        ingest(capsys, home, "wide", table)
    sizes = {}
    for _label, body in bodies.items():
        sizes[body] = sizes.get(body, 0) + 1
    body = max(sizes, key=sizes.get)
    pieces = sorted(label for label, b in bodies.items() if b == body)
    first, last = pieces[0], pieces[-1]  # the lowest and the highest plane of the neuron
    assert first >> 16 < last >> 16

    def voxel_in(label):
        x, y, z = (int(v[0]) for v in np.nonzero(labels == label))
        return [x, y, z]

    monkeypatch.setenv("HOME", str(tmp_path))
    with BackgroundServer(create_app(Settings.load(home=home))) as server:
        cg = caveclient.CAVEclient(
            datastack_name="wide",
            server_address=server.url,
            write_server_cache=False,
            auth_token=proofreader_token(database_url, "wide"),
        ).chunkedgraph
        svs = [int(s) for s in supervoxel_ids(np.array([first, last], dtype=np.uint64))]
        (root,) = set(cg.get_roots(svs).tolist())
        resolution = np.array([8, 8, 40])
        _, parts = cg.execute_split(
            [np.array(voxel_in(first)) * resolution], [np.array(voxel_in(last)) * resolution], root
        )
        assert len(parts) == 2 and cg.get_root_id(svs[0]) != cg.get_root_id(svs[1])
        served = np.asarray(CloudVolume(f"{server.url}/data/wide/segmentation", progress=False, cache=False)[:, :, :])[
            ..., 0
        ]
        members = np.isin(labels, pieces)
        assert set(np.unique(served[members]).tolist()) == set(parts)
