"""SQLAlchemy models: the source of truth for everything axonlink stores."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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

    layers: Mapped[list["LayerRow"]] = relationship(
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

    dataset: Mapped[DatasetRow] = relationship(back_populates="layers")
