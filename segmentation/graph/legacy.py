"""Graphs ingested before bases existed: their supervoxels and edges are SQL rows.

The first process to open such a graph writes its base from those rows, records it in
``graph_state.base_url`` and deletes the rows, all under the graph's write lock, so two
processes doing it at once end with one base (the loser discards its own).
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from ..models import GraphEdgeRow, GraphStateRow, GraphSupervoxelRow
from .base import GraphBase
from .bulk import read_rows
from .locking import lock_for_writing
from .store import discard_base, write_base

BOX_COLUMNS = ("x0", "y0", "z0", "x1", "y1", "z1")


def write_legacy_base(engine, database_url: str, dataset_id: int, dataset: str) -> str:
    """Write the base of a graph stored as rows; returns its URL (another process's, if it won)."""
    where = {"d": dataset_id}
    with engine.connect() as connection:
        root_base = connection.scalar(sa.select(GraphStateRow.root_base).where(GraphStateRow.dataset_id == dataset_id))
        box = {c: (f"COALESCE({c}, -1)", "i4") for c in BOX_COLUMNS}
        svs = read_rows(
            connection, {"sv": ("sv_id", "i8"), **box}, "graph_supervoxels WHERE dataset_id = :d", where, "sv_id"
        )
        edges = read_rows(
            connection,
            {"a": ("sv_a", "i8"), "b": ("sv_b", "i8"), "area": ("area", "f8"), "active": ("initially_active", "?")},
            "graph_edges WHERE dataset_id = :d",
            where,
            "sv_a, sv_b",
        )
    boxes = np.stack([svs[c] for c in BOX_COLUMNS], axis=1)
    has_boxes = len(boxes) and (boxes[:, 3] >= 0).all()
    base = GraphBase.build(
        svs["sv"].astype(np.uint64),
        edges["a"].astype(np.uint64),
        edges["b"].astype(np.uint64),
        edges["area"],
        edges["active"],
        boxes=boxes if has_boxes else None,
        root_base=int(root_base or 0),
    )
    url = write_base(base, database_url, f"dataset-{dataset_id}")
    state = GraphStateRow.__table__
    with engine.begin() as connection:
        lock_for_writing(connection, dataset_id)
        recorded = connection.scalar(sa.select(state.c.base_url).where(state.c.dataset_id == dataset_id))
        if recorded is None:
            connection.execute(sa.update(state).where(state.c.dataset_id == dataset_id).values(base_url=url))
            for table in (GraphEdgeRow, GraphSupervoxelRow):
                connection.execute(sa.delete(table).where(table.dataset_id == dataset_id))
    if recorded is not None:
        discard_base(url)
        return recorded
    return url
