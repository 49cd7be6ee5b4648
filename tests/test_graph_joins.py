"""Merges as forward pointers between roots (segmentation/graph/joins.py): long chains of merges, splits
between them, time travel to every operation, and compaction, against a plain union-find reference."""

import numpy as np
import pytest

from segmentation.graph import joins
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.index import Edit, GraphIndex


def _partition(roots: np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for position, root in enumerate(roots.tolist()):
        groups.setdefault(root, set()).add(position)
    return {frozenset(g) for g in groups.values()}


@pytest.fixture
def tiny_tables(monkeypatch):
    """Arrays that must grow, and a members cache that must drop entries, within a short test."""
    monkeypatch.setattr(joins, "_HEADROOM", 3)
    monkeypatch.setattr(joins, "MEMBERS_CACHED", 50)


def test_long_chains_of_merges_and_splits_answer_like_a_reference_at_every_moment(tiny_tables):
    rng = np.random.default_rng(3)
    n = 120
    svs = supervoxel_ids(np.arange(1, n + 1, dtype=np.uint64))
    chain = np.arange(n - 1)
    index = GraphIndex.from_arrays(
        svs, svs[chain], svs[chain + 1], np.ones(n - 1, np.float32), np.zeros(n - 1, dtype=bool)
    )
    active: set[tuple[int, int]] = set()
    expected = [_partition(index.roots(svs))]  # partition after each operation
    edits = []
    for seq in range(1, 160):
        if seq % 7 == 0 and active:  # a split of a merged neuron: switch one of its edges off
            a, b = sorted(active)[int(rng.integers(len(active)))]
            changes = ((int(svs[a]), int(svs[b]), False),)
        else:  # mostly merges into a few growing neurons: long chains of joined roots
            a = int(rng.integers(0, 12)) if rng.random() < 0.7 else int(rng.integers(n))
            b = int(rng.integers(n))
            if index.roots([svs[a]])[0] == index.roots([svs[b]])[0]:
                continue
            changes = ((int(svs[a]), int(svs[b]), True),)
        new_roots = index.allocate_root_ids(index.count_components_after(changes))
        edit = Edit(changes, new_roots)
        old_roots, _ = index.apply(edit, index.seq + 1)
        edits.append((edit, old_roots))
        ((x, y, on),) = changes
        pair = tuple(sorted(int(np.searchsorted(svs, np.uint64(v))) for v in (x, y)))
        (active.add if on else active.discard)(pair)
        expected.append(_reference(n, active))

    def check(graph: GraphIndex):
        for seq, partition in enumerate(expected):
            roots = graph.roots(svs, None if seq == len(expected) - 1 else seq)
            assert _partition(roots) == partition, f"at operation {seq}"
            for root in set(roots.tolist()):  # members of every root there has been, merged ones too
                assert set(graph.members(root).tolist()) == set(np.flatnonzero(roots == root).tolist())
        now = graph.roots(svs)
        for position in range(0, n, 7):  # the operation that made each supervoxel's root now
            made = graph.record(int(now[position])).created_seq
            assert graph.last_change(np.array([position])) == made

    check(index)
    compacted = GraphIndex(index.compacted())  # a new process on the compacted base replays the log
    for seq, (edit, old_roots) in enumerate(edits, start=1):
        compacted.fold(seq, old_roots, edit.new_root_ids, joined=all(on for *_, on in edit.edge_changes))
    check(compacted)
    assert len(compacted.base.history_keys)  # supervoxels merges moved are listed for the past


def _reference(n: int, active: set[tuple[int, int]]) -> set[frozenset[int]]:
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in active:
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for x in range(n):
        groups.setdefault(find(x), set()).add(x)
    return {frozenset(g) for g in groups.values()}
