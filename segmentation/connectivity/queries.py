"""Who talks to whom, at any moment: partners of a neuron and matrices between sets of neurons.

Nothing here is materialized: a synapse names two supervoxels, and the neurons it joins at
moment T are their roots at T, asked of the versioned graph. A neuron's synapses are found by
binary search over the synapses' supervoxel positions (its members); a matrix over many neurons
(every neuron of a thousand cell types) scans the synapses once instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .. import budget
from ..errors import Invalid
from .columns import Columns
from .index import DatasetSynapses, alive

SIDES = ("pre", "post")
MEMBER_PATH_ROOTS = 2_000  # up to this many neurons, find their synapses through their members
SCAN_ROWS = 1 << 21  # synapses read at a time by a matrix over many neurons


class ConnectivityError(Invalid):
    """A connectivity question that cannot be answered as asked (a 400)."""


def roots_at_positions(graph, positions: np.ndarray, at: datetime | None) -> np.ndarray:
    """Roots at ``at`` of graph positions (-1, background or unknown: root 0)."""
    positions = np.asarray(positions, dtype=np.int64)
    out = np.zeros(len(positions), dtype=np.uint64)
    known = positions >= 0
    if known.any():
        out[known] = graph.roots_at_positions(positions[known], graph.seq_at(at))
    return out


def synapses_of(ds: DatasetSynapses, graph, roots, side: str, at: datetime | None) -> Columns:
    """The synapses in force at ``at`` whose ``side`` supervoxel belongs to one of ``roots``."""
    members = np.unique(np.concatenate([graph.members(int(r)) for r in roots] or [np.zeros(0, np.int64)]))
    found = []
    for part, deleted in ds.parts():
        rows = part.touching(members, side)
        if len(rows):
            rows = rows[alive(part.columns, deleted, rows, at)]
            found.append(part.columns.take(rows))
    return Columns.concat(found)


def synapses_of_many(ds: DatasetSynapses, graph, roots, side: str, at: datetime | None):
    """(pre positions, post positions, sizes) of the synapses in force at ``at`` whose ``side``
    supervoxel belongs to one of ``roots``: through the neurons' members when they are few, else
    one pass over every synapse with each graph position marked (memory bounded by a chunk)."""
    roots = np.unique(np.asarray(roots, dtype=np.uint64))
    if len(roots) <= MEMBER_PATH_ROOTS:
        rows = synapses_of(ds, graph, roots, side, at)
        return rows.pre_pos, rows.post_pos, rows.size
    dense, every = _dense_roots(ds, graph, at)
    marked = _label_of_positions(dense, every, roots, np.zeros(len(roots), dtype=np.int64)) >= 0
    found = []
    for pre_pos, post_pos, sizes in _scan(ds, at):
        keep = marked[pre_pos if side == "pre" else post_pos]
        found.append((pre_pos[keep], post_pos[keep], sizes[keep]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(parts) for parts in zip(*found))


def check_roots(graph, roots, at: datetime | None) -> None:
    """ConnectivityError unless every one of ``roots`` is a neuron of the graph at ``at``."""
    wrong = [int(r) for r, ok in zip(roots, graph.is_latest([int(r) for r in roots], at)) if not ok]
    if wrong:
        when = "now" if at is None else f"at {at.isoformat()}"
        raise ConnectivityError(f"{wrong[:10]} {'is' if len(wrong) == 1 else 'are'} not neuron root id(s) {when}")


@dataclass
class Partners:
    """One side of a neuron's connectivity: each partner with how many synapses and their sizes."""

    roots: np.ndarray  # uint64, partners by synapse count, most first (0: synapses onto background)
    counts: np.ndarray  # int64
    size_sums: np.ndarray  # float64 (sizes that were given)
    size_counts: np.ndarray  # int64 (how many sizes were given)

    @property
    def mean_sizes(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.size_counts > 0, self.size_sums / np.maximum(self.size_counts, 1), np.nan)


def group(partner_roots: np.ndarray, sizes: np.ndarray) -> Partners:
    roots, inverse, counts = np.unique(partner_roots, return_inverse=True, return_counts=True)
    given = ~np.isnan(sizes)
    sums = np.bincount(inverse[given], weights=sizes[given].astype(np.float64), minlength=len(roots))
    given_counts = np.bincount(inverse[given], minlength=len(roots))
    order = np.lexsort((roots, -counts))
    return Partners(roots[order], counts[order], sums[order], given_counts[order])


