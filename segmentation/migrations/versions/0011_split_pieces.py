"""an operation keeps the pieces its split made, so replaying it needs no graph search

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

* ``graph_operations.pieces``: every component the operation made but the largest, as
  delta-encoded, zlib-compressed supervoxel ids (``segmentation.graph.pieces``); NULL for merges,
  for operations written before, and for pieces too large to keep (those are recomputed).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("graph_operations") as batch:
        batch.add_column(sa.Column("pieces", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("graph_operations") as batch:
        batch.drop_column("pieces")
