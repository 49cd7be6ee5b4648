"""One dataset's synapses as a process holds them: a memory-mapped snapshot plus what came after.

``base`` is the newest snapshot this machine has (:mod:`.columns`), shared by every process
through the page cache; ``delta`` holds, in this process's memory, the rows written after it
(``change_seq`` beyond the snapshot's), and ``base_deleted`` the snapshot rows removed since. A
process follows other processes' writes by reading only rows with a higher ``change_seq``, the
way graphs follow the operation log. When the delta grows past :data:`REBUILD_AFTER` rows, a new
snapshot is written (one process at a time, under a file lock) and the delta starts again.
"""

from __future__ import annotations

import fcntl
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from . import columns as snapshots
from . import sql
from .columns import NOT_DELETED, Columns, SnapshotKey

REBUILD_AFTER = 100_000  # rows written since the snapshot before a new one is made


def graph_positions(graph, supervoxels: np.ndarray) -> np.ndarray:
    """Dense graph positions of ``supervoxels``; -1 for background (0) and ids the graph lacks."""
    supervoxels = np.asarray(supervoxels, dtype=np.uint64)
    known = graph.supervoxel_ids
    if not len(known):
        return np.full(len(supervoxels), -1, dtype=np.int64)
    at = np.searchsorted(known, supervoxels)
    inside = at < len(known)
    found = np.zeros(len(supervoxels), dtype=bool)
    found[inside] = known[at[inside]] == supervoxels[inside]
    return np.where(found & (supervoxels != 0), at, -1).astype(np.int64)


@dataclass
class Part:
    """Columns with their order by pre and by post graph position (for binary search); the sorted
    positions come memory-mapped from a snapshot, or are made here for the rows written since."""

    columns: Columns
    by_pre: np.ndarray
    by_post: np.ndarray
    sorted_pre: np.ndarray | None = None
    sorted_post: np.ndarray | None = None

    def __post_init__(self):
        if self.sorted_pre is None:
            self.sorted_pre = self.columns.pre_pos[self.by_pre]
        if self.sorted_post is None:
            self.sorted_post = self.columns.post_pos[self.by_post]
        self._facts: dict[str, bool] = {}

    @classmethod
    def of(cls, columns: Columns) -> Part:
        return cls(
            columns,
            np.argsort(columns.pre_pos, kind="stable").astype(np.int64),
            np.argsort(columns.post_pos, kind="stable").astype(np.int64),
        )

    def none_removed(self) -> bool:
        """Whether no row was ever removed (as held here): a scan of "now" then needs no mask."""
        if "none removed" not in self._facts:
            self._facts["none removed"] = bool((self.columns.deleted == NOT_DELETED).all())
        return self._facts["none removed"]

    def touching(self, members: np.ndarray, side: str) -> np.ndarray:
        """Rows whose ``side`` ("pre"/"post") supervoxel is at one of ``members`` (sorted positions)."""
        keys, order = (self.sorted_pre, self.by_pre) if side == "pre" else (self.sorted_post, self.by_post)
        if not len(members) or not len(keys):
            return np.zeros(0, dtype=np.int64)
        lo = np.searchsorted(keys, members, "left")
        hi = np.searchsorted(keys, members, "right")
        hit = hi > lo
        lo, hi = lo[hit], hi[hit]
        if not len(lo):
            return np.zeros(0, dtype=np.int64)
        counts = hi - lo
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return np.sort(order[starts + np.arange(counts.sum())])


