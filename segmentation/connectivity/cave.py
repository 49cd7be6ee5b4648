"""The synapse table as CAVE's materialization engine serves it (schema ``synapse``).

caveclient's ``synapse_query`` is ``query_table(synapse_table, filter_in_dict={"pre_pt_root_id":
…})``; such a query is answered from the named neurons' synapses only (found through their
supervoxels), never by working out the roots of every synapse of the dataset. A query without
root filters reads every synapse in force, then pages (CAVE's row limit applies).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

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


def candidate_rows(ds: DatasetSynapses, graph, query: Query, rows_at: datetime | None) -> Columns:
    """The rows in force at ``rows_at`` that the query's root filters allow (all without any):
    a filter naming pre or post roots selects those neurons' synapses by their supervoxels."""
    named = {}
    for op, column, value in query.filters:
        if column in ("pre_pt_root_id", "post_pt_root_id") and op in ("equal", "in"):
            roots = [value] if op == "equal" else list(value)
            side = column.split("_", 1)[0]
            named[side] = set(roots) if side not in named else named[side] & set(roots)
    if named:
        side = min(named, key=lambda s: len(named[s]))  # the side naming fewer neurons
        roots = [r for r in named[side] if r > 0 and graph.is_root(r)]
        return synapses_of(ds, graph, roots, side, rows_at) if roots else Columns.empty()
    found = []
    for part, deleted in ds.parts():
        keep = np.flatnonzero(alive(part.columns, deleted, None, rows_at))
        found.append(part.columns.take(keep))
    return Columns.concat(found)


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
