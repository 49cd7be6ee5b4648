"""The two minimum-cut paths (networkx for small roots, scipy's Dinic for large) find cuts of equal weight."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from segmentation.graph import index as graph_index


def cut_weight(side, lo, hi, area):
    inside = np.isin(lo, side) != np.isin(hi, side)
    return float(np.maximum(area, 1.0)[inside].sum())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(4, 60), extra=st.integers(0, 120))
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
