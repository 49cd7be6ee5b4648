"""Search neurons by cell type across datasets, as of any moment.

Everything runs on the in-memory tag columns (:class:`TagIndex`) and the graphs' root
arrays: a query is a few numpy masks over all tags, the matching tags' supervoxels are
mapped to roots of the moment, and Python objects are built only for the page asked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import numpy as np

from .query import Clause, Query
from .tags import CellTags, TagIndex
from .vocabulary import UnknownTerm, Vocabulary

MAX_PER_PAGE = 1000


@dataclass
class NeuronHit:
    dataset: str
    root_id: int
    terms: list[str]
    conflict: bool
    position: tuple[int, int, int]  # a tagged voxel of the neuron (its oldest tag in force)
    tag_ids: list[int]
    link: str  # path of a link that opens it: /at/<dataset>/<x>,<y>,<z>[?t=…]

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "root_id": str(self.root_id), "terms": self.terms,
                "conflict": self.conflict, "position": list(self.position), "tag_ids": self.tag_ids,
                "link": self.link}


@dataclass
class SearchResult:
    total: int
    counts: dict[str, int]
    page: int
    per_page: int
    at: datetime | None
    hits: list[NeuronHit] = field(default_factory=list)


def search(tags: CellTags, query: Query, vocabulary_of: Callable[[str], Vocabulary], datasets: list[str],
           page: int = 1, per_page: int = 50) -> SearchResult:
    """Neurons of ``datasets`` (the ones the asker may see) with tags matching ``query`` at ``query.at``."""
    index = tags.sync()
    visible = np.isin(index.dataset, index.datasets.known(datasets))
    alive = index.alive(query.at) & visible
    matched = np.zeros(len(index.ids), dtype=bool)
    for group in query.groups:
        mask = alive.copy()
        for clause in group:
            hits = _clause_mask(index, clause, mask, vocabulary_of, datasets)
            mask &= ~hits if clause.negated else hits
        matched |= mask

    per_dataset: list[tuple[str, np.ndarray]] = []  # (dataset, sorted unique roots matched)
    for name in sorted(datasets):
        code = index.datasets.codes.get(name)
        if code is None:
            continue
        positions = np.flatnonzero(matched & (index.dataset == code))
        if len(positions):
            per_dataset.append((name, np.unique(tags.roots_of(name, index.sv[positions], query.at))))
    counts = {name: len(roots) for name, roots in per_dataset}
    result = SearchResult(sum(counts.values()), counts, page, per_page, query.at)
    start = (page - 1) * per_page
    for name, roots in per_dataset:  # the page's slice of (dataset, root) in that order
        if start >= len(roots):
            start -= len(roots)
            continue
        chosen = roots[start:start + per_page - len(result.hits)]
        start = 0
        result.hits += _describe(tags, index, name, chosen, alive, query.at, vocabulary_of(name))
        if len(result.hits) >= per_page:
            break
    return result


def _clause_mask(index: TagIndex, clause: Clause, candidates: np.ndarray, vocabulary_of, datasets) -> np.ndarray:
    if clause.kind == "type":
        return np.isin(index.term, index.terms.known(_descendants(clause.value, vocabulary_of, datasets)))
    if clause.kind == "dataset":
        code = index.datasets.codes.get(clause.value)
        return index.dataset == code if code is not None else np.zeros(len(index.ids), dtype=bool)
    if clause.kind == "user":
        code = index.users.codes.get(clause.value)
        return index.user == code if code is not None else np.zeros(len(index.ids), dtype=bool)
    if clause.kind == "note":
        needle = clause.value.casefold()
        hits = np.zeros(len(index.ids), dtype=bool)
        for position in np.flatnonzero(candidates):
            hits[position] = needle in index.notes[position].casefold()
        return hits
    raise ValueError(f"unknown clause kind {clause.kind!r}")


def _descendants(term: str, vocabulary_of, datasets) -> set[str]:
    """The term and every term below it, in any of the datasets' vocabularies (one must know it)."""
    found, first_error = set(), None
    for name in sorted(set(datasets)) or [None]:
        try:
            found |= vocabulary_of(name).descendants(term)
        except UnknownTerm as error:
            first_error = first_error or error
    if not found and first_error is not None:
        raise first_error
    return found


def _describe(tags, index, dataset, roots, alive, at, vocabulary) -> list[NeuronHit]:
    """Hits for ``roots`` of ``dataset``: every tag in force on each (not only those matched)."""
    code = index.datasets.codes[dataset]
    positions = np.flatnonzero(alive & (index.dataset == code))
    tag_roots = tags.roots_of(dataset, index.sv[positions], at)
    keep = np.isin(tag_roots, roots)
    positions, tag_roots = positions[keep], tag_roots[keep]
    order = np.lexsort((index.created[positions], tag_roots))
    positions, tag_roots = positions[order], tag_roots[order]
    suffix = f"?t={at.timestamp():.6f}" if at is not None else ""
    hits = []
    for root in roots.tolist():
        key = np.uint64(root)
        lo, hi = np.searchsorted(tag_roots, key, "left"), np.searchsorted(tag_roots, key, "right")
        mine = positions[lo:hi]
        terms = sorted({index.terms.names[t] for t in index.term[mine].tolist()})
        x, y, z = (int(v) for v in index.xyz[mine[0]])
        hits.append(NeuronHit(dataset, int(root), terms, conflicting(terms, vocabulary), (x, y, z),
                              [int(i) for i in index.ids[mine]], f"/at/{dataset}/{x},{y},{z}{suffix}"))
    return hits


def conflicting(terms: list[str], vocabulary: Vocabulary) -> bool:
    """Whether a neuron's terms disagree: two of them where neither lies above the other."""
    lines = []
    for term in terms:
        try:
            lines.append(set(vocabulary.ancestors(term)))
        except UnknownTerm:  # a free term: related to nothing but itself
            lines.append({term})
    for i, a in enumerate(terms):
        for j, b in enumerate(terms):
            if i < j and a not in lines[j] and b not in lines[i]:
                return True
    return False
