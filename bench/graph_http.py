"""Benchmark merges and splits end to end: HTTP request → SQL transaction → in-memory apply.

A synthetic graph (see bench/graph_ops.py) is stored in a fresh database, then
``axonlink serve`` answers caveclient-style merge and split requests. Prints
p50/p99 per operation beside the naive baseline of the same run (networkx
connected components of the touched neurons). Targets (issue 3): merge p50 <= 20 ms,
split p50 <= 200 ms.

    python -m bench.graph_http [--supervoxels 1000000] [--max-neuron 20000] [--edits 40]
                               [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

import numpy as np

from bench.fresh import fresh_settings, proofreader_token, tiny_layer
from bench.graph_ops import naive_components, synthetic_graph
from bench.serve_chunks import axonlink_server
from segmentation.datasets import Datasets
from segmentation.graph import Graph, store_graph
from segmentation.graph.ids import supervoxel_ids


def post(url, body, token: str) -> float:
    start = time.perf_counter()
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        json.load(response)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supervoxels", type=int, default=1_000_000)
    parser.add_argument("--max-neuron", type=int, default=20_000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary home")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    with fresh_settings(args.database_url) as settings:
        home = settings.home
        tiny = tiny_layer(home)
        Datasets(settings.database_url).add("bench", image=tiny, segmentation=tiny)
        edges, active, area, neuron, starts, sizes = synthetic_graph(args.supervoxels, args.max_neuron, rng)
        svs = supervoxel_ids(np.arange(1, args.supervoxels + 1, dtype=np.uint64))
        t = time.perf_counter()
        store_graph(settings.database_url, "bench", svs, svs[edges[:, 0]], svs[edges[:, 1]], area, active)
        stored = time.perf_counter() - t
        t = time.perf_counter()
        reference = Graph(settings.database_url, "bench")
        loaded = time.perf_counter() - t
        print(
            f"graph: {args.supervoxels:,} supervoxels, {len(edges):,} edges; stored in {stored:.1f} s, "
            f"loaded from SQL in {loaded:.1f} s"
        )

        token = proofreader_token(settings, "bench")
        with axonlink_server(settings, {}) as url:
            base = f"{url}/segmentation/api/v1/table/bench"
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(16) as pool:  # concurrent requests reach every worker: all load the graph
                list(pool.map(lambda _: urllib.request.urlopen(f"{base}/node/{int(svs[0])}/root").read(), range(32)))
            merges, splits, naive_merge, naive_split = [], [], [], []
            # splits first, on neurons as ingested (up to --max-neuron supervoxels); then merges,
            # which join random neurons into ever larger roots
            for _k in range(max(1, args.edits // 4)):
                n = int(rng.integers(0, len(sizes)))
                at = starts[n] + int(rng.integers(0, max(1, sizes[n] - 100)))
                first = int(svs[at])  # a proofreader's points: a few dozen supervoxels apart
                second = int(svs[min(starts[n] + sizes[n] - 1, at + int(rng.integers(20, 60)))])
                if reference.root(first) != reference.root(second):
                    continue
                naive_split.append(naive_components(reference.index, reference.index.members(reference.root(first))))
                splits.append(
                    post(f"{base}/split", {"sources": [[first, 0, 0, 0]], "sinks": [[second, 0, 0, 0]]}, token)
                )
            cross = np.flatnonzero(~active)
            for _ in range(args.edits):
                a, b = (int(x) for x in svs[edges[cross[rng.integers(0, len(cross))]]])
                if reference.root(a) == reference.root(b):
                    continue
                merges.append(post(f"{base}/merge", [[a, 0, 0, 0], [b, 0, 0, 0]], token))
                naive_merge.append(naive_components(reference.index, reference.index.members(reference.root(a))))

    def pct(values, q):
        return float(np.percentile(values, q)) * 1000 if values else float("nan")

    print(
        f"merge via HTTP: p50 {pct(merges, 50):7.1f} ms  p99 {pct(merges, 99):7.1f} ms  ({len(merges)})"
        f"  | naive networkx components p50 {pct(naive_merge, 50):7.1f} ms  (target p50 <= 20)"
    )
    print(
        f"split via HTTP: p50 {pct(splits, 50):7.1f} ms  p99 {pct(splits, 99):7.1f} ms  ({len(splits)})"
        f"  | naive networkx components p50 {pct(naive_split, 50):7.1f} ms  (target p50 <= 200)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
