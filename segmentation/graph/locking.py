"""The graph's write lock: edits, compaction and conversions of one dataset's graph go one at a time."""

from __future__ import annotations

import sqlalchemy as sa

from ..models import GraphStateRow


def lock_for_writing(connection, dataset_id: int) -> None:
    """Take the graph's write lock for this transaction: PostgreSQL locks its ``graph_state`` row,
    SQLite the database (a no-op update is a write)."""
    state = GraphStateRow.__table__
    connection.execute(sa.update(state).where(state.c.dataset_id == dataset_id).values(last_seq=state.c.last_seq))
