"""graphs read their supervoxels and adjacency from a memory-mapped base

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

* ``graph_state.base_url``: where the graph's immutable base lives (a directory of ``.npy``
  files, see ``segmentation.graph.base``). Graphs ingested before have none: the first process
  that opens one writes its base from ``graph_supervoxels`` and ``graph_edges`` and records it
  there (``Graph`` does it, under the graph's lock), then those rows are deleted. New graphs
  write no rows to those tables.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("graph_state") as batch:
        batch.add_column(sa.Column("base_url", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("graph_state") as batch:
        batch.drop_column("base_url")
