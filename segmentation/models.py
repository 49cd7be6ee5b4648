"""SQLAlchemy models: the source of truth for everything axonlink stores."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MAX_ROW_ID = 2**31 - 1  # integer primary keys are 32-bit: larger ids name nothing
# State ids are wider: new states get a random id in [MIN_RANDOM_STATE_ID, MAX_STATE_ID] (exact in
# JavaScript, not enumerable, the size CAVE's state ids have); states stored before migration 0007
# keep their small sequential ids.
MIN_RANDOM_STATE_ID = 2**40
MAX_STATE_ID = 2**53 - 1
# BIGINT on PostgreSQL; SQLite's INTEGER PRIMARY KEY is 64-bit already (and must stay INTEGER to be the rowid)
STATE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    license: Mapped[str] = mapped_column(sa.Text, default="")
    citation: Mapped[str] = mapped_column(sa.Text, default="")
    voxel_resolution: Mapped[list] = mapped_column(sa.JSON)
    volume_size: Mapped[list] = mapped_column(sa.JSON)
    voxel_offset: Mapped[list] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # public: anyone may read it; private: only users granted a role see that it exists
    public: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # the vocabulary its cell types start from (None: the default, mouse cortex)
    vocabulary: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)

    layers: Mapped[list[LayerRow]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="LayerRow.id"
    )


class LayerRow(Base):
    __tablename__ = "layers"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16))  # "image" | "segmentation"
    url: Mapped[str] = mapped_column(sa.Text)
    # its labels are the graph's supervoxels (served through the graph); else served as stored
    supervoxels: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())

    dataset: Mapped[DatasetRow] = relationship(back_populates="layers")


class GraphStateRow(Base):
    """One row per dataset with a graph; its row lock serializes edits across processes."""

    __tablename__ = "graph_state"

    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # root ids of this graph count from root_base + 1 (above every id an earlier graph of the dataset gave)
    root_base: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # the graph's immutable base (segmentation.graph.base), e.g. file:///…/graphs/dataset-3-0-…;
    # None only for a graph ingested before bases existed (converted when first opened)
    base_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class GraphSupervoxelRow(Base):
    """Supervoxels of graphs ingested before bases existed (read once to write their base, then deleted)."""

    __tablename__ = "graph_supervoxels"

    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    sv_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    # voxel bounding box [x0, y0, z0, x1, y1, z1) at mip 0, for leaves within bounds
    x0: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    y0: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    z0: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    x1: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    y1: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    z1: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)


class GraphEdgeRow(Base):
    """Adjacency of graphs ingested before bases existed, plus edges their merges added (area 0); read
    once to write their base, then deleted."""

    __tablename__ = "graph_edges"

    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    sv_a: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    sv_b: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    area: Mapped[float] = mapped_column(sa.Float)
    initially_active: Mapped[bool] = mapped_column(sa.Boolean)


class GraphOperationRow(Base):
    """The operation log: every edit, enough to replay it (edge changes + new root ids)."""

    __tablename__ = "graph_operations"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))  # merge | split | undo | redo
    user_id: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    params: Mapped[dict] = mapped_column(sa.JSON)
    edge_changes: Mapped[list] = mapped_column(sa.JSON)
    old_root_ids: Mapped[list] = mapped_column(sa.JSON)
    new_root_ids: Mapped[list] = mapped_column(sa.JSON)
    target_operation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("graph_operations.id"), nullable=True)
    # the components a split made but the largest (segmentation.graph.pieces): replay needs no search
    pieces: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)


class StateRow(Base):
    """A stored Neuroglancer state: immutable, deduplicated by content, compressed (see state_links.codec)."""

    __tablename__ = "states"

    id: Mapped[int] = mapped_column(STATE_ID, primary_key=True)
    short_id: Mapped[str] = mapped_column(sa.String(16), unique=True)
    content_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    codec: Mapped[int] = mapped_column(sa.SmallInteger)
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    raw_size: Mapped[int] = mapped_column(sa.Integer)
    title: Mapped[str] = mapped_column(sa.Text, default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    owner: Mapped[str] = mapped_column(sa.String(128), default="anonymous")
    dataset: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    views: Mapped[int] = mapped_column(sa.Integer, default=0)


class StateAnchorRow(Base):
    """Where a selected neuron of a stored state is: a supervoxel of it (and a voxel inside, when known).

    The supervoxel outlives the root id: "as it is now" follows it to the neuron's latest root. A
    layer is known by its position and name (two layers may share a name); ``layer_index`` -1 marks
    anchors stored before migration 0007, known by name only.
    """

    __tablename__ = "state_anchors"

    state_id: Mapped[int] = mapped_column(STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True)
    layer_index: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False, server_default="-1")
    layer: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    segment_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    dataset: Mapped[str] = mapped_column(sa.String(64))
    sv_id: Mapped[int] = mapped_column(sa.BigInteger)
    x: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    y: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    z: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)


class StateDatasetRow(Base):
    """A dataset a stored state names (any layer, any source spelling): reading it needs view rights on each."""

    __tablename__ = "state_datasets"

    state_id: Mapped[int] = mapped_column(STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True)
    dataset: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class UserLinkRow(Base):
    """A stored state in a user's own list ("my links"), with the title that user gave it.

    States are immutable and shared (the same state posted twice is one row, owned by whoever stored
    it first), so what a person makes of a link — being in their list, its name there — is theirs."""

    __tablename__ = "user_links"

    user: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    state_id: Mapped[int] = mapped_column(STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)


class AliasRow(Base):
    """A short name one user owns (``/l/<name>``), pointing at a stored state they may re-point."""

    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    owner: Mapped[str] = mapped_column(sa.String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class AliasTargetRow(Base):
    """Where an alias pointed, in order (never deleted): the newest is where it points now."""

    __tablename__ = "alias_targets"

    alias_id: Mapped[int] = mapped_column(sa.ForeignKey("aliases.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    state_id: Mapped[int] = mapped_column(STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"))
    pointed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(sa.String(128))


class CellTagRow(Base):
    """A cell type bound to a neuron through a point: the supervoxel there, so it follows every edit.

    Never deleted: retracting sets ``retracted_at``; ``change_seq`` orders creations and
    retractions so every server process can follow them (see segmentation.celltypes.tags).
    """

    __tablename__ = "cell_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    sv_id: Mapped[int] = mapped_column(sa.BigInteger)
    x: Mapped[int] = mapped_column(sa.Integer)
    y: Mapped[int] = mapped_column(sa.Integer)
    z: Mapped[int] = mapped_column(sa.Integer)
    term: Mapped[str] = mapped_column(sa.String(256))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    confidence: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    user_id: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    retracted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    retracted_by: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    change_seq: Mapped[int] = mapped_column(sa.BigInteger, index=True)


class CellTagStateRow(Base):
    """One row: the last ``change_seq`` handed out (its row lock serializes tag changes)."""

    __tablename__ = "cell_tag_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class CellTagPurgeRow(Base):
    """A removed dataset's tags, gone at change ``change_seq`` (every process drops them then)."""

    __tablename__ = "cell_tag_purges"

    change_seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    dataset: Mapped[str] = mapped_column(sa.String(64))


