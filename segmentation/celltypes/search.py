"""Search neurons by cell type across datasets, as of any moment.

Everything runs on the in-memory tag columns (:class:`TagIndex`) and the graphs' root
arrays: a query is a few numpy masks over all tags, the matching tags' supervoxels are
mapped to roots of the moment, and Python objects are built only for the page asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from .. import budget
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
    supervoxels: int = 0  # the neuron's size
    tags: list[dict] = field(default_factory=list)  # each tag in force: id, term, user, created (ISO 8601)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "root_id": str(self.root_id),
            "terms": self.terms,
            "conflict": self.conflict,
            "position": list(self.position),
            "tag_ids": self.tag_ids,
            "link": self.link,
            "supervoxels": self.supervoxels,
            "tags": self.tags,
        }


@dataclass
class SearchResult:
    total: int
    counts: dict[str, int]
    page: int
    per_page: int
    at: datetime | None
    hits: list[NeuronHit] = field(default_factory=list)
    type_counts: dict[str, int] = field(default_factory=dict)  # matched neurons per cell type they carry


def search(
    tags: CellTags,
    query: Query,
    vocabulary_of: Callable[[str], Vocabulary],
    datasets: list[str],
    page: int = 1,
    per_page: int = 50,
) -> SearchResult:
    """Neurons of ``datasets`` (the ones the asker may see) with tags matching ``query`` at ``query.at``."""
    index = tags.sync()
    tables = {
        clause: _term_table(index, clause.value, vocabulary_of, datasets)
        for group in query.groups
        for clause in group
        if clause.kind == "type"
    }
    per_dataset: list[tuple[str, np.ndarray]] = []  # (dataset, sorted unique roots matched)
    by_term = np.zeros(len(index.terms.names), dtype=np.int64)
    for name in sorted(datasets):
        code = index.datasets.codes.get(name)
        if code is None:
            continue
        positions = index.positions_of(code)
        alive = index.alive_among(positions, query.at)
        matched = np.zeros(len(positions), dtype=bool)
        for group in query.groups:
            budget.check()
            mask = alive.copy()
            for clause in group:
                hits = _clause_hits(index, clause, positions, mask, code, tables)
                mask &= ~hits if clause.negated else hits
            matched |= mask
        if matched.any():
            roots, neuron_of = neurons_of(tags, index, name, query.at)
            hit = np.zeros(len(roots), dtype=bool)
            hit[neuron_of[matched]] = True
            per_dataset.append((name, roots[hit]))
            by_term += _neurons_per_term(index, positions, alive, neuron_of, hit)
    counts = {name: len(roots) for name, roots in per_dataset}
    result = SearchResult(sum(counts.values()), counts, page, per_page, query.at)
    result.type_counts = {
        index.terms.names[t]: int(n)
        for t, n in sorted(enumerate(by_term.tolist()), key=lambda tn: (-tn[1], tn[0]))
        if n
    }
    start = (page - 1) * per_page
    for name, roots in per_dataset:  # the page's slice of (dataset, root) in that order
        if start >= len(roots):
            start -= len(roots)
            continue
        chosen = roots[start : start + per_page - len(result.hits)]
        start = 0
        result.hits += _describe(tags, index, name, chosen, query.at, vocabulary_of(name))
        if len(result.hits) >= per_page:
            break
    return result


def _neurons_per_term(index: TagIndex, positions, alive, neuron_of, hit) -> np.ndarray:
    """For each term, how many of the matched neurons (``hit``, over the dataset's roots) carry a tag
    of it in force (``alive``): the facet counts of a search, over every result, not only a page."""
    chosen = alive & hit[neuron_of]
    terms = index.term[positions[chosen]].astype(np.int64)
    pairs = np.unique(neuron_of[chosen].astype(np.int64) * max(1, len(index.terms.names)) + terms)
    return np.bincount(pairs % max(1, len(index.terms.names)), minlength=len(index.terms.names))


def neurons_of(tags: CellTags, index: TagIndex, dataset: str, at) -> tuple[np.ndarray, np.ndarray]:
    """(sorted roots holding the dataset's tags at ``at``, each tag's position in them), aligned with
    ``index.positions_of``. Cached per graph state: a query then marks neurons without sorting.
    """
    graph = tags.graphs.find(dataset)
    if graph is not None:
        graph.sync()
    # a graph is known by when it was ingested, and its state by an operation number: a replaced
    # graph counts its operations from 0 again, so the number alone would name the old graph's answer
    version = None if graph is None else (graph.created_at, graph.seq if at is None else graph.seq_at(at))
    key = ("neurons", dataset, version)
    cached = index.derived(key)
    if cached is None:
        positions = index.positions_of(index.datasets.codes[dataset])
        roots = tags.roots_of(dataset, index.sv[positions], at)
        cached = index.remember(key, np.unique(roots, return_inverse=True))
    return cached


def _term_table(index: TagIndex, term: str, vocabulary_of, datasets) -> np.ndarray:
    """A lookup table over term codes: True for the term and everything below it."""
    table = np.zeros(len(index.terms.names) + 1, dtype=bool)
    table[index.terms.known(_descendants(term, vocabulary_of, datasets))] = True
    return table


def _clause_hits(
    index: TagIndex, clause: Clause, positions: np.ndarray, candidates: np.ndarray, dataset_code: int, tables: dict
) -> np.ndarray:
    """Mask over ``positions`` (one dataset's tags) of those the clause holds for."""
    if clause.kind == "type":
        return tables[clause][index.term[positions]]
    if clause.kind == "dataset":
        return np.full(len(positions), index.datasets.codes.get(clause.value) == dataset_code)
    if clause.kind == "user":
        code = index.users.codes.get(clause.value)
        return index.user[positions] == code if code is not None else np.zeros(len(positions), dtype=bool)
    if clause.kind == "note":
        needle = clause.value.casefold()
        hits = np.zeros(len(positions), dtype=bool)
        for n, k in enumerate(np.flatnonzero(candidates)):
            if n % 4096 == 0:
                budget.check()
            hits[k] = needle in index.notes[positions[k]].casefold()
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


def _describe(tags: CellTags, index: TagIndex, dataset: str, roots: np.ndarray, at, vocabulary) -> list[NeuronHit]:
    """Hits for ``roots`` of ``dataset``: every tag in force on each (not only those matched).

    A root's tags are found from its supervoxels (roots never change), not by mapping every tag
    of the dataset to its root.
    """
    svs, positions = index.by_supervoxel(index.datasets.codes[dataset])
    graph = tags.graphs.find(dataset)
    caught_up = graph.caught_up() if graph is not None else contextlib.nullcontext()
    suffix = f"?t={at.timestamp():.6f}" if at is not None else ""
    hits = []
    with caught_up:  # one catch-up with the log: the roots above came from this state of the graph
        for root in roots.tolist():
            leaves = graph.leaves(root) if graph is not None else np.array([root], dtype=np.uint64)
            lo, hi = np.searchsorted(svs, leaves, "left"), np.searchsorted(svs, leaves, "right")
            counts = hi - lo  # tags per supervoxel: gather every range [lo, hi) at once
            mine = positions[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))]
            mine = mine[index.alive_among(mine, at)]
            mine = mine[np.argsort(index.created[mine], kind="stable")]
            terms = sorted({index.terms.names[t] for t in index.term[mine].tolist()})
            x, y, z = (int(v) for v in index.xyz[mine[0]])
            described = [
                {
                    "id": int(index.ids[p]),
                    "term": index.terms.names[int(index.term[p])],
                    "user": index.users.names[int(index.user[p])],
                    "created": datetime.fromtimestamp(float(index.created[p]), UTC).isoformat(),
                }
                for p in mine.tolist()
            ]
            hits.append(
                NeuronHit(
                    dataset,
                    int(root),
                    terms,
                    conflicting(terms, vocabulary),
                    (x, y, z),
                    [int(i) for i in index.ids[mine]],
                    f"/at/{dataset}/{x},{y},{z}{suffix}",
                    supervoxels=len(leaves),
                    tags=described,
                )
            )
    return hits


