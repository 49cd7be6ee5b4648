"""The versioned graph on SQLite and PostgreSQL: edits, undo/redo, time travel, several processes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, GraphError
from segmentation.graph import store_graph as ingest
from segmentation.graph.ids import is_root, is_supervoxel, supervoxel_ids

SV = [int(x) for x in supervoxel_ids(np.arange(1, 9))]  # 8 supervoxels


@pytest.fixture
def graph_db(settings, small_volumes):
    """Dataset 'g' with two 'neurons' as chains: 1-2-3-4 (active), 5-6-7-8 (active), 4-5 touching (inactive)."""
    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add("g", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    a = [SV[0], SV[1], SV[2], SV[3], SV[4], SV[5], SV[6]]
    b = [SV[1], SV[2], SV[3], SV[4], SV[5], SV[6], SV[7]]
    area = [50, 5, 50, 10, 50, 3, 50]
    active = [True, True, True, False, True, True, True]
    ingest(settings.database_url, "g", SV, a, b, area, active)
    return settings.database_url


def fresh(url):
    """A Graph as another process would have it: loaded from SQL, sharing nothing in memory."""
    return Graph(url, "g")


def test_initial_roots_follow_active_edges(graph_db):
    graph = fresh(graph_db)
    roots = graph.roots(SV)
    assert all(is_supervoxel(s) for s in SV)
    assert all(is_root(int(r)) for r in roots)
    assert len(set(roots[:4])) == 1 and len(set(roots[4:])) == 1 and roots[0] != roots[4]
    assert sorted(graph.leaves(roots[0]).tolist()) == SV[:4]


def test_merge_split_undo_redo_and_time_travel(graph_db):
    graph = fresh(graph_db)
    before = graph.roots(SV)
    t0 = datetime.now(UTC)
    merged = graph.merge(SV[3], SV[4], user="alice")
    assert len(merged.new_root_ids) == 1
    assert sorted(merged.old_root_ids) == sorted({int(before[0]), int(before[4])})
    assert set(graph.roots(SV)) == {merged.new_root_ids[0]}
    assert sorted(graph.leaves(merged.new_root_ids[0]).tolist()) == SV

    with pytest.raises(GraphError, match="already belong"):
        graph.merge(SV[0], SV[7], user="alice")

    split = graph.split([SV[0]], [SV[7]], user="bob")  # min cut: the area-3 edge 6-7
    now = graph.roots(SV)
    assert len(split.new_root_ids) == 2
    assert len(set(now[:6])) == 1 and len(set(now[6:])) == 1 and now[0] != now[6]
    assert graph.is_latest(split.new_root_ids) == [True, True]
    assert graph.is_latest([merged.new_root_ids[0]]) == [False]

    # time travel: as of t0 the original roots; as of the merge, the merged root
    assert graph.roots(SV, at=t0).tolist() == before.tolist()
    assert set(graph.roots(SV, at=merged.timestamp)) == {merged.new_root_ids[0]}

    undone = graph.undo(split.operation_id, user="bob")
    assert set(graph.roots(SV)) == {undone.new_root_ids[0]}
    assert undone.new_root_ids[0] != merged.new_root_ids[0]  # root ids are never reused
    with pytest.raises(GraphError, match="already undone"):
        graph.undo(split.operation_id, user="bob")
    redone = graph.redo(split.operation_id, user="bob")
    assert len(redone.new_root_ids) == 2
    assert graph.operation(redone.operation_id)["kind"] == "redo"
    assert graph.operation(merged.operation_id)["user_id"] == "alice"


def test_split_refusals_leave_nothing_behind(graph_db):
    graph = fresh(graph_db)
    with pytest.raises(GraphError, match="both source and sink"):
        graph.split([SV[0]], [SV[0]], user="x")
    with pytest.raises(GraphError, match="same root"):
        graph.split([SV[0]], [SV[7]], user="x")
    with pytest.raises(GraphError, match="unknown supervoxel"):
        graph.merge(SV[0], 12345, user="x")
    assert graph.index.seq == 0 and fresh(graph_db).index.seq == 0


def test_preview_does_not_commit(graph_db):
    graph = fresh(graph_db)
    groups = graph.preview_split([SV[0]], [SV[3]])
    assert groups == [SV[:2], SV[2:4]]  # the area-5 edge 2-3 is the cheapest cut
    assert len(set(graph.roots(SV[:4]))) == 1


def test_other_processes_see_edits_at_once(graph_db):
    first, second = fresh(graph_db), fresh(graph_db)
    result = first.merge(SV[3], SV[4], user="alice")
    assert set(second.roots(SV)) == {result.new_root_ids[0]}
    split = second.split([SV[0]], [SV[7]], user="bob")
    assert first.roots([SV[0]])[0] in split.new_root_ids
    assert fresh(graph_db).roots(SV).tolist() == first.roots(SV).tolist()


def test_non_adjacent_merge_adds_an_edge_that_survives_reload(graph_db):
    graph = fresh(graph_db)
    result = graph.merge(SV[0], SV[7], user="alice")
    assert set(graph.roots(SV)) == {result.new_root_ids[0]}
    assert set(fresh(graph_db).roots(SV)) == {result.new_root_ids[0]}


def test_concurrent_edits_are_serialized_and_none_is_lost(graph_db):
    """Threads with their own Graph (as separate processes would) race to merge then split."""
    errors, results = [], []

    def worker(k):
        graph = fresh(graph_db)
        try:
            if k % 2 == 0:
                results.append(graph.merge(SV[3], SV[4], user=f"u{k}"))
            else:
                results.append(graph.split([SV[0]], [SV[3]], user=f"u{k}"))
        except GraphError as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    final = fresh(graph_db)
    ops = [final.operation(r.operation_id) for r in results]
    assert len(results) + len(errors) == 6
    assert sorted(op["seq"] for op in ops) == list(range(1, len(results) + 1))
    # every recorded operation is in the log and the replayed state is consistent
    roots = final.roots(SV)
    for root in set(roots.tolist()):
        assert sorted(final.leaves(root).tolist()) == sorted(s for s, r in zip(SV, roots) if r == root)


def test_lineage_latest_roots_change_log_and_delta(graph_db):
    graph = fresh(graph_db)
    original = [int(r) for r in sorted(set(graph.roots(SV).tolist()))]
    t0 = datetime.now(UTC)
    merged = graph.merge(SV[3], SV[4], user="alice")
    split = graph.split([SV[0]], [SV[7]], user="bob")
    t_merge = merged.timestamp

    assert graph.latest_roots(original[0]) == sorted(split.new_root_ids)
    assert graph.latest_roots(original[0], at=t_merge) == [merged.new_root_ids[0]]
    assert graph.latest_roots(split.new_root_ids[0]) == [split.new_root_ids[0]]

    lineage = graph.lineage([split.new_root_ids[0]])
    ids = {node["id"] for node in lineage["nodes"]}
    assert ids >= {*original, merged.new_root_ids[0], split.new_root_ids[0]}
    links = {(link["source"], link["target"]) for link in lineage["links"]}
    assert (merged.new_root_ids[0], split.new_root_ids[0]) in links
    assert (original[0], merged.new_root_ids[0]) in links
    ops = {node["id"]: node["operation_id"] for node in lineage["nodes"]}
    assert ops[merged.new_root_ids[0]] == merged.operation_id and ops[original[0]] is None

    log = graph.change_log(split.new_root_ids[0])
    assert log["operations_ids"] == [merged.operation_id, split.operation_id]
    assert log["n_mergers"] == 1 and log["n_splits"] == 1
    assert set(log["past_ids"]) == {*original, merged.new_root_ids[0]}
    assert log["user_info"] == {"alice": {"n_splits": 0, "n_mergers": 1}, "bob": {"n_splits": 1, "n_mergers": 0}}

    old, new = graph.delta_roots(t0)
    assert old == original and new == sorted(split.new_root_ids)
    stamps = graph.root_timestamps([original[0], merged.new_root_ids[0]])
    assert stamps[0] <= t0 < stamps[1] == merged.timestamp


def _edit_in_another_process(url, kind, count, results):
    """Run in a child process: its own engine, its own index, edits racing the other process."""
    from segmentation.graph import Graph, GraphError

    graph = Graph(url, "g")
    done = 0
    for _ in range(count):
        try:
            if kind == "merge":
                graph.merge(SV[3], SV[4], user=kind)
            else:
                graph.split([SV[0]], [SV[7]], user=kind)
            done += 1
        except GraphError:
            pass
    results.put((kind, done))


def test_processes_editing_the_same_neurons_lose_nothing(graph_db):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_edit_in_another_process, args=(graph_db, kind, 5, results))
        for kind in ("merge", "split")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    done = dict(results.get(timeout=5) for _ in workers)
    final = fresh(graph_db)
    assert final.index.seq == done["merge"] + done["split"] >= 1
    seqs = sorted(final.operation(op_id)["seq"] for op_id in final._ops)
    assert seqs == list(range(1, final.index.seq + 1))  # one gapless log, every success recorded
    roots = final.roots(SV)
    for root in set(roots.tolist()):
        assert sorted(final.leaves(root).tolist()) == sorted(s for s, r in zip(SV, roots) if r == root)


def test_operations_are_objects_that_invert(graph_db):
    """Merge, Split, Undo and Redo as values: applied by Graph.apply, each committed one taken back by
    its invert(); Undo and Redo invert each other."""
    from segmentation.graph.operations import Merge, Redo, Split, Undo

    graph = fresh(graph_db)
    before = graph.roots(SV).tolist()
    merge = Merge(SV[3], SV[4])
    merged = graph.apply(merge, user="alice")
    assert len(set(graph.roots(SV).tolist())) == 1 and graph.operation(merged.operation_id)["kind"] == "merge"
    undone = graph.apply(merge.invert(merged.operation_id), user="alice")
    assert [len(set(graph.roots(SV[:4]).tolist())), len(set(graph.roots(SV[4:]).tolist()))] == [1, 1]
    assert graph.roots(SV).tolist() != before  # new roots, the same neurons as before the merge
    assert Undo(merged.operation_id).invert() == Redo(merged.operation_id)
    assert Redo(merged.operation_id).invert() == Undo(merged.operation_id)
    graph.apply(Undo(merged.operation_id).invert(), user="alice")  # redo the merge
    assert len(set(graph.roots(SV).tolist())) == 1
    split = graph.apply(Split((SV[0],), (SV[7],)), user="bob")
    assert len(split.new_root_ids) == 2
    graph.apply(Split((SV[0],), (SV[7],)).invert(split.operation_id), user="bob")
    assert len(set(graph.roots(SV).tolist())) == 1
    assert [op["kind"] for op in graph.user_operations(None)][-5:] == ["merge", "undo", "redo", "split", "undo"]
    assert undone.operation_id == merged.operation_id + 1
