"""a user's own list of links and named aliases that can be re-pointed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

* ``user_links``: the states a user stored (or stored again), with the title they gave each.
* ``aliases`` / ``alias_targets``: a short name owned by one user (``/l/<name>``) and every state
  it has pointed at, in order; the newest is its target.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_links",
        sa.Column("user", sa.String(128), primary_key=True),
        sa.Column("state_id", STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_user_links_created_at", "user_links", ["created_at"])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_aliases_owner", "aliases", ["owner"])
    op.create_table(
        "alias_targets",
        sa.Column("alias_id", sa.Integer, sa.ForeignKey("aliases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state_id", STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pointed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alias_targets")
    op.drop_index("ix_aliases_owner", "aliases")
    op.drop_table("aliases")
    op.drop_index("ix_user_links_created_at", "user_links")
    op.drop_table("user_links")
