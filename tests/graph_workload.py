"""A graph workload shared by the compaction and object-storage tests: a chain of small neurons,
random edits, and every answer a client could ask (to compare before and after)."""

from __future__ import annotations

import numpy as np

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, GraphError, store_graph
from segmentation.graph.ids import supervoxel_ids

N = 400


def chain_of_neurons(url: str, volumes, name: str = "c") -> np.ndarray:
    """Forty neurons of ten supervoxels in a chain, touching their neighbours (inactive contacts)."""
    db.upgrade(url)
    Datasets(url).add(name, image=volumes["image"], segmentation=volumes["segmentation"])
    svs = supervoxel_ids(np.arange(1, N + 1, dtype=np.uint64) * 3)  # spaced ids: the binary-search path
    a = np.arange(N - 1)
    active = (a + 1) % 10 != 0  # within a neuron
    store_graph(url, name, svs, svs[a], svs[a + 1], np.linspace(1, 9, N - 1), active)
    return svs


def edit_at_random(graph: Graph, svs, rng, count: int) -> list[int]:
    """Merges (some adding edges), splits, undos; returns the operation ids that succeeded."""
    done = []
    for _ in range(count):
        kind = rng.choice(["merge", "merge", "split", "undo"])
        try:
            if kind == "merge":
                result = graph.merge(int(svs[rng.integers(N)]), int(svs[rng.integers(N)]), user="t")
            elif kind == "split":
                first = int(rng.integers(N - 3))
                result = graph.split([int(svs[first])], [int(svs[first + 2])], user="t")
            elif done:
                result = graph.undo(done[int(rng.integers(len(done)))], user="t")
            else:
                continue
        except GraphError:
            continue
        done.append(result.operation_id)
    return done


def answers(graph: Graph, svs) -> dict:
    """Everything a client could ask, now and at every operation's moment."""
    graph.sync()
    moments = [graph.operation_time(seq) for seq in range(graph.seq + 1)]
    roots_then = [graph.roots(svs, at=m).tolist() for m in moments]
    every_root = sorted({r for roots in roots_then for r in roots})
    return {
        "roots_then": roots_then,
        "leaves": {r: graph.leaves(r).tolist() for r in every_root},
        "edges": {r: graph.supervoxel_edges(r).tolist() for r in every_root},
        "lineage": graph.lineage(every_root[:5]),
        "latest": graph.is_latest(every_root),
        "change_log": [graph.change_log(r) for r in every_root[-5:]],
        "last_change": [graph.last_change(graph.positions(svs[k : k + 10])) for k in range(0, N, 10)],
    }
