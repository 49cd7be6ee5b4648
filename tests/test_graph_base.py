"""The graph's memory-mapped base, its per-process changes, and graphs stored as rows before bases."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import sqlalchemy as sa

from segmentation.graph import Graph, store_graph
from segmentation.graph.base import BaseError, GraphBase
from segmentation.graph.changes import NEWEST, RootChanges
from segmentation.graph.registry import forget_everywhere


def random_graph(n: int, seed: int):
    rng = np.random.default_rng(seed)
    svs = np.sort(rng.choice(np.arange(1, 50 * n), size=n, replace=False)).astype(np.uint64) | np.uint64(1 << 56)
    pairs = {tuple(sorted(p)) for p in rng.integers(0, n, size=(3 * n, 2)).tolist() if p[0] != p[1]}
    pairs = np.array(sorted(pairs))
    area = rng.uniform(1, 100, len(pairs))
    active = rng.random(len(pairs)) < 0.4
    return svs, svs[pairs[:, 0]], svs[pairs[:, 1]], area, active


def test_a_written_base_reads_back_memory_mapped_and_checks_itself(tmp_path):
    svs, a, b, area, active = random_graph(300, seed=1)
    boxes = np.arange(300 * 6, dtype=np.int32).reshape(300, 6)
    shuffled = np.random.default_rng(2).permutation(300)  # ids arrive in any order
    built = GraphBase.build(svs[shuffled], b, a, area, active, boxes=boxes[shuffled], root_base=40)
    path = built.write(tmp_path)
    opened = GraphBase.open(path)
    assert isinstance(opened.csr_neighbors, np.memmap) and not opened.root_of.flags.writeable
    for name in ("supervoxels", "boxes", "root_of", "root_ids", "root_members", "csr_indptr", "csr_neighbors"):
        assert np.array_equal(getattr(built, name), getattr(opened, name)), name
    assert np.array_equal(opened.boxes, boxes)  # boxes follow their supervoxels
    assert opened.root_base == 40 and opened.next_root_counter == 40 + len(opened.root_ids) + 1
    # every edge appears once in each of its two rows, and each row is sorted
    for row in range(0, 300, 37):
        neighbours = opened.csr_neighbors[opened.csr_indptr[row] : opened.csr_indptr[row + 1]]
        assert np.all(np.diff(neighbours) > 0)
    assert len(opened.csr_neighbors) == 2 * len(a)
    opened.verify()

    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["supervoxels"] == 300 and manifest["edges"] == len(a)
    damaged = bytearray((path / "area.npy").read_bytes())
    damaged[-1] ^= 0xFF
    (path / "area.npy").write_bytes(bytes(damaged))
    with pytest.raises(BaseError, match="area.npy is damaged"):
        GraphBase.open(path).verify()
    (path / "active.npy").write_bytes(b"short")
    with pytest.raises(BaseError, match="active.npy is not the size"):
        GraphBase.open(path)
    manifest["version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BaseError, match="version 99"):
        GraphBase.open(path)


def test_building_refuses_what_is_not_a_graph(tmp_path):
    svs = np.array([1, 2, 3], dtype=np.uint64)
    with pytest.raises(BaseError, match="duplicate supervoxel"):
        GraphBase.build([1, 2, 2], [1], [2], [1.0], [True])
    with pytest.raises(BaseError, match="unknown supervoxel id"):
        GraphBase.build(svs, [1], [9], [1.0], [True])
    with pytest.raises(BaseError, match="listed twice"):
        GraphBase.build(svs, [1, 2], [2, 1], [1.0, 1.0], [True, True])
    with pytest.raises(BaseError, match="to itself"):
        GraphBase.build(svs, [2], [2], [1.0], [True])
    assert not list(tmp_path.iterdir())


def test_root_changes_answer_like_a_plain_history():
    """Random assignments: every lookup (now and at every past operation) agrees with a dictionary history."""
    rng = np.random.default_rng(5)
    n = 5000
    changes = RootChanges(n)
    history: dict[int, list[tuple[int, int]]] = {}
    for seq in range(1, 400):
        size = int(rng.choice([1, 3, 50, 700]))
        positions = np.unique(rng.integers(0, n, size))
        root = 10_000 + seq
        changes.add(positions, seq, root)
        for p in positions.tolist():
            history.setdefault(p, []).append((seq, root))
    assert len(changes._runs) <= 12  # runs are merged: lookups search few of them
    queries = rng.integers(0, n, 3000)
    for at in (NEWEST, 1, 57, 200, 399):
        found, roots, seqs = changes.lookup(queries, at)
        for q, f, r, s in zip(queries.tolist(), found, roots, seqs):
            past = [(sq, rt) for sq, rt in history.get(q, []) if sq <= at]
            assert f == bool(past)
            if past:
                assert (int(s), int(r)) == past[-1]
    edited = changes.edited(np.arange(n))
    assert edited.tolist() == [p in history for p in range(n)]


def test_a_graph_stored_as_rows_gets_a_base_when_first_opened(database_url, tmp_path, graph_store):
    """Graphs ingested before bases (rows in graph_supervoxels/graph_edges) keep their roots and history."""
    from segmentation import db
    from segmentation.datasets import Datasets
    from segmentation.graph.bulk import write_rows
    from segmentation.models import GraphStateRow
    from tests.helpers import write_volume

    db.upgrade(database_url)
    labels = np.zeros((16, 16, 4), dtype=np.uint32)
    labels[:8], labels[8:] = 1, 2
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="raw", mips=1)
    Datasets(database_url).add("old", image=seg.replace("seg", "seg"), segmentation=seg)
    svs, a, b, area, active = random_graph(60, seed=3)
    store_graph(database_url, "old", svs, a, b, area, active)
    reference = Graph(database_url, "old")
    roots = reference.roots(svs)
    other = int(svs[np.flatnonzero(roots != roots[0])[0]])
    result = reference.merge(int(svs[0]), other, user="alice")  # a merge that adds an edge, too
    expected_now, expected_before = reference.roots(svs), reference.roots(svs, at=reference.operation_time(0))

    engine = db.engine_for(database_url)
    with engine.begin() as connection:  # what such a graph looked like: rows, and no base
        dataset_id = reference.dataset_id
        write_rows(
            connection,
            "graph_supervoxels",
            {"dataset_id": np.full(60, dataset_id, dtype=np.int32), "sv_id": svs.astype(np.int64)},
        )
        write_rows(
            connection,
            "graph_edges",
            {
                "dataset_id": np.full(len(a), dataset_id, dtype=np.int32),
                "sv_a": np.minimum(a, b).astype(np.int64),
                "sv_b": np.maximum(a, b).astype(np.int64),
                "area": np.asarray(area, dtype=np.float64),
                "initially_active": active,
            },
        )
        connection.execute(sa.update(GraphStateRow).values(base_url=None))
    forget_everywhere(database_url, "old")
    Path(urlsplit(reference.base_url).path).rename(tmp_path / "gone")  # the base is not what is read

    converted = Graph(database_url, "old")
    assert converted.base_url != reference.base_url
    assert np.array_equal(converted.roots(svs), expected_now)
    assert np.array_equal(converted.roots(svs, at=converted.operation_time(0)), expected_before)
    assert converted.operation(result.operation_id)["user_id"] == "alice"
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM graph_supervoxels")) == 0
        assert connection.scalar(sa.text("SELECT count(*) FROM graph_edges")) == 0
        assert connection.scalar(sa.select(GraphStateRow.base_url)) == converted.base_url
    assert Graph(database_url, "old").base_url == converted.base_url  # the next process reads that base


def test_half_written_bases_a_killed_writer_left_are_swept(tmp_path):
    import os
    import time

    svs, a, b, area, active = random_graph(50, seed=7)
    stale, fresh = tmp_path / ".base-3-dead.partial", tmp_path / ".base-4-writing.partial"
    for partial in (stale, fresh):
        partial.mkdir()
        (partial / "supervoxels.npy").write_bytes(b"half")
    an_hour_ago = time.time() - 3700
    os.utime(stale, (an_hour_ago, an_hour_ago))
    written = GraphBase.build(svs, a, b, area, active).write(tmp_path)
    assert not stale.exists() and fresh.exists()  # someone may still be writing that one
    assert GraphBase.open(written).supervoxel_count == 50