def partners(ds: DatasetSynapses, graph, root: int, at: datetime | None) -> dict[str, Partners]:
    """{"inputs": neurons with synapses onto ``root``, "outputs": neurons it synapses onto}, at ``at``."""
    check_roots(graph, [root], at)
    outgoing = synapses_of(ds, graph, [root], "pre", at)
    incoming = synapses_of(ds, graph, [root], "post", at)
    return {
        "outputs": group(roots_at_positions(graph, outgoing.post_pos, at), outgoing.size),
        "inputs": group(roots_at_positions(graph, incoming.pre_pos, at), incoming.size),
    }


@dataclass
class Matrix:
    counts: np.ndarray  # int64 (pre label, post label)
    size_sums: np.ndarray  # float64
    size_counts: np.ndarray  # int64

    @property
    def mean_sizes(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.size_counts > 0, self.size_sums / np.maximum(self.size_counts, 1), np.nan)


def _labelled(roots: np.ndarray, label_roots: np.ndarray, label_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, label) for each (row, label) pair where the row's root carries the label;
    ``label_roots`` sorted, ``label_codes`` aligned (a root may carry several labels)."""
    lo = np.searchsorted(label_roots, roots, "left")
    hi = np.searchsorted(label_roots, roots, "right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(roots)), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return rows, label_codes[starts + np.arange(counts.sum())]


def matrix(
    ds: DatasetSynapses,
    graph,
    pre: tuple[np.ndarray, np.ndarray],
    post: tuple[np.ndarray, np.ndarray],
    n_pre: int,
    n_post: int,
    at: datetime | None,
) -> Matrix:
    """Synapses from the neurons of each pre label to those of each post label, at ``at``.

    ``pre`` and ``post`` are (roots, label per root) pairs: a neuron may carry several labels (two
    cell types) and then counts for each. Few neurons: their synapses are found through their
    members; many (every neuron of many types): one pass over all synapses in force.
    """
    pre_roots, pre_codes = _sorted_pairs(*pre)
    post_roots, post_codes = _sorted_pairs(*post)
    counts = np.zeros(n_pre * n_post, dtype=np.int64)
    sums = np.zeros(n_pre * n_post, dtype=np.float64)
    given = np.zeros(n_pre * n_post, dtype=np.int64)

    def add(pre_pos, post_pos, sizes):
        a_rows, a_codes = _labelled(roots_at_positions(graph, pre_pos, at), pre_roots, pre_codes)
        if not len(a_rows):
            return
        b_rows, b_codes = _labelled(roots_at_positions(graph, post_pos[a_rows], at), post_roots, post_codes)
        if not len(b_rows):
            return
        cells = a_codes[b_rows].astype(np.int64) * n_post + b_codes
        picked = sizes[a_rows][b_rows].astype(np.float64)
        has = ~np.isnan(picked)
        counts[:] += np.bincount(cells, minlength=len(counts))
        sums[:] += np.bincount(cells[has], weights=picked[has], minlength=len(counts))
        given[:] += np.bincount(cells[has], minlength=len(counts))

    def add_labelled(a, b, sizes):
        """Synapses whose pre and post labels are known already (-1: none)."""
        ok = (a >= 0) & (b >= 0)
        cells = a[ok].astype(np.int64) * n_post + b[ok]
        picked = sizes[ok].astype(np.float64)
        found = np.bincount(cells, minlength=len(counts))
        counts[:] += found
        has = ~np.isnan(picked)
        if has.all():  # every size given (the usual table): no second count
            sums[:] += np.bincount(cells, weights=picked, minlength=len(counts))
            given[:] += found
        else:
            sums[:] += np.bincount(cells[has], weights=picked[has], minlength=len(counts))
            given[:] += np.bincount(cells[has], minlength=len(counts))

    distinct_pre = 1 + int((pre_roots[1:] != pre_roots[:-1]).sum()) if len(pre_roots) else 0  # sorted
    if distinct_pre <= MEMBER_PATH_ROOTS:
        rows = synapses_of(ds, graph, np.unique(pre_roots), "pre", at)
        add(rows.pre_pos, rows.post_pos, rows.size)
    else:
        # a label per graph position (each neuron's first), so most synapses cost two gathers; the
        # few whose neuron carries several labels (two types, after a merge) are counted pair by
        # pair. The roots of every position are worked out once per graph state.
        dense, roots = _dense_roots(ds, graph, at)
        pre_label = _label_of_positions(dense, roots, pre_roots, pre_codes)
        post_label = _label_of_positions(dense, roots, post_roots, post_codes)
        several = _label_of_positions(dense, roots, *_several(pre_roots)) >= 0
        several |= _label_of_positions(dense, roots, *_several(post_roots)) >= 0  # pre or post side
        for pre_pos, post_pos, sizes in _scan(ds, at):
            paired = several[pre_pos] | several[post_pos]
            single = ~paired
            add_labelled(pre_label[pre_pos[single]], post_label[post_pos[single]], sizes[single])
            if paired.any():
                add(pre_pos[paired], post_pos[paired], sizes[paired])
    shape = (n_pre, n_post)
    return Matrix(counts.reshape(shape), sums.reshape(shape), given.reshape(shape))


def _scan(ds: DatasetSynapses, at: datetime | None):
    """(pre positions, post positions, sizes) of every synapse in force at ``at``, a chunk of
    :data:`SCAN_ROWS` rows at a time (memory bounded by the chunk; the time budget checked each)."""
    for part, deleted in ds.parts():
        for start in range(0, len(part.columns), SCAN_ROWS):
            budget.check()
            yield _in_force(part, deleted, at, slice(start, start + SCAN_ROWS))


def _in_force(part, deleted, at: datetime | None, window: slice):
    """(pre positions, post positions, sizes) of the rows of ``window`` in force at ``at``; read
    straight from the columns when no row was ever removed and "now" is asked."""
    columns = part.columns
    if deleted is None and at is None and part.none_removed():
        return columns.pre_pos[window], columns.post_pos[window], columns.size[window]
    keep = alive(columns, None if deleted is None else deleted[window], None, at, window)
    return columns.pre_pos[window][keep], columns.post_pos[window][keep], columns.size[window][keep]


def _several(roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the roots among sorted ``roots`` that appear more than once, a code for each)."""
    repeated = np.unique(roots[1:][roots[1:] == roots[:-1]])
    return repeated, np.zeros(len(repeated), dtype=np.int64)


