"""A split keeps the pieces it made: other processes replay it without searching the graph, and get
the same answers as the process that made it (or search, when the stored pieces are unusable)."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from segmentation.db import engine_for
from segmentation.graph import Graph
from segmentation.graph import pieces as split_pieces
from segmentation.graph.base import BaseError
from segmentation.graph.index import GraphIndex
from segmentation.models import GraphOperationRow
from tests.graph_workload import answers, chain_of_neurons


def test_pieces_round_trip_and_refuse_what_they_cannot_hold():
    supervoxels = np.arange(100, 200, dtype=np.uint64) * 7
    components = [np.arange(0, 10), np.arange(10, 90), np.array([90, 95, 99])]
    blob = split_pieces.encode(components, supervoxels)
    decoded = split_pieces.decode(blob)
    assert [d.tolist() for d in decoded] == [supervoxels[c].tolist() for c in (components[0], components[2])]
    assert split_pieces.encode([np.arange(5)], supervoxels) is None  # one component: nothing to keep
    import zlib

    with pytest.raises(BaseError):
        split_pieces.decode(b"not zlib")
    with pytest.raises(BaseError):  # a header claiming more than the bytes hold
        split_pieces.decode(zlib.compress(np.array([2, 5, 5], dtype="<u4").tobytes() + bytes(8)))
    with pytest.raises(BaseError):  # a bomb: far more than any stored pieces may inflate to
        split_pieces.decode(zlib.compress(bytes(80 * split_pieces.MAX_STORED)))


def split_in_the_middle(graph, svs):
    result = graph.split([int(svs[2])], [int(svs[7])], user="t")  # a neuron of ten in a chain: one cut
    assert len(result.new_root_ids) == 2
    return result


def test_another_process_replays_a_split_from_its_pieces_without_a_graph_search(
    database_url, small_volumes, monkeypatch
):
    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    split_in_the_middle(graph, svs)
    graph.undo(graph.merge(int(svs[3]), int(svs[33]), user="t").operation_id, user="t")  # an undone merge cuts too
    expected = answers(graph, svs)
    with engine_for(database_url).connect() as connection:
        stored = connection.execute(sa.select(GraphOperationRow.kind, GraphOperationRow.pieces)).all()
    assert [kind for kind, blob in stored if blob is not None] == ["split", "undo"]

    search = GraphIndex._compute_components

    def no_search(self, edge_changes):
        if not all(on for _, _, on in edge_changes):
            raise AssertionError("replayed a cut by searching the graph")
        return search(self, edge_changes)  # merges join roots (no search either)

    monkeypatch.setattr(GraphIndex, "_compute_components", no_search)
    elsewhere = Graph.open(database_url, "c")
    assert answers(elsewhere, svs) == expected


def test_unusable_stored_pieces_fall_back_to_searching_the_graph(database_url, small_volumes):
    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    split_in_the_middle(graph, svs)
    expected = answers(graph, svs)
    wrong = split_pieces.encode([np.arange(3), np.arange(3, 400)], graph.index.sv_ids)  # pieces of another root
    with engine_for(database_url).begin() as connection:
        connection.execute(sa.update(GraphOperationRow).values(pieces=wrong))
    assert answers(Graph.open(database_url, "c"), svs) == expected
    with engine_for(database_url).begin() as connection:
        connection.execute(sa.update(GraphOperationRow).values(pieces=b"damaged"))
    assert answers(Graph.open(database_url, "c"), svs) == expected
