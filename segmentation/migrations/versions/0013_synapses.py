"""synapse tables: pre and post points bound to supervoxels, following proofreading

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

* ``synapses``: one row per synapse of a dataset, keyed by (dataset, its id); times in Unix
  seconds; removal sets ``deleted_at`` (history kept); ``change_seq`` orders writes.
* ``synapse_state``: the last change number handed out (its row lock serializes writers).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synapses",
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("pre_sv", sa.BigInteger, nullable=False),
        sa.Column("post_sv", sa.BigInteger, nullable=False),
        *(sa.Column(f"{end}_{axis}", sa.Integer, nullable=False) for end in ("pre", "post") for axis in "xyz"),
        *(sa.Column(f"ctr_{axis}", sa.Integer, nullable=True) for axis in "xyz"),
        sa.Column("size", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_synapses_dataset_change", "synapses", ["dataset_id", "change_seq"])
    op.create_table(
        "synapse_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("synapse_state")
    op.drop_index("ix_synapses_dataset_change", "synapses")
    op.drop_table("synapses")
