"""supervoxel bounding boxes, for leaves within bounds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("x0", "y0", "z0", "x1", "y1", "z1")


def upgrade() -> None:
    with op.batch_alter_table("graph_supervoxels") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("graph_supervoxels") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