def conflicting(terms: list[str], vocabulary: Vocabulary, ancestry: dict[str, set[str]] | None = None) -> bool:
    """Whether a neuron's terms disagree: two of them where neither lies above the other.

    ``ancestry`` (term → itself and its ancestors) saves asking the vocabulary again for each neuron.
    """
    lines = [ancestry[t] if ancestry and t in ancestry else lineage(t, vocabulary) for t in terms]
    for i, a in enumerate(terms):
        for j, b in enumerate(terms):
            if i < j and a not in lines[j] and b not in lines[i]:
                return True
    return False


def lineage(term: str, vocabulary: Vocabulary) -> set[str]:
    """The term and everything above it (a free term: itself only)."""
    try:
        return set(vocabulary.ancestors(term))
    except UnknownTerm:
        return {term}


def tagged_per_type(tags: CellTags, dataset: str) -> tuple[int, dict[str, int]]:
    """(how many neurons of ``dataset`` carry a tag in force now, how many per type, most first):
    a dataset page's counts, from the same index and cached neuron table as a search."""
    index = tags.sync()
    code = index.datasets.codes.get(dataset)
    if code is None:
        return 0, {}
    positions = index.positions_of(code)
    alive = index.alive_among(positions, None)
    if not alive.any():
        return 0, {}
    roots, neuron_of = neurons_of(tags, index, dataset, None)
    hit = np.ones(len(roots), dtype=bool)
    per_term = _neurons_per_term(index, positions, alive, neuron_of, hit)
    tagged = len(np.unique(neuron_of[alive]))
    ordered = sorted(enumerate(per_term.tolist()), key=lambda tn: (-tn[1], tn[0]))
    return tagged, {index.terms.names[t]: int(n) for t, n in ordered if n}
