"""Neurons and their cell types at a moment, as connectivity needs them: the types of a
neuron's partners, and every neuron of a cell type (with the types below it) for a matrix.

Read from the tag index's columns and the cached "tagged neurons of this graph state"
(:func:`segmentation.celltypes.search.neurons_of`), never tag by tag.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from ..celltypes.search import neurons_of
from ..celltypes.tags import CellTags
from ..celltypes.vocabulary import Vocabulary

CACHED_NEURONS = 200_000  # answers of neurons_of_types kept 16 at a time up to this size, one above it


def typed_neurons(tags: CellTags, dataset: str, at: datetime | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(root, term code) of every tag in force at ``at``, sorted by root; and the term names.
    Kept until the tags or the graph change (sorting a million tags costs more than a query)."""
    index = tags.sync()
    code = index.datasets.codes.get(dataset)
    if code is None:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), list(index.terms.names)
    roots, inverse = neurons_of(tags, index, dataset, at)
    key = ("typed", dataset, _state(tags, dataset, at))
    cached = index.derived(key)
    if cached is None:
        positions = index.positions_of(code)
        alive = index.alive_among(positions, at)
        tag_roots = roots[inverse][alive]
        terms = index.term[positions[alive]].astype(np.int64)
        order = np.lexsort((terms, tag_roots))
        cached = index.remember(key, (tag_roots[order], terms[order]))
    return cached[0], cached[1], list(index.terms.names)


def types_of(tags: CellTags, dataset: str, roots, at: datetime | None) -> dict[int, list[str]]:
    """The cell types (terms of tags in force at ``at``) of each of ``roots`` that has any."""
    tag_roots, terms, names = typed_neurons(tags, dataset, at)
    roots = np.asarray(roots, dtype=np.uint64)
    lo = np.searchsorted(tag_roots, roots, "left")
    hi = np.searchsorted(tag_roots, roots, "right")
    found = {}
    for root, a, b in zip(roots.tolist(), lo.tolist(), hi.tolist()):
        if b > a:
            found[root] = sorted({names[t] for t in terms[a:b].tolist()})
    return found


def neurons_of_types(
    tags: CellTags, dataset: str, types: list[str], vocabulary: Vocabulary, at: datetime | None
) -> tuple[np.ndarray, np.ndarray]:
    """(roots, label) for every neuron tagged at ``at`` with ``types[label]`` or a type below it
    (``types`` resolved by the vocabulary: UnknownTerm, a 400 with suggestions, otherwise). Kept
    (up to :data:`CACHED_NEURONS`) for the same tags, graph state and resolved types."""
    tag_roots, terms, names = typed_neurons(tags, dataset, at)
    code_of = {name: i for i, name in enumerate(names)}
    pair_terms, pair_labels = [], []  # (term code, label): a term may fall under several labels
    for label, text in enumerate(types):
        for term in vocabulary.descendants(vocabulary.resolve(text)):
            if term in code_of:
                pair_terms.append(code_of[term])
                pair_labels.append(label)
    if not pair_terms:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    pair_terms, pair_labels = np.array(pair_terms, np.int64), np.array(pair_labels, np.int64)
    index = tags.sync()
    key = ("types", dataset, _state(tags, dataset, at), pair_terms.tobytes(), pair_labels.tobytes())
    cached = index.derived(key) or index.derived(("large types", *key[1:]))
    if cached is None:
        cached = _labelled_neurons(tag_roots, terms, pair_terms, pair_labels)
        if len(cached[0]) <= CACHED_NEURONS:  # the index keeps 16 answers a kind: bound what they hold
            index.remember(key, cached)
        else:  # a large answer (every neuron of a thousand types): only the newest one is kept
            index.forget_kind("large types")
            index.remember(("large types", *key[1:]), cached)
    return cached


def _state(tags: CellTags, dataset: str, at: datetime | None):
    """The graph state ``at`` names (a replaced graph counts its operations from 0 again)."""
    graph = tags.graphs.find(dataset)
    if graph is None:
        return None
    return (graph.created_at, graph.seq if at is None else graph.seq_at(at), None if at is None else at.timestamp())


def _labelled_neurons(tag_roots, terms, pair_terms, pair_labels) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pair_terms, kind="stable")
    pair_terms, pair_labels = pair_terms[order], pair_labels[order]
    lo = np.searchsorted(pair_terms, terms, "left")
    hi = np.searchsorted(pair_terms, terms, "right")
    counts = hi - lo
    tag_rows = np.repeat(np.arange(len(terms)), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    labels = pair_labels[starts + np.arange(counts.sum())]
    roots = tag_roots[tag_rows]  # sorted by root already; labels within one root perhaps not
    same = roots[1:] == roots[:-1]
    if not (labels[1:][same] >= labels[:-1][same]).all():
        order = np.lexsort((labels, roots))
        roots, labels = roots[order], labels[order]
    first = np.ones(len(roots), dtype=bool)  # a neuron tagged twice with one type counts once
    first[1:] = (roots[1:] != roots[:-1]) | (labels[1:] != labels[:-1])
    return roots[first], labels[first]