class SynapseRow(Base):
    """A synapse of a dataset: its pre and post points bound to the supervoxels under them, so the
    neurons it joins follow every merge and split (see segmentation.connectivity).

    ``id`` is the synapse's own id within its dataset (kept from an imported CAVE table, else the
    next free one). Times are Unix seconds (a column of doubles: millions of rows are written and
    read as plain numbers). Never deleted while its dataset exists: removing sets ``deleted_at``,
    so a query of an earlier moment still counts it; ``change_seq`` orders additions and removals
    for every process to follow.
    """

    __tablename__ = "synapses"
    __table_args__ = (sa.Index("ix_synapses_dataset_change", "dataset_id", "change_seq"),)

    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    pre_sv: Mapped[int] = mapped_column(sa.BigInteger)
    post_sv: Mapped[int] = mapped_column(sa.BigInteger)
    pre_x: Mapped[int] = mapped_column(sa.Integer)
    pre_y: Mapped[int] = mapped_column(sa.Integer)
    pre_z: Mapped[int] = mapped_column(sa.Integer)
    post_x: Mapped[int] = mapped_column(sa.Integer)
    post_y: Mapped[int] = mapped_column(sa.Integer)
    post_z: Mapped[int] = mapped_column(sa.Integer)
    ctr_x: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    ctr_y: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    ctr_z: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    size: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    created_at: Mapped[float] = mapped_column(sa.Float)
    deleted_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    change_seq: Mapped[int] = mapped_column(sa.BigInteger)


class SynapseStateRow(Base):
    """One row: the last synapse ``change_seq`` handed out (its row lock serializes synapse writes)."""

    __tablename__ = "synapse_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class UserRow(Base):
    """A person or a script that signs in with tokens; ``site_admin`` may do anything anywhere."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    site_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class TokenRow(Base):
    """An API token: only its SHA-256 is stored, so the database never holds a usable secret."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    label: Mapped[str] = mapped_column(sa.String(128), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


class GrantRow(Base):
    """A user's role on one dataset: viewer, proofreader or admin."""

    __tablename__ = "grants"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))


class AuditRow(Base):
    """One change, appended in the transaction that made it; triggers refuse updates and deletes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    action: Mapped[str] = mapped_column(sa.String(64))
    dataset: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    target: Mapped[str] = mapped_column(sa.Text, default="")
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    origin: Mapped[str] = mapped_column(sa.String(128), default="")
