"""stored Neuroglancer states and their anchors (share links)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "states",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("short_id", sa.String(16), nullable=False, unique=True),
        sa.Column("content_key", sa.String(64), nullable=False, unique=True),
        sa.Column("codec", sa.SmallInteger, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.Column("raw_size", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False, server_default="anonymous"),
        sa.Column("dataset", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("views", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "state_anchors",
        sa.Column("state_id", sa.Integer, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("layer", sa.String(256), primary_key=True),
        sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("sv_id", sa.BigInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=True),
        sa.Column("y", sa.Integer, nullable=True),
        sa.Column("z", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("state_anchors")
    op.drop_table("states")
