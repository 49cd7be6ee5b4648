"""Live chunks made by one server process are answered by the others from the shared files, only
while they still show the roots of now (segmentation.live_shared)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from segmentation.config import sqlite_url
from segmentation.datasets import Datasets
from segmentation.db import upgrade
from segmentation.graph import Graph, ingest_dataset
from segmentation.live import LiveSegmentation
from segmentation.live_shared import HEAD_BYTES, SharedChunks, configured_bytes
from segmentation.storage import open_layer_store
from tests.helpers import CG_SV as SV
from tests.helpers import slab_labels, write_volume


@pytest.fixture(params=[("uint32", "raw"), ("uint64", "compressed_segmentation")])
def layer(request, tmp_path):
    """A `cg` dataset of slab labels ({1,2} and {3,4} merged) in four 16×16×8 chunks at mip 0."""
    dtype, encoding = request.param
    database_url = sqlite_url(tmp_path / "axonlink.sqlite")
    upgrade(database_url)
    url = write_volume(tmp_path / "seg", slab_labels(np.dtype(dtype)), layer_type="segmentation", encoding=encoding)
    Datasets(database_url).add("cg", segmentation=url)
    ingest_dataset(database_url, "cg", agglomeration=[[1, 2], [3, 4]], progress=False)
    return database_url, url


def process(database_url, url, shared):
    """What one server process holds: its own graph and live view (its own memory cache)."""
    graph = Graph.open(database_url, "cg")
    return LiveSegmentation(url, open_layer_store(url), graph, shared)


def chunk_keys(view):
    key = view.stored_info["scales"][0]["key"]
    return [f"{key}/{x}-{x + 16}_{y}-{y + 16}_0-8" for x in (0, 16) for y in (0, 16)]


def computing_forbidden(view):
    def refuse(*_args, **_kwargs):
        raise AssertionError("computed although another process made this chunk")

    view._compute_chunk = refuse


def test_a_chunk_made_by_one_process_is_answered_by_another_without_computing(layer, tmp_path):
    database_url, url = layer
    shared = SharedChunks(tmp_path / "live-chunks", 1 << 30)
    first, second = process(database_url, url, shared), process(database_url, url, shared)
    made = {key: first.chunk(key, first.graph.seq, gzipped=True) for key in chunk_keys(first)}
    plain = {key: first.chunk(key, first.graph.seq)[1] for key in made}
    computing_forbidden(second)
    for key, (version, body) in made.items():
        assert second.chunk(key, second.graph.seq, gzipped=True) == (version, body)
        assert second.chunk(key, second.graph.seq) == (version, plain[key])
        assert gzip.decompress(body) == plain[key]


def test_after_an_edit_only_the_chunks_it_touched_are_made_again(layer, tmp_path):
    database_url, url = layer
    shared = SharedChunks(tmp_path / "live-chunks", 1 << 30)
    first, second = process(database_url, url, shared), process(database_url, url, shared)
    keys = chunk_keys(first)
    for key in keys:
        first.chunk(key, first.graph.seq)
    first.graph.split([SV[0]], [SV[1]], user="t")  # labels 1 and 2: the chunks at x 0-16 only
    second.graph.sync()
    computed = []
    compute = second._compute_chunk
    second._compute_chunk = lambda key, relabel: computed.append(key) or compute(key, relabel)
    answers = {key: second.chunk(key, second.graph.seq) for key in keys}
    assert sorted(computed) == sorted(k for k in keys if "/0-16_" in k)
    # what it answers is what a process without any cache computes after the edit
    alone = process(database_url, url, None)
    for key in keys:
        assert answers[key] == alone.chunk(key, alone.graph.seq)
    # the first process, behind and then caught up, never takes the other's newer file for its older moment
    first.graph.sync()
    for key in keys:
        assert first.chunk(key, first.graph.seq) == answers[key]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "positions out of range", "a chunk byte flipped"])
def test_a_damaged_file_is_made_again_never_answered(layer, tmp_path, damage):
    database_url, url = layer
    shared = SharedChunks(tmp_path / "live-chunks", 1 << 30)
    first, second = process(database_url, url, shared), process(database_url, url, shared)
    key = chunk_keys(first)[0]
    expected = first.chunk(key, first.graph.seq)
    (path,) = [p for p in (tmp_path / "live-chunks").rglob("*") if p.is_file()]
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 3]
    elif damage == "garbage":
        data[:8] = b"NOTOURS!"
    elif damage == "positions out of range":
        data[HEAD_BYTES : HEAD_BYTES + 8] = (10**9).to_bytes(8, "little")  # the first supervoxel position
    else:
        data[-1] ^= 0xFF  # the same length, one byte of the gzip changed
    path.write_bytes(bytes(data))
    computed = []
    compute = second._compute_chunk
    second._compute_chunk = lambda key, relabel: computed.append(key) or compute(key, relabel)
    assert second.chunk(key, second.graph.seq) == expected
    assert computed == [key]  # made again, not answered from the file
    third = process(database_url, url, shared)  # … and written again whole: the next process takes it
    computing_forbidden(third)
    assert third.chunk(key, third.graph.seq, gzipped=True)[1] == gzip.compress(expected[1], compresslevel=5)


def test_the_files_stay_within_their_bound_and_can_be_switched_off(layer, tmp_path, monkeypatch):
    database_url, url = layer
    one = process(database_url, url, SharedChunks(tmp_path / "one", 1 << 30))
    one.chunk(chunk_keys(one)[0], one.graph.seq)
    size = sum(p.stat().st_size for p in (tmp_path / "one").rglob("*") if p.is_file())
    bounded = SharedChunks(tmp_path / "bounded", int(size * 2.5))  # room for two chunk files
    view = process(database_url, url, bounded)
    for step, key in enumerate(chunk_keys(view) * 3):
        view.shared.write(view._namespace, f"{key}#{step}", 0, np.zeros(0, dtype=np.int64), b"x" * (size - 40), b"")
        files = [p for p in (tmp_path / "bounded").rglob("*") if p.is_file()]
        assert sum(p.stat().st_size for p in files) <= bounded.max_bytes + size  # swept after an eighth
    monkeypatch.setenv("AXONLINK_LIVE_SHARED_MB", "0")
    assert configured_bytes() == 0
    off = process(database_url, url, SharedChunks(tmp_path / "off", configured_bytes()))
    off.chunk(chunk_keys(off)[0], off.graph.seq)
    assert not (tmp_path / "off").exists()
