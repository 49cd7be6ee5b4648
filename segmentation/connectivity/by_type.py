"""Connectivity in the search language: ``inputs to L2/3 pyramidal`` and ``outputs of astrocyte``.

The phrase is followed by what the cell-type search takes, limited to one cell type (with the
types below it), ``dataset:`` and ``t:``: ``inputs to "L5 ET" dataset:mouse_v1 t:2026-12-01``.
The answer, per dataset with synapses, is the partners of every neuron of that type grouped by
the partners' own cell types (untyped partners and synapses onto background counted apart), as
neuPrint and FlyWire Codex group them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..celltypes.query import Query, QueryError, parse
from .celltyped import neurons_of_types, typed_neurons
from .queries import roots_at_positions, synapses_of_many

_PHRASE = re.compile(r"\s*(inputs\s+(?:to|of|onto)|outputs\s+(?:of|from|to))\s+(\S.*)", re.IGNORECASE | re.DOTALL)
UNTYPED = "(untyped)"
BACKGROUND = "(background)"


@dataclass(frozen=True)
class Phrase:
    direction: str  # "inputs" | "outputs"
    term: str
    datasets: frozenset[str]  # empty: every dataset asked
    at: datetime | None
    text: str


@dataclass
class Group:
    label: str
    neurons: int
    synapses: int


@dataclass
class DatasetAnswer:
    dataset: str
    neurons: int  # of the type asked
    synapses: int
    groups: list[Group] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "neurons": self.neurons,
            "synapses": self.synapses,
            "groups": [{"cell_type": g.label, "neurons": g.neurons, "synapses": g.synapses} for g in self.groups],
        }


def parse_phrase(text: str) -> Phrase | None:
    """The phrase in ``text``, None when the text is a plain cell-type search (QueryError when the
    phrase is there but what follows is not one cell type with ``dataset:``/``t:``)."""
    found = _PHRASE.fullmatch(text or "")
    if found is None:
        return None
    direction = "inputs" if found.group(1).lower().startswith("inputs") else "outputs"
    query: Query = parse(found.group(2))
    if len(query.groups) != 1:
        raise QueryError(f"'{found.group(1)}' takes one cell type, not an OR of several")
    terms = [c for c in query.groups[0] if c.kind == "type"]
    others = [c for c in query.groups[0] if c.kind not in ("type", "dataset") or c.negated]
    if len(terms) != 1 or others:
        raise QueryError(f"'{found.group(1)}' takes one cell type, and dataset: and t: only")
    datasets = frozenset(c.value for c in query.groups[0] if c.kind == "dataset")
    return Phrase(direction, terms[0].value, datasets, query.at, text)


def partners_by_type(synapses, tags, vocabulary, dataset: str, phrase: Phrase) -> DatasetAnswer:
    """The partners of every neuron of ``phrase.term`` in ``dataset``, grouped by their cell types."""
    graph = synapses.graphs.find(dataset)
    graph.sync()
    held = synapses.of(dataset, graph)
    at = phrase.at
    roots, _ = neurons_of_types(tags, dataset, [phrase.term], vocabulary, at)
    side = "post" if phrase.direction == "inputs" else "pre"
    pre_pos, post_pos, _ = synapses_of_many(held, graph, roots, side, at)
    partner = roots_at_positions(graph, pre_pos if side == "post" else post_pos, at)
    answer = DatasetAnswer(dataset, len(np.unique(roots)), len(partner))
    if not len(partner):
        return answer
    partners, counts = np.unique(partner, return_counts=True)
    tag_roots, terms, names = typed_neurons(tags, dataset, at)
    lo = np.searchsorted(tag_roots, partners, "left")
    hi = np.searchsorted(tag_roots, partners, "right")
    groups: dict[str, list[int]] = {}
    for root, n, a, b in zip(partners.tolist(), counts.tolist(), lo.tolist(), hi.tolist()):
        labels = {names[t] for t in terms[a:b].tolist()} or {BACKGROUND if root == 0 else UNTYPED}
        for label in labels:
            entry = groups.setdefault(label, [0, 0])
            entry[0] += 1 if root else 0
            entry[1] += n
    answer.groups = sorted(
        (Group(label, neurons, n) for label, (neurons, n) in groups.items()), key=lambda g: (-g.synapses, g.label)
    )
    return answer
