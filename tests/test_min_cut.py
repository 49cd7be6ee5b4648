"""The two minimum-cut paths (networkx for small roots, scipy's Dinic for large) find cuts of equal weight."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation.graph import index as graph_index


def cut_weight(side, lo, hi, area):
    inside = np.isin(lo, side) != np.isin(hi, side)
    return float(np.maximum(area, 1.0)[inside].sum())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 60), extra=st.integers(0, 120))
def test_scipy_and_networkx_cuts_have_the_same_weight(seed, n, extra):
    rng = np.random.default_rng(seed)
    members = np.sort(rng.choice(10 * n, size=n, replace=False)).astype(np.int64)
    chain = np.arange(n - 1)
    a = np.concatenate([chain, rng.integers(0, n, extra)])
    b = np.concatenate([chain + 1, rng.integers(0, n, extra)])
    keep = a != b
    lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    pairs = np.unique(np.stack([lo, hi], 1), axis=0)
    lo, hi = members[pairs[:, 0]], members[pairs[:, 1]]
    area = rng.integers(1, 1000, len(lo)).astype(np.float32)
    picks = rng.permutation(n)
    sources, sinks = members[picks[:2]].tolist(), members[picks[2:4]].tolist()

    by_networkx = graph_index.source_side(members, lo, hi, area, sources, sinks)
    by_scipy = graph_index._scipy_source_side(members, lo, hi, np.maximum(area, 1.0), sources, sinks)
    for side in (by_networkx, by_scipy):
        assert set(sources) <= set(side.tolist()) and not set(sinks) & set(side.tolist())
    assert cut_weight(by_networkx, lo, hi, area) == cut_weight(by_scipy, lo, hi, area)


def _index(n, extra_edges=(), weights=None):
    from segmentation.graph.ids import supervoxel_ids
    from segmentation.graph.index import GraphIndex

    svs = supervoxel_ids(np.arange(1, n + 1))
    pairs = [(i, i + 1) for i in range(n - 1)] + list(extra_edges)
    area = weights or [100.0] * len(pairs)
    index = GraphIndex.from_arrays(
        svs, [svs[a] for a, _ in pairs], [svs[b] for _, b in pairs], area, [True] * len(pairs)
    )
    return index, [int(s) for s in svs]


def test_split_cuts_near_the_points_of_a_large_root(monkeypatch):
    """On a 200-supervoxel chain whose cheapest edge is far away, the cut lands near the points."""
    monkeypatch.setattr(graph_index, "_LOCAL_CUT_NODES", 20)
    weights = [100.0] * 199
    weights[5] = 1.0  # globally cheapest, far from the points
    index, svs = _index(200, weights=weights)
    changes, _, groups = index.plan_split([svs[100]], [svs[103]])
    ((a, b, _),) = changes
    assert {a, b} <= set(svs[100:104])
    assert len(groups) == 2 and svs[100] in groups[0] and svs[103] in groups[1]


def test_split_falls_back_to_the_whole_root_when_the_neighbourhood_cannot_separate(monkeypatch):
    """A ring: any cut near the points leaves the far side joining them, so the whole root is cut."""
    monkeypatch.setattr(graph_index, "_LOCAL_CUT_NODES", 6)
    index, svs = _index(40, extra_edges=[(39, 0)])
    changes, _, groups = index.plan_split([svs[0]], [svs[20]])
    assert len(changes) == 2  # a ring needs two cut edges
    assert len(groups) == 2 and svs[0] in groups[0] and svs[20] in groups[1]
