"""Neuroglancer ``segment_properties`` for a moment: each tagged neuron's label and cell-type tags.

Served beside the live segmentation, so the stock viewer's segment list can be filtered by
type (``#L2/3_pyramidal``; tags cannot hold spaces there). A neuron's tags include its terms'
ancestors, so ``#pyramidal`` finds every pyramidal subtype; ``tag_descriptions`` give the
terms as written.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np

from .search import conflicting
from .tags import CellTags
from .vocabulary import UnknownTerm, Vocabulary


def tag_name(term: str) -> str:
    return "_".join(term.split())


def segment_properties(tags: CellTags, dataset: str, at: datetime | None, vocabulary: Vocabulary) -> dict:
    """The precomputed ``neuroglancer_segment_properties`` document of ``dataset`` at ``at`` (None: now)."""
    index = tags.sync()
    code = index.datasets.codes.get(dataset)
    positions = np.flatnonzero(index.alive(at) & (index.dataset == code)) if code is not None else np.zeros(0, int)
    roots = tags.roots_of(dataset, index.sv[positions], at)
    pairs = np.unique(np.stack([roots, index.term[positions].astype(np.uint64)], axis=1), axis=0) \
        if len(positions) else np.zeros((0, 2), dtype=np.uint64)
    ids, starts = np.unique(pairs[:, 0], return_index=True)
    bounds = list(starts[1:]) + [len(pairs)]
    tag_index: dict[str, int] = {}
    descriptions: list[str] = []
    labels, values = [], []
    for start, stop in zip(starts.tolist(), bounds):
        terms = sorted(index.terms.names[int(t)] for t in pairs[start:stop, 1])
        label = " / ".join(terms) + (" (conflict)" if conflicting(terms, vocabulary) else "")
        labels.append(label)
        wanted = set()
        for term in terms:
            try:
                wanted.update(vocabulary.ancestors(term))
            except UnknownTerm:
                wanted.add(term)
        numbers = []
        for term in sorted(wanted):
            name = tag_name(term)
            if name not in tag_index:
                tag_index[name] = len(descriptions)
                descriptions.append(term)
            numbers.append(tag_index[name])
        values.append(sorted(numbers))
    return {
        "@type": "neuroglancer_segment_properties",
        "inline": {
            "ids": [str(int(i)) for i in ids],
            "properties": [
                {"id": "label", "type": "label", "values": labels},
                {"id": "tags", "type": "tags", "tags": list(tag_index), "tag_descriptions": descriptions,
                 "values": values},
            ],
        },
    }
