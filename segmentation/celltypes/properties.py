"""Neuroglancer ``segment_properties`` for a moment: each tagged neuron's label and cell-type tags.

Served beside the live segmentation, so the stock viewer's segment list can be filtered by
type (``#L2/3_pyramidal``; tags cannot hold spaces there). A neuron's tags include its terms'
ancestors, so ``#pyramidal`` finds every pyramidal subtype; ``tag_descriptions`` give the
terms as written.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from .search import conflicting, lineage
from .tags import CellTags
from .vocabulary import Vocabulary


def tag_name(term: str) -> str:
    return "_".join(term.split())


def segment_properties(tags: CellTags, dataset: str, at: datetime | None, vocabulary: Vocabulary) -> dict:
    """The precomputed ``neuroglancer_segment_properties`` document of ``dataset`` at ``at`` (None: now).

    Neurons share few distinct sets of terms, so labels and tag lists are worked out once per set
    (the set as a bit mask over term codes) and handed to every neuron that has it.
    """
    index = tags.sync()
    code = index.datasets.codes.get(dataset)
    positions = index.positions_of(code) if code is not None else np.zeros(0, dtype=np.int64)
    positions = positions[index.alive_among(positions, at)]
    roots = tags.roots_of(dataset, index.sv[positions], at)
    terms = index.term[positions].astype(np.uint64)
    order = np.lexsort((terms, roots))
    roots, terms = roots[order], terms[order]
    ids, starts = np.unique(roots, return_index=True)
    if len(index.terms.names) <= 64:
        masks = np.bitwise_or.reduceat(np.left_shift(np.uint64(1), terms), starts) if len(starts) else starts
        combos, inverse = np.unique(masks, return_inverse=True)
        present = np.unique(terms).tolist()
        sets = [[index.terms.names[c] for c in present if int(mask) >> c & 1] for mask in combos.tolist()]
    else:  # many free terms: one set per neuron
        bounds = list(starts[1:]) + [len(terms)]
        sets = [sorted({index.terms.names[int(t)] for t in terms[a:b]}) for a, b in zip(starts, bounds)]
        inverse = np.arange(len(sets))
    ancestry = {name: lineage(name, vocabulary) for name in index.terms.names}
    tag_index: dict[str, int] = {}
    descriptions: list[str] = []
    set_labels, set_tags = [], []
    for names in sets:
        names = sorted(names)
        set_labels.append(" / ".join(names) + (" (conflict)" if conflicting(names, vocabulary, ancestry) else ""))
        wanted = set().union(*(ancestry[term] for term in names))
        numbers = []
        for term in sorted(wanted):
            name = tag_name(term)
            if name not in tag_index:
                tag_index[name] = len(descriptions)
                descriptions.append(term)
            numbers.append(tag_index[name])
        set_tags.append(sorted(numbers))
    inverse = inverse.tolist()
    return {
        "@type": "neuroglancer_segment_properties",
        "inline": {
            "ids": [str(i) for i in ids.tolist()],
            "properties": [
                {"id": "label", "type": "label", "values": [set_labels[k] for k in inverse]},
                {
                    "id": "tags",
                    "type": "tags",
                    "tags": list(tag_index),
                    "tag_descriptions": descriptions,
                    "values": [set_tags[k] for k in inverse],
                },
            ],
        },
    }