def _dense_roots(ds: DatasetSynapses, graph, at: datetime | None) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``roots`` of each graph position's root, the distinct roots sorted) at ``at``;
    kept per graph state while the synapses do not change (a few bytes per supervoxel)."""
    key = ("dense roots", graph.created_at, graph.seq if at is None else graph.seq_at(at))
    found = ds.derived.get(key)
    if found is None:
        every = graph.roots_at_positions(np.arange(len(graph.supervoxel_ids), dtype=np.int64), graph.seq_at(at))
        roots, dense = np.unique(every, return_inverse=True)
        found = (dense.astype(np.int32 if len(roots) < 2**31 else np.int64), roots)
        for old in [k for k in ds.derived if k[0] == "dense roots"][:-1]:  # the newest two states kept
            del ds.derived[old]
        ds.derived[key] = found
    return found


def _label_of_positions(dense: np.ndarray, roots: np.ndarray, label_roots: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each graph position's label (-1: none), with one more -1 at the end for position -1 (background)."""
    at = np.searchsorted(label_roots, roots)
    at = np.minimum(at, max(len(label_roots) - 1, 0))
    labelled = len(label_roots) > 0
    per_root = np.where(labelled & (label_roots[at] == roots), codes[at], -1) if labelled else np.full(len(roots), -1)
    return np.concatenate([per_root[dense], [-1]]).astype(np.int32)


def _sorted_pairs(roots, codes) -> tuple[np.ndarray, np.ndarray]:
    roots = np.asarray(roots, dtype=np.uint64)
    codes = np.asarray(codes, dtype=np.int64)
    if len(roots) > 1:
        same = roots[1:] == roots[:-1]
        in_order = bool((roots[1:] >= roots[:-1]).all() and (codes[1:][same] > codes[:-1][same]).all())
        if in_order:  # as neurons_of_types gives them: nothing to sort or drop
            return roots, codes
    order = np.lexsort((codes, roots))
    roots, codes = roots[order], codes[order]
    if len(roots):  # the same (root, label) twice counts once
        keep = np.concatenate([[True], (roots[1:] != roots[:-1]) | (codes[1:] != codes[:-1])])
        roots, codes = roots[keep], codes[keep]
    return roots, codes
