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


def typed_neurons(tags: CellTags, dataset: str, at: datetime | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(root, term code) of every tag in force at ``at``, sorted by root; and the term names."""
    index = tags.sync()
    code = index.datasets.codes.get(dataset)
    if code is None:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), list(index.terms.names)
    positions = index.positions_of(code)
    roots, inverse = neurons_of(tags, index, dataset, at)
    alive = index.alive_among(positions, at)
    tag_roots = roots[inverse][alive]
    terms = index.term[positions[alive]].astype(np.int64)
    order = np.lexsort((terms, tag_roots))
    return tag_roots[order], terms[order], list(index.terms.names)


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
    (``types`` resolved by the vocabulary: UnknownTerm, a 400 with suggestions, otherwise)."""
    tag_roots, terms, names = typed_neurons(tags, dataset, at)
    code_of = {name: i for i, name in enumerate(names)}
    roots, labels = [], []
    for label, text in enumerate(types):
        wanted = [code_of[t] for t in vocabulary.descendants(vocabulary.resolve(text)) if t in code_of]
        hit = np.isin(terms, np.array(wanted, dtype=np.int64))
        found = np.unique(tag_roots[hit])
        roots.append(found)
        labels.append(np.full(len(found), label, dtype=np.int64))
    if not roots:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(roots), np.concatenate(labels)
