"""Property test: random merges, splits, undos, redos and compactions against a plain reference model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from segmentation import db
from segmentation.config import sqlite_url
from segmentation.datasets import Datasets
from segmentation.graph import Graph, GraphError
from segmentation.graph import store_graph as ingest
from segmentation.graph.compaction import compact
from segmentation.graph.ids import supervoxel_ids

N = 10
# contiguous ids take the index's subtraction path, spaced ids its binary-search path
ID_LAYOUTS = {stride: [int(x) for x in supervoxel_ids(np.arange(1, N + 1) * stride)] for stride in (1, 7)}
# a fixed adjacency: a ring plus a few chords, with areas
EDGES = [(i, (i + 1) % N) for i in range(N)] + [(0, 5), (2, 7), (3, 8)]
AREAS = [1 + (7 * k) % 11 for k in range(len(EDGES))]

operation = st.one_of(
    st.tuples(st.just("merge"), st.integers(0, N - 1), st.integers(0, N - 1)),
    st.tuples(st.just("split"), st.integers(0, N - 1), st.integers(0, N - 1)),
    st.tuples(st.just("undo"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("redo"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("compact"), st.just(0), st.just(0)),
)


def partition(labels, SV) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for sv, root in zip(SV, labels):
        groups.setdefault(int(root), set()).add(sv)
    return {frozenset(g) for g in groups.values()}


def reference_partition(active: set[tuple[int, int]], SV) -> set[frozenset[int]]:
    graph = nx.Graph()
    graph.add_nodes_from(SV)
    graph.add_edges_from(active)
    return {frozenset(c) for c in nx.connected_components(graph)}


@pytest.fixture(scope="module")
def volumes(small_volumes):
    return small_volumes


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request):
    """A factory of empty databases, one per hypothesis example."""
    import contextlib

    from tests.helpers import POSTGRES_URL, postgres_available

    if request.param == "postgresql":
        reason = postgres_available()
        if reason:
            pytest.skip(reason)

    @contextlib.contextmanager
    def make():
        if request.param == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                yield sqlite_url(Path(tmp) / "g.sqlite")
            return
        from segmentation.db import private_schema

        with private_schema(POSTGRES_URL) as url:
            yield url

    return make


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.lists(st.booleans(), min_size=len(EDGES), max_size=len(EDGES)),
    steps=st.lists(operation, min_size=1, max_size=12),
    stride=st.sampled_from(sorted(ID_LAYOUTS)),
)
def test_random_edit_sequences_match_the_reference(volumes, fresh_database, initial, steps, stride):
    SV = ID_LAYOUTS[stride]
    with fresh_database() as url:
        db.upgrade(url)
        Datasets(url).add("g", image=volumes["image"], segmentation=volumes["segmentation"])
        ingest(url, "g", SV, [SV[a] for a, _ in EDGES], [SV[b] for _, b in EDGES], AREAS, initial)
        graph = Graph(url, "g")
        active = {tuple(sorted((SV[a], SV[b]))) for (a, b), on in zip(EDGES, initial) if on}
        history = [(graph.operation_time(0), reference_partition(active, SV))]
        leaves_of: dict[int, frozenset[int]] = {}
        seen_roots: set[int] = set()
        operation_ids: list[int] = []

        def check_now():
            roots = graph.roots(SV)
            assert partition(roots, SV) == reference_partition(active, SV)
            for root in set(roots.tolist()):
                leaves = frozenset(graph.leaves(root).tolist())
                assert leaves_of.setdefault(root, leaves) == leaves  # roots are immutable

        check_now()
        for kind, x, y in steps:
            if kind == "compact":  # fold the log into a new base; every answer stays the same
                compact(url, "g")
                check_now()  # ``graph`` switches to the new base at this read
                fresh = Graph(url, "g")
                for moment, expected in history:
                    assert partition(fresh.roots(SV, at=moment), SV) == expected
                for root, leaves in leaves_of.items():  # roots of the past too
                    assert frozenset(fresh.leaves(root).tolist()) == leaves
                continue
            try:
                if kind == "merge":
                    result = graph.merge(SV[x], SV[y], user="p")
                elif kind == "split":
                    result = graph.split([SV[x]], [SV[y]], user="p")
                elif kind == "undo" and operation_ids:
                    result = graph.undo(operation_ids[x % len(operation_ids)], user="p")
                elif kind == "redo" and operation_ids:
                    result = graph.redo(operation_ids[x % len(operation_ids)], user="p")
                else:
                    continue
            except GraphError:
                check_now()  # a refused edit changes nothing
                continue
            op = graph.operation(result.operation_id)
            before = reference_partition(active, SV)
            for a, b, on in op["edge_changes"]:
                (active.add if on else active.discard)(tuple(sorted((a, b))))
            after = reference_partition(active, SV)
            if kind == "split":
                assert not any(SV[x] in g and SV[y] in g for g in after)
            if kind == "merge":
                assert any(SV[x] in g and SV[y] in g for g in after)
            # only the touched roots changed; new ids never seen before
            assert set(result.new_root_ids).isdisjoint(seen_roots | set(leaves_of))
            seen_roots.update(result.new_root_ids)
            operation_ids.append(result.operation_id)
            history.append((result.timestamp, after))
            check_now()
            retired = {leaves_of[r] for r in result.old_root_ids}
            created = {leaves_of[r] for r in result.new_root_ids}
            assert retired <= before and created <= after
            assert before - retired == after - created  # untouched neurons keep their roots
            assert frozenset().union(*retired) == frozenset().union(*created)
        # time travel: every recorded moment answers the reference's partition then
        for moment, expected in history:
            assert partition(graph.roots(SV, at=moment), SV) == expected
        # a second process replaying the log agrees
        assert Graph(url, "g").roots(SV).tolist() == graph.roots(SV).tolist()
