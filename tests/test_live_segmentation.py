"""The served segmentation follows the graph: root ids now, root ids as of a moment."""

from __future__ import annotations

import datetime
import json
import urllib.request

import numpy as np
import pytest
from cloudvolume import CloudVolume

from segmentation.graph import Graph
from tests.helpers import CG_SV as SV


def served(server, ref="cg", mip=0):
    return CloudVolume(f"{server.url}/data/{ref}/segmentation", mip=mip, progress=False, cache=False)[:, :, :][..., 0]


def expected(labels, roots_by_plain):
    out = np.zeros_like(labels)
    for plain, root in roots_by_plain.items():
        out[labels == plain] = root
    return out


def test_volume_is_served_as_root_ids_now_and_then(cg_server):
    graph = Graph.open(cg_server.database_url, "cg")
    roots = graph.roots(SV)
    before = datetime.datetime.now(datetime.UTC)
    assert np.array_equal(served(cg_server), expected(cg_server.labels, dict(zip(range(1, 5), roots))))
    result = graph.merge(SV[1], SV[2], user="t")
    (merged,) = result.new_root_ids
    now = served(cg_server)
    assert set(np.unique(now).tolist()) == {merged}
    then = served(cg_server, ref=f"cg@{before.isoformat()}")
    assert np.array_equal(then, expected(cg_server.labels, dict(zip(range(1, 5), roots))))
    # mip 1 is remapped the same way
    assert set(np.unique(served(cg_server, mip=1)).tolist()) == {merged}
    # tensorstore reads the live view too
    ts = pytest.importorskip("tensorstore")
    store = ts.open(
        {"driver": "neuroglancer_precomputed", "kvstore": f"{cg_server.url}/data/cg/segmentation/"}, read=True
    ).result()
    assert set(np.unique(store.read().result()).tolist()) == {merged}


def test_chunks_asked_again_and_again_between_edits_show_every_edit(cg_server):
    """A cached chunk found current is not checked again until the server reads another edit: asked
    many times, then after a merge, many times, then after a split, it shows each edit at once."""
    graph = Graph.open(cg_server.database_url, "cg")
    roots = dict(zip(range(1, 5), graph.roots(SV)))
    for _ in range(3):
        assert np.array_equal(served(cg_server), expected(cg_server.labels, roots))
    (merged,) = graph.merge(SV[1], SV[2], user="t").new_root_ids
    for _ in range(3):
        assert set(np.unique(served(cg_server)).tolist()) == {merged}
    graph.split([SV[0]], [SV[3]], user="t")
    after = dict(zip(range(1, 5), graph.roots(SV)))
    assert len(set(after.values()) - {merged}) >= 2
    for _ in range(2):
        assert np.array_equal(served(cg_server), expected(cg_server.labels, after))


def test_live_chunks_revalidate_and_past_chunks_are_immutable(cg_server):
    info = json.load(urllib.request.urlopen(f"{cg_server.url}/data/cg/segmentation/info"))
    key = f"{info['scales'][0]['key']}/0-16_0-16_0-8"
    with urllib.request.urlopen(f"{cg_server.url}/data/cg/segmentation/{key}") as response:
        etag, cache = response.headers["ETag"], response.headers["Cache-Control"]
    assert cache == "no-cache"
    request = urllib.request.Request(f"{cg_server.url}/data/cg/segmentation/{key}", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request)
    assert not_modified.value.code == 304
    Graph.open(cg_server.database_url, "cg").merge(SV[1], SV[2], user="t")
    with urllib.request.urlopen(request) as response:  # an edit changes the ETag
        assert response.status == 200 and response.headers["ETag"] != etag
    with urllib.request.urlopen(f"{cg_server.url}/data/cg@1700000000/segmentation/{key}") as response:
        assert "immutable" in response.headers["Cache-Control"]


def test_live_chunks_go_out_gzipped_to_clients_that_take_gzip_compressed_once(cg_server):
    import gzip

    info = json.load(urllib.request.urlopen(f"{cg_server.url}/data/cg/segmentation/info"))
    url = f"{cg_server.url}/data/cg/segmentation/{info['scales'][0]['key']}/0-16_0-16_0-8"
    with urllib.request.urlopen(url) as response:  # urllib sends no Accept-Encoding: as encoded
        plain = response.read()
        assert "Content-Encoding" not in response.headers and response.headers["Vary"] == "Accept-Encoding"
    bodies = []
    for _ in range(2):
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})) as response:
            assert response.headers["Content-Encoding"] == "gzip" and response.headers["Vary"] == "Accept-Encoding"
            bodies.append(response.read())
    assert gzip.decompress(bodies[0]) == plain and len(bodies[0]) < len(plain)
    assert bodies[1] == bodies[0]  # the same bytes again (the gzip is kept with the cached chunk)


def test_an_edit_invalidates_only_the_chunks_it_touched(cg_server):
    info = json.load(urllib.request.urlopen(f"{cg_server.url}/data/cg/segmentation/info"))
    scale = info["scales"][0]["key"]
    touched = f"{cg_server.url}/data/cg/segmentation/{scale}/0-16_0-16_0-8"  # labels 1 and 2
    untouched = f"{cg_server.url}/data/cg/segmentation/{scale}/16-32_0-16_0-8"  # labels 3 and 4
    etags = {url: urllib.request.urlopen(url).headers["ETag"] for url in (touched, untouched)}
    graph = Graph.open(cg_server.database_url, "cg")
    graph.split([SV[0]], [SV[1]], user="t")  # splits {1, 2}; {3, 4} keeps its root

    def status(url):
        request = urllib.request.Request(url, headers={"If-None-Match": etags[url]})
        try:
            return urllib.request.urlopen(request).status
        except urllib.error.HTTPError as error:
            return error.code

    assert status(untouched) == 304
    assert status(touched) == 200
    future = f"{cg_server.url}/data/cg@4102444800/segmentation/{scale}/0-16_0-16_0-8"  # year 2100
    assert urllib.request.urlopen(future).headers["Cache-Control"] == "no-cache"


def test_supervoxel_view_serves_layer_one_ids(cg_server):
    from segmentation.graph.ids import supervoxel_ids

    supervoxels = served(cg_server, ref="cg@supervoxels")
    assert np.array_equal(supervoxels, supervoxel_ids(cg_server.labels))
    info = json.load(urllib.request.urlopen(f"{cg_server.url}/segmentation/table/cg/info"))
    assert info["data_dir"].endswith("/data/cg@supervoxels/segmentation")
