"""Benchmark the in-memory graph index at scale: root lookups now and in the past, merges, splits.

A synthetic graph of ``--supervoxels`` supervoxels in neurons of up to
``--max-neuron`` supervoxels (chains with skip edges, active) plus inactive
contacts between neighbouring neurons. Edits run through GraphIndex (plan +
apply, as the server does after its SQL commit); the baseline for edits is the
naive recompute: networkx connected components of the touched neurons.
Targets (issue 3): 1M lookups now <= 100 ms, in the past <= 500 ms; merge p50 <=
20 ms, split p50 <= 200 ms.

    python -m bench.graph_ops [--supervoxels 10000000] [--max-neuron 100000] [--edits 20]

Note: this measures the index alone; the same edits end to end through HTTP and SQL are
not measured here yet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import networkx as nx
import numpy as np
import psutil

from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.index import Edit, GraphIndex


def synthetic_graph(n: int, max_neuron: int, rng):
    sizes, total = [], 0
    while total < n:
        sizes.append(int(min(rng.integers(max_neuron // 20, max_neuron + 1), n - total)))
        total += sizes[-1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    neuron = np.repeat(np.arange(len(sizes)), sizes)
    ids = np.arange(n)
    chain = ids[:-1][neuron[:-1] == neuron[1:]]
    chain_edges = np.stack([chain, chain + 1], 1)
    skip_from = rng.integers(0, n, n // 2)
    skip_to = np.minimum(skip_from + rng.integers(2, 50, n // 2), n - 1)
    skips = np.stack([skip_from, skip_to], 1)[neuron[skip_from] == neuron[skip_to]]
    cross_from = rng.integers(0, n, n // 2)
    cross_to = np.minimum(
        starts[np.minimum(neuron[cross_from] + 1, len(sizes) - 1)] + rng.integers(0, 1000, n // 2), n - 1
    )
    cross = np.stack([cross_from, cross_to], 1)[neuron[cross_from] != neuron[cross_to]]
    edges = np.concatenate([chain_edges, skips, cross])
    active = np.concatenate([np.ones(len(chain_edges) + len(skips), bool), np.zeros(len(cross), bool)])
    distinct = edges[:, 0] != edges[:, 1]  # a skip from the last supervoxel stops on itself: no edge
    edges, active = edges[distinct], active[distinct]
    edges, keep = np.unique(np.sort(edges, 1), axis=0, return_index=True)
    return edges, active[keep], rng.uniform(10, 1000, len(edges)).astype(np.float32), neuron, starts, sizes


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def naive_components(index: GraphIndex, members: np.ndarray) -> float:
    """Baseline: rebuild the touched neurons as a networkx graph and recompute its components."""
    start = time.perf_counter()
    lo, hi, _ = index._active_edges_within(members)
    graph = nx.Graph()
    graph.add_nodes_from(members.tolist())
    graph.add_edges_from(zip(lo.tolist(), hi.tolist()))
    list(nx.connected_components(graph))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supervoxels", type=int, default=10_000_000)
    parser.add_argument("--max-neuron", type=int, default=100_000)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    edges, active, area, neuron, starts, sizes = synthetic_graph(args.supervoxels, args.max_neuron, rng)
    svs = supervoxel_ids(np.arange(1, args.supervoxels + 1, dtype=np.uint64))
    rss_before = psutil.Process().memory_info().rss
    build, index = timed(GraphIndex.from_arrays, svs, svs[edges[:, 0]], svs[edges[:, 1]], area, active)
    memory = psutil.Process().memory_info().rss - rss_before
    print(
        f"graph: {args.supervoxels:,} supervoxels, {len(edges):,} edges, {len(sizes):,} neurons "
        f"(largest {max(sizes):,}); index built in {build:.1f} s, {memory / args.supervoxels:.0f} bytes/supervoxel"
    )

    queries = svs[rng.integers(0, args.supervoxels, 1_000_000)]
    now = statistics.median(timed(index.roots, queries)[0] for _ in range(5))

    merges, splits, naive_merge, naive_split = [], [], [], []
    cross = np.flatnonzero(~active)
    for _ in range(args.edits):
        a, b = (int(x) for x in svs[edges[cross[rng.integers(0, len(cross))]]])
        if index.roots([a])[0] == index.roots([b])[0]:
            continue
        start = time.perf_counter()
        changes, _ = index.plan_merge(a, b)
        index.apply(Edit(changes, index.allocate_root_ids(index.count_components_after(changes))), index.seq + 1)
        merges.append(time.perf_counter() - start)
        naive_merge.append(naive_components(index, index.members(int(index.roots([a])[0]))))
    for k in range(max(1, args.edits // 4)):
        big = int(np.argmax(sizes)) if k == 0 else int(rng.integers(0, len(sizes)))
        first, last = starts[big], starts[big] + sizes[big] - 1
        source, sink = int(svs[first]), int(svs[last])
        if index.roots([source])[0] != index.roots([sink])[0]:
            continue
        start = time.perf_counter()
        changes, _, _ = index.plan_split([source], [sink])
        index.apply(Edit(changes, index.allocate_root_ids(index.count_components_after(changes))), index.seq + 1)
        splits.append(time.perf_counter() - start)
        naive_split.append(naive_components(index, index.members(int(index.roots([source])[0]))))

    past = statistics.median(timed(index.roots, queries, 0)[0] for _ in range(5))

    def pct(values, q):
        return float(np.percentile(values, q)) * 1000 if values else float("nan")

    print(f"1M root lookups now:         {now * 1000:8.1f} ms   (target <= 100)")
    print(f"1M root lookups in the past: {past * 1000:8.1f} ms   (target <= 500)")
    print(
        f"merge (index): p50 {pct(merges, 50):8.1f} ms  p99 {pct(merges, 99):8.1f} ms  "
        f"| naive networkx components p50 {pct(naive_merge, 50):8.1f} ms  (target p50 <= 20)"
    )
    print(
        f"split (index): p50 {pct(splits, 50):8.1f} ms  p99 {pct(splits, 99):8.1f} ms  "
        f"| naive networkx components p50 {pct(naive_split, 50):8.1f} ms  (target p50 <= 200)"
        f"  [{len(splits)} splits, the first on the largest neuron]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
