"""datasets and their layers

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("license", sa.Text, nullable=False),
        sa.Column("citation", sa.Text, nullable=False),
        sa.Column("voxel_resolution", sa.JSON, nullable=False),
        sa.Column("volume_size", sa.JSON, nullable=False),
        sa.Column("voxel_offset", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "layers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.UniqueConstraint("dataset_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("layers")
    op.drop_table("datasets")
