"""Synapse rows in SQL: written and read in bulk, as columns.

Millions of rows per import: rows go through the driver's own bulk path (``executemany`` of
plain tuples on SQLite, ``COPY`` on PostgreSQL), never one ORM object per row, and are read back
in batches straight into numpy structured arrays.
"""

from __future__ import annotations

import itertools

import numpy as np
import sqlalchemy as sa

from ..db import next_number
from ..models import SynapseRow, SynapseStateRow
from .columns import MISSING_XYZ, NOT_DELETED, Columns

_WRITTEN = (
    "dataset_id",
    "id",
    "pre_sv",
    "post_sv",
    "pre_x",
    "pre_y",
    "pre_z",
    "post_x",
    "post_y",
    "post_z",
    "ctr_x",
    "ctr_y",
    "ctr_z",
    "size",
    "created_at",
    "deleted_at",
    "change_seq",
)
_BATCH = 100_000
_NO_SIZE = -1.0e308  # NULL read back (SQLite stores NaN as NULL, so NULL cannot be read as NaN directly)
_READ_DTYPE = np.dtype(
    [
        ("id", "i8"),
        ("pre_sv", "i8"),
        ("post_sv", "i8"),
        ("pre_x", "i4"),
        ("pre_y", "i4"),
        ("pre_z", "i4"),
        ("post_x", "i4"),
        ("post_y", "i4"),
        ("post_z", "i4"),
        ("ctr_x", "i4"),
        ("ctr_y", "i4"),
        ("ctr_z", "i4"),
        ("size", "f8"),
        ("created_at", "f8"),
        ("deleted_at", "f8"),
        ("change_seq", "i8"),
    ]
)


def next_change(connection) -> int:
    """Take the synapse write lock (row lock / SQLite writer) and hand out the next change number."""
    return next_number(connection, SynapseStateRow.__table__)


def last_change(connection) -> int:
    return int(connection.scalar(sa.select(SynapseStateRow.last_seq).where(SynapseStateRow.id == 1)) or 0)


def max_id(connection, dataset_id: int) -> int:
    return int(connection.scalar(sa.select(sa.func.max(SynapseRow.id)).where(SynapseRow.dataset_id == dataset_id)) or 0)


