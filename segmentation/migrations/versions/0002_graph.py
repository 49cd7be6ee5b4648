"""versioned supervoxel graph: state, supervoxels, edges, operation log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _dataset_fk():
    return sa.ForeignKey("datasets.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "graph_state",
        sa.Column("dataset_id", sa.Integer, _dataset_fk(), primary_key=True),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "graph_supervoxels",
        sa.Column("dataset_id", sa.Integer, _dataset_fk(), primary_key=True),
        sa.Column("sv_id", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "graph_edges",
        sa.Column("dataset_id", sa.Integer, _dataset_fk(), primary_key=True),
        sa.Column("sv_a", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sv_b", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("area", sa.Float, nullable=False),
        sa.Column("initially_active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "graph_operations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, _dataset_fk(), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("edge_changes", sa.JSON, nullable=False),
        sa.Column("old_root_ids", sa.JSON, nullable=False),
        sa.Column("new_root_ids", sa.JSON, nullable=False),
        sa.Column("target_operation_id", sa.Integer, sa.ForeignKey("graph_operations.id"), nullable=True),
        sa.UniqueConstraint("dataset_id", "seq"),
    )


def downgrade() -> None:
    for table in ("graph_operations", "graph_edges", "graph_supervoxels", "graph_state"):
        op.drop_table(table)
