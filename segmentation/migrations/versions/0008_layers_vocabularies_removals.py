"""which layers hold the graph's supervoxels; a dataset's vocabulary; removed datasets' tags

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

* ``layers.supervoxels``: the layer's labels are the graph's supervoxels (its ``segmentation``
  layer, or another layout of it such as a sharded copy), so it is served through the graph
  (root ids of a moment). Other segmentation layers (ground truth, bodies) are served as stored.
  Existing segmentation layers are all marked, which keeps how they were served.
* ``datasets.vocabulary``: the cell-type vocabulary a dataset starts from (None: the default,
  mouse cortex).
* ``cell_tag_purges``: a removed dataset's tags are deleted with the next change number, and
  every process drops them from its tag index when it reaches that number.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("layers") as batch:
        batch.add_column(sa.Column("supervoxels", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute("UPDATE layers SET supervoxels = TRUE WHERE kind = 'segmentation'")
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("vocabulary", sa.String(64), nullable=True))
    op.create_table(
        "cell_tag_purges",
        sa.Column("change_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("dataset", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cell_tag_purges")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("vocabulary")
    with op.batch_alter_table("layers") as batch:
        batch.drop_column("supervoxels")
