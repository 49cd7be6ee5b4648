"""cell-type tags (history kept: retracted, never deleted)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cell_tags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sv_id", sa.BigInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=False),
        sa.Column("y", sa.Integer, nullable=False),
        sa.Column("z", sa.Integer, nullable=False),
        sa.Column("term", sa.String(256), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retracted_by", sa.String(128), nullable=True),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cell_tags_dataset_id", "cell_tags", ["dataset_id"])
    op.create_index("ix_cell_tags_change_seq", "cell_tags", ["change_seq"])
    op.create_table(
        "cell_tag_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cell_tag_state")
    op.drop_index("ix_cell_tags_change_seq", "cell_tags")
    op.drop_index("ix_cell_tags_dataset_id", "cell_tags")
    op.drop_table("cell_tags")
