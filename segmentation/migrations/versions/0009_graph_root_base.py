"""a re-ingested graph's root ids count on from its predecessor's

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

* ``graph_state.root_base``: the graph's root ids are ``root_base + 1`` and up. ``ingest-graph
  --replace`` sets it above every root id the replaced graph gave, so an old root id (in a link,
  a notebook or a cached mesh manifest) never names a different neuron. Existing graphs: 0.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("graph_state") as batch:
        batch.add_column(sa.Column("root_base", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("graph_state") as batch:
        batch.drop_column("root_base")