def existing_ids(connection, dataset_id: int, ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` the dataset already has (checked in batches)."""
    found = []
    for start in range(0, len(ids), 10_000):
        batch = [int(i) for i in ids[start : start + 10_000]]
        found += connection.scalars(
            sa.select(SynapseRow.id).where(SynapseRow.dataset_id == dataset_id, SynapseRow.id.in_(batch))
        ).all()
    return np.array(sorted(found), dtype=np.int64)


def _nullable(values: np.ndarray, missing) -> list:
    """A column as Python values with None where ``missing`` (NaN for floats)."""
    out = values.tolist()
    gaps = np.isnan(values) if values.dtype.kind == "f" else values == missing
    if gaps.any():
        for i in np.flatnonzero(gaps).tolist():
            out[i] = None
    return out


def _tuples(dataset_id: int, columns: Columns, seq: int):
    n = len(columns)
    as_signed = lambda a: a.astype(np.int64).tolist()  # noqa: E731 — uint64 ids are stored as BIGINT bits
    parts = [
        itertools.repeat(dataset_id, n),
        columns.ids.tolist(),
        as_signed(columns.pre_sv),
        as_signed(columns.post_sv),
        *(columns.pre_xyz[:, a].tolist() for a in range(3)),
        *(columns.post_xyz[:, a].tolist() for a in range(3)),
        *(_nullable(columns.ctr_xyz[:, a], MISSING_XYZ) for a in range(3)),
        _nullable(columns.size, None),
        columns.created.tolist(),
        _nullable(np.where(columns.deleted == NOT_DELETED, np.nan, columns.deleted), None),
        itertools.repeat(seq, n),
    ]
    return zip(*parts)


def insert(connection, dataset_id: int, columns: Columns, seq: int) -> None:
    """Insert the rows of ``columns`` under change ``seq`` (in the caller's transaction), a batch
    at a time: Python objects are made for one batch of rows, never for all of them."""
    cursor = connection.connection.driver_connection.cursor()
    names = ", ".join(_WRITTEN)
    postgres = connection.dialect.name == "postgresql"
    statement = f"INSERT INTO synapses ({names}) VALUES ({', '.join('?' * len(_WRITTEN))})"
    for start in range(0, len(columns), _BATCH):
        rows = _tuples(dataset_id, columns.take(slice(start, start + _BATCH)), seq)
        if postgres:
            with cursor.copy(f"COPY synapses ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(statement, list(rows))


def read(connection, dataset_id: int, after_seq: int = -1, upto_seq: int | None = None) -> tuple[Columns, np.ndarray]:
    """(the dataset's rows written after change ``after_seq`` and up to ``upto_seq``, in id order;
    their change numbers), graph positions not yet set."""
    t = SynapseRow.__table__
    selected = [
        t.c.id,
        t.c.pre_sv,
        t.c.post_sv,
        *(t.c[f"{end}_{axis}"] for end in ("pre", "post") for axis in "xyz"),
        *(sa.func.coalesce(t.c[f"ctr_{axis}"], int(MISSING_XYZ)) for axis in "xyz"),
        sa.func.coalesce(t.c.size, _NO_SIZE),
        t.c.created_at,
        sa.func.coalesce(t.c.deleted_at, _NO_SIZE),
        t.c.change_seq,
    ]
    query = sa.select(*selected).where(t.c.dataset_id == dataset_id, t.c.change_seq > after_seq)
    if upto_seq is not None:
        query = query.where(t.c.change_seq <= upto_seq)
    result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(query.order_by(t.c.id))
    chunks = []
    while True:
        batch = result.fetchmany(_BATCH)
        if not batch:
            break
        chunks.append(np.array([tuple(row) for row in batch], dtype=_READ_DTYPE))
    rows = np.concatenate(chunks) if chunks else np.zeros(0, dtype=_READ_DTYPE)
    size = np.where(rows["size"] == _NO_SIZE, np.nan, rows["size"]).astype(np.float32)
    deleted = rows["deleted_at"].copy()
    deleted[deleted == _NO_SIZE] = NOT_DELETED
    columns = Columns.from_arrays(
        {
            "ids": rows["id"],
            "pre_sv": rows["pre_sv"].view(np.uint64),
            "post_sv": rows["post_sv"].view(np.uint64),
            "pre_xyz": np.stack([rows["pre_x"], rows["pre_y"], rows["pre_z"]], axis=1),
            "post_xyz": np.stack([rows["post_x"], rows["post_y"], rows["post_z"]], axis=1),
            "ctr_xyz": np.stack([rows["ctr_x"], rows["ctr_y"], rows["ctr_z"]], axis=1),
            "size": size,
            "created": rows["created_at"],
            "deleted": deleted,
        }
    )
    return columns, rows["change_seq"].copy()


def mark_deleted(connection, dataset_id: int, ids, when: float, seq: int) -> int:
    """Set ``deleted_at`` of those of ``ids`` still in force; returns how many."""
    done = 0
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), 10_000):
        done += connection.execute(
            sa.update(SynapseRow)
            .where(
                SynapseRow.dataset_id == dataset_id,
                SynapseRow.id.in_(ids[start : start + 10_000]),
                SynapseRow.deleted_at.is_(None),
            )
            .values(deleted_at=when, change_seq=seq)
        ).rowcount
    return done


def purge(connection, dataset_id: int) -> int:
    """Delete a removed dataset's synapses under a new change number (processes notice and drop them)."""
    next_change(connection)
    return connection.execute(sa.delete(SynapseRow).where(SynapseRow.dataset_id == dataset_id)).rowcount
