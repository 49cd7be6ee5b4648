"""The demo can be proofread to its true neurons: split the false merges, merge the pieces."""

from __future__ import annotations

import json

import numpy as np

from segmentation.graph import Graph
from segmentation.graph.ids import supervoxel_ids


def test_demo_proofreads_to_the_true_neurons(fresh_demo):
    truth = json.loads((fresh_demo.demo_dir / "ground_truth.json").read_text())
    neuron_of = {
        int(supervoxel_ids(np.array([int(k)], dtype=np.uint64))[0]): v for k, v in truth["supervoxel_to_neuron"].items()
    }
    graph = Graph.open(fresh_demo.database_url, "demo")
    svs = sorted(neuron_of)

    def partition():
        groups = {}
        for sv, root in zip(svs, graph.roots(svs).tolist()):
            groups.setdefault(root, set()).add(sv)
        return {frozenset(g) for g in groups.values()}

    false = [[int(s) for s in supervoxel_ids(np.array(pair, dtype=np.uint64))] for pair in truth["false_merges"]]
    for a, b in false:
        assert graph.root(a) == graph.root(b)  # the deliberate errors are there
        graph.split([a], [b], user="proofreader")
        assert graph.root(a) != graph.root(b)

    # join each neuron's pieces
    by_neuron: dict[int, list[int]] = {}
    for sv in svs:
        by_neuron.setdefault(neuron_of[sv], []).append(sv)
    for pieces in by_neuron.values():
        anchor = pieces[0]
        for piece in pieces[1:]:
            if graph.root(piece) != graph.root(anchor):
                graph.merge(anchor, piece, user="proofreader")
    expected = {frozenset(p) for p in by_neuron.values()}
    assert partition() == expected
    assert len({graph.root(p[0]) for p in by_neuron.values()}) == len(by_neuron)
