"""The synapse table as CAVE's materialization engine serves it (schema ``synapse``).

caveclient's ``synapse_query`` is ``query_table(synapse_table, filter_in_dict={"pre_pt_root_id":
…})``; such a query is answered from the named neurons' synapses only (found through their
supervoxels), never by working out the roots of every synapse of the dataset. A query without
root filters reads every synapse in force, then pages (CAVE's row limit applies).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from .. import budget
from ..celltypes.materialize import Query, TableSpec
from .columns import MISSING_XYZ, Columns
from .index import DatasetSynapses, alive
from .queries import roots_at_positions, synapses_of

TABLE = "synapses"
COLUMNS = (
    "id",
    "created",
    "valid",
    "pre_pt_position",
    "pre_pt_supervoxel_id",
    "pre_pt_root_id",
    "post_pt_position",
    "post_pt_supervoxel_id",
    "post_pt_root_id",
    "ctr_pt_position",
    "size",
)
SPEC = TableSpec(
    name=TABLE,
    schema="synapse",
    columns=COLUMNS,
    int_columns=("id", "pre_pt_supervoxel_id", "pre_pt_root_id", "post_pt_supervoxel_id", "post_pt_root_id"),
    float_columns=("size",),
    positions=("pre_pt_position", "post_pt_position", "ctr_pt_position"),
)
DESCRIPTION = (
    "Synapses of {dataset}: pre and post points bound to the supervoxels under them, so "
    "pre_pt_root_id and post_pt_root_id follow merges and splits. Positions in voxels; size as imported."
)


CHUNK_ROWS = 1 << 20  # rows whose roots are worked out at a time by a query without root filters


def _named_roots(query: Query) -> dict[str, set[int]]:
    named: dict[str, set[int]] = {}
    for op, column, value in query.filters:
        if column in ("pre_pt_root_id", "post_pt_root_id") and op in ("equal", "in"):
            roots = {value} if op == "equal" else set(value)
            side = column.split("_", 1)[0]
            named[side] = roots if side not in named else named[side] & roots
    return named


def candidate_rows(ds: DatasetSynapses, graph, query: Query, rows_at: datetime | None) -> Columns:
    """The rows in force at ``rows_at`` that the query's root filters allow (all without any):
    a filter naming pre or post roots selects those neurons' synapses by their supervoxels."""
    named = _named_roots(query)
    if named:
        side = min(named, key=lambda s: len(named[s]))  # the side naming fewer neurons
        roots = [r for r in named[side] if r > 0 and graph.is_root(r)]
        return synapses_of(ds, graph, roots, side, rows_at) if roots else Columns.empty()
    return rows_in_force(ds, rows_at)


def rows_in_force(ds: DatasetSynapses, at: datetime | None) -> Columns:
    """Every synapse in force at ``at`` (an export: the caller bounds how many)."""
    found = []
    for part, deleted in ds.parts():
        keep = np.flatnonzero(alive(part.columns, deleted, None, at))
        found.append(part.columns.take(keep))
    return Columns.concat(found)


def _matching_chunks(ds: DatasetSynapses, graph, query: Query, rows_at, roots_at):
    """The table's columns of matching rows, a chunk of :data:`CHUNK_ROWS` rows read at a time (a
    random sample drawn from the rows in force first, as CAVE samples the table)."""
    from ..celltypes.materialize import matching

    for part, deleted in ds.parts():
        rows = np.flatnonzero(alive(part.columns, deleted, None, rows_at))
        if query.random_sample is not None and query.random_sample < len(rows):
            rows = np.sort(np.random.default_rng().choice(rows, size=query.random_sample, replace=False))
        for start in range(0, len(rows), CHUNK_ROWS):
            budget.check()
            columns = table_columns(part.columns.take(rows[start : start + CHUNK_ROWS]), graph, roots_at)
            hit = matching(columns, query)
            if hit.any():
                yield {name: data[hit] for name, data in columns.items()}


def query_columns(
    ds: DatasetSynapses, graph, query: Query, rows_at: datetime | None, roots_at: datetime | None
) -> dict:
    """The table's columns of the rows the query can answer: a query naming neurons reads their
    synapses only; any other reads the table a chunk at a time (roots worked out per chunk, the
    filters applied) and stops once ``offset + limit`` rows matched, so neither memory nor work
    grows with the table beyond one chunk."""
    if _named_roots(query):
        return table_columns(candidate_rows(ds, graph, query, rows_at), graph, roots_at)
    wanted, chunks, matched = query.offset + query.limit, [], 0
    for chunk in _matching_chunks(ds, graph, query, rows_at, roots_at):
        chunks.append(chunk)
        matched += len(chunk["id"])
        if matched >= wanted:
            break
    if not chunks:
        return table_columns(Columns.empty(), graph, roots_at)
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def query_count(ds: DatasetSynapses, graph, query: Query, rows_at: datetime | None, roots_at: datetime | None) -> int:
    """How many rows match (CAVE's ``count=true``), counted a chunk at a time."""
    from ..celltypes.materialize import matching

    if _named_roots(query):
        columns = table_columns(candidate_rows(ds, graph, query, rows_at), graph, roots_at)
        return int(matching(columns, query).sum())
    return sum(len(chunk["id"]) for chunk in _matching_chunks(ds, graph, query, rows_at, roots_at))


def table_columns(rows: Columns, graph, roots_at: datetime | None) -> dict:
    """The rows as the table's columns, roots of ``roots_at``, ordered by id."""
    order = np.argsort(rows.ids, kind="stable")
    rows = rows.take(order)
    ctr = rows.ctr_xyz.astype(np.float64)
    ctr[rows.ctr_xyz[:, 0] == MISSING_XYZ] = np.nan
    return {
        "id": rows.ids.astype(np.int64),
        "created": rows.created.astype(np.float64),
        "valid": np.ones(len(rows), dtype=bool),
        "pre_pt_position": rows.pre_xyz.astype(np.int64),
        "pre_pt_supervoxel_id": rows.pre_sv.astype(np.int64),
        "pre_pt_root_id": roots_at_positions(graph, rows.pre_pos, roots_at).astype(np.int64),
        "post_pt_position": rows.post_xyz.astype(np.int64),
        "post_pt_supervoxel_id": rows.post_sv.astype(np.int64),
        "post_pt_root_id": roots_at_positions(graph, rows.post_pos, roots_at).astype(np.int64),
        "ctr_pt_position": ctr,
        "size": rows.size.astype(np.float64),
    }