class DatasetSynapses:
    """A dataset's synapses in this process (see the module's docstring)."""

    def __init__(self, folder: Path, family: SnapshotKey, engine):
        self.folder = folder
        self.family = family  # dataset id, its creation, the graph's ingest (seq unused)
        self.engine = engine
        self.lock = threading.RLock()
        self.base = Part.of(Columns.empty())
        self.base_seq = -1
        self.base_deleted: dict[int, float] = {}  # base position -> when removed after the snapshot
        self.delta = Columns.empty()
        self._delta_part: Part | None = None
        self._base_deleted_column: np.ndarray | None = None
        self.seq = -1  # the last change applied here
        self.derived: dict = {}  # answers computed from the columns, dropped at each change

    # ---- loading and following --------------------------------------------------------
    def load(self, graph, upto_seq: int) -> None:
        """Map the newest snapshot up to ``upto_seq`` (writing one from SQL if none or too old), then catch up."""
        key = SnapshotKey(self.family.dataset_id, self.family.dataset_created, self.family.graph_created, upto_seq)
        found = snapshots.newest(self.folder, key)
        loaded = snapshots.load(self.folder, found) if found else None
        if loaded is None or self._rows_after(found.seq) > REBUILD_AFTER:
            found = self._write_snapshot(graph, upto_seq)
            loaded = snapshots.load(self.folder, found)
            if loaded is None:
                raise OSError(f"the synapse snapshot {self.folder / found.folder} cannot be read after writing it")
        columns, by_pre, by_post, sorted_pre, sorted_post = loaded
        with self.lock:
            self.base = Part(columns, by_pre, by_post, sorted_pre, sorted_post)
            self.base_seq = self.seq = found.seq
            self.base_deleted = {}
            self._base_deleted_column = None
            self.delta = Columns.empty()
            self._delta_part = None
            self.derived = {}
        self.catch_up(graph)

    def _rows_after(self, seq: int) -> int:
        from ..models import SynapseRow

        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    sa_count().where(SynapseRow.dataset_id == self.family.dataset_id, SynapseRow.change_seq > seq)
                )
            )

    def _write_snapshot(self, graph, upto_seq: int) -> SnapshotKey:
        """Every row up to ``upto_seq`` from SQL, bound to the graph, as a snapshot (one writer per machine)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f".lock-{self.family.family}", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                key = SnapshotKey(
                    self.family.dataset_id, self.family.dataset_created, self.family.graph_created, upto_seq
                )
                found = snapshots.newest(self.folder, key)
                if found is not None and found.seq == upto_seq:  # another process wrote it meanwhile
                    return found
                with self.engine.connect() as connection:
                    rows, seqs = sql.read(connection, self.family.dataset_id, upto_seq=upto_seq)
                rows.pre_pos = graph_positions(graph, rows.pre_sv)
                rows.post_pos = graph_positions(graph, rows.post_sv)
                snapshots.save(self.folder, key, rows)
                return key
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def catch_up(self, graph) -> None:
        """Apply rows other processes wrote since the last change seen here."""
        with self.engine.connect() as connection:
            rows, seqs = sql.read(connection, self.family.dataset_id, after_seq=self.seq)
        if not len(rows):
            return
        with self.lock:
            in_base = np.zeros(len(rows), dtype=bool)
            base_ids = self.base.columns.ids
            if len(base_ids):
                at = np.minimum(np.searchsorted(base_ids, rows.ids), len(base_ids) - 1)
                in_base = base_ids[at] == rows.ids
                for position, when in zip(at[in_base].tolist(), rows.deleted[in_base].tolist()):
                    self.base_deleted[position] = when
                if in_base.any():
                    self._base_deleted_column = None
            new = rows.take(np.flatnonzero(~in_base))
            if len(new):
                new.pre_pos = graph_positions(graph, new.pre_sv)
                new.post_pos = graph_positions(graph, new.post_sv)
                kept = self.delta
                if len(kept):  # rows written here before and changed since (removed): replace them
                    again = np.isin(kept.ids, new.ids)
                    kept = kept.take(np.flatnonzero(~again))
                merged = Columns.concat([kept, new])
                self.delta = merged.take(np.argsort(merged.ids, kind="stable"))
                self._delta_part = None
            self.seq = max(self.seq, int(seqs.max()))
            self.derived = {}

    # ---- reads ------------------------------------------------------------------------
    def parts(self) -> list[tuple[Part, np.ndarray | None]]:
        """[(part, deleted times to use instead of its own or None)], the snapshot first."""
        with self.lock:
            if self._delta_part is None:
                self._delta_part = Part.of(self.delta)
            if self.base_deleted and self._base_deleted_column is None:  # one copy per change, not per query
                deleted = np.array(self.base.columns.deleted, dtype=np.float64)
                positions = np.fromiter(self.base_deleted.keys(), dtype=np.int64)
                deleted[positions] = np.fromiter(self.base_deleted.values(), dtype=np.float64)
                self._base_deleted_column = deleted
            return [(self.base, self._base_deleted_column), (self._delta_part, None)]

    def by_id(self, synapse_id: int) -> tuple[Columns, np.ndarray] | None:
        """(the synapse as a one-row Columns, its deleted time as held here), or None."""
        for part, deleted in self.parts():
            ids = part.columns.ids
            at = int(np.searchsorted(ids, synapse_id))  # both parts are in id order
            if at < len(ids) and ids[at] == synapse_id:
                ends = (deleted if deleted is not None else part.columns.deleted)[at : at + 1]
                return part.columns.take(np.array([at])), np.asarray(ends)
        return None

    def all_columns(self) -> Columns:
        """Every row held here (removed ones too, with when), in id order: a new snapshot's start."""
        parts = [
            part.columns if deleted is None else replace(part.columns, deleted=deleted)
            for part, deleted in self.parts()
            if len(part.columns)
        ]
        merged = Columns.concat(parts)
        return merged.take(np.argsort(merged.ids, kind="stable")) if len(parts) > 1 else merged

    def count(self, at: datetime | None = None) -> int:
        return sum(int(alive(part.columns, deleted, None, at).sum()) for part, deleted in self.parts())


def alive(
    columns: Columns,
    deleted: np.ndarray | None,
    rows: np.ndarray | None,
    at: datetime | None,
    window: slice | None = None,
) -> np.ndarray:
    """Mask over ``rows`` (None: all, or the rows of ``window``) of the synapses in force at ``at``
    (None: now); ``deleted`` replaces the columns' own removal times (already cut to ``window``)."""
    if deleted is not None:
        ends = deleted
    else:
        ends = columns.deleted if window is None else columns.deleted[window]
    starts = columns.created if window is None else columns.created[window]
    if rows is not None:
        ends = ends[rows]
        starts = starts[rows]
    if at is None:
        return ends == NOT_DELETED
    t = at.timestamp()
    return (starts <= t) & (ends > t)


def sa_count():
    import sqlalchemy as sa

    from ..models import SynapseRow

    return sa.select(sa.func.count()).select_from(SynapseRow)
