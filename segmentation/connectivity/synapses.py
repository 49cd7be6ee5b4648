"""Synapses: the synapse tables of one database (every dataset), the facade callers use.

A synapse binds its pre and post points to the supervoxels under them once, when it is added;
the neurons it joins at any moment are those supervoxels' roots then, so partners follow every
merge and split at once and can be asked of any past moment, like cell-type tags. Writes go to
SQL (the truth) under a change number; each process holds each dataset's synapses as columns
(:mod:`.index`) and follows other processes' writes by change number.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from ..access import audit
from ..db import engine_for
from ..errors import Invalid, NotFound
from ..models import DatasetRow
from . import columns as snapshots
from . import sql
from .columns import MISSING_XYZ, NOT_DELETED, Columns, SnapshotKey
from .files import Incoming
from .index import REBUILD_AFTER, DatasetSynapses, graph_positions

FOLDER = "synapses"  # under the home: this machine's snapshots (a cache of SQL)
SYNC_SECONDS = 0.5  # a process asks SQL whether anything changed at most this often per dataset


class SynapseError(Invalid):
    """Synapses that cannot be added or removed as asked (a 400)."""


class NoSynapses(NotFound):
    """The dataset has no synapse table (a 404)."""


@dataclass
class ImportReport:
    added: int
    first_id: int | None
    last_id: int | None
    rejected: list[tuple[int, str]]
    rejected_count: int
    change: int | None

    def to_json(self) -> dict:
        return {
            "added": self.added,
            "ids": None if self.first_id is None else [self.first_id, self.last_id],
            "rejected": [{"row": row, "reason": reason} for row, reason in self.rejected],
            "rejected_count": self.rejected_count,
            "change": self.change,
        }


class Synapses:
    """Every dataset's synapses, kept in step across processes."""

    def __init__(self, database_url: str, graphs, folder: Path):
        self.database_url = database_url
        self.graphs = graphs
        self.folder = Path(folder)
        self.engine = engine_for(database_url)
        self._held: dict[str, tuple[DatasetSynapses, float]] = {}  # name -> (synapses, last asked)
        self._lock = threading.Lock()

    # ---- reading ------------------------------------------------------------------------
    def _identity(self, connection, name: str) -> tuple[int, float] | None:
        found = connection.execute(
            sa.select(DatasetRow.id, DatasetRow.created_at).where(DatasetRow.name == name)
        ).first()
        if found is None:
            return None
        created = found[1] if found[1].tzinfo else found[1].replace(tzinfo=UTC)
        return int(found[0]), created.timestamp()

    def of(self, name: str, graph=None, fresh: bool = False) -> DatasetSynapses:
        """The dataset's synapses, caught up with every write committed anywhere (checked at most
        every :data:`SYNC_SECONDS`, or now with ``fresh``; a write made in this process is seen at once)."""
        graph = graph if graph is not None else self._graph(name)
        held = self._held.get(name)
        if held is not None and held[0].family.graph_created == graph.created_at.timestamp():
            synapses, asked = held
            if not fresh and time.monotonic() - asked < SYNC_SECONDS:
                return synapses
            with self.engine.connect() as connection:
                last = sql.last_change(connection)
                identity = self._identity(connection, name)
            if identity == (synapses.family.dataset_id, synapses.family.dataset_created):
                if last != synapses.seq:
                    synapses.catch_up(graph)
                self._held[name] = (synapses, time.monotonic())
                return synapses
        return self._load(name, graph)

    def _load(self, name: str, graph) -> DatasetSynapses:
        with self.engine.connect() as connection:
            identity = self._identity(connection, name)
            last = sql.last_change(connection)
        if identity is None:
            raise NotFound(f"no dataset named {name!r}")
        family = SnapshotKey(identity[0], identity[1], graph.created_at.timestamp(), last)
        synapses = DatasetSynapses(self.folder, family, self.engine)
        synapses.load(graph, last)
        with self._lock:
            self._held[name] = (synapses, time.monotonic())
        return synapses

    def _graph(self, name: str):
        graph = self.graphs.find(name)
        if graph is None:
            raise NoSynapses(f"dataset {name!r} has no graph, so no synapses: run `axonlink ingest-graph {name}` first")
        graph.sync()
        return graph

    def count(self, name: str, at: datetime | None = None) -> int:
        """Synapses in force at ``at`` (0 for a dataset without a graph)."""
        if self.graphs.find(name) is None:
            return 0
        return self.of(name).count(at)

    def has_table(self, name: str) -> bool:
        """Whether the dataset has ever had a synapse (its synapse table exists, for caveclient)."""
        if self.graphs.find(name) is None:
            return False
        synapses = self.of(name)
        return any(len(part.columns) for part, _ in synapses.parts())

    # ---- writing ------------------------------------------------------------------------
    def add(self, dataset, incoming: Incoming, user: str, origin: str = "", budget=None) -> ImportReport:
        """Bind each row's points to the supervoxels under them (or check the ids given), then add
        every acceptable row in one transaction; rows that are not are reported with why."""
        from ..graph.points import OUTSIDE, supervoxels_at_voxels

        dataset.segmentation_layer("synapses join neurons, and an image-only dataset has none")
        graph = self._graph(dataset.name)
        lower = np.asarray(dataset.voxel_offset, dtype=np.int64)
        upper = lower + np.asarray(dataset.volume_size, dtype=np.int64)
        for side in ("pre", "post"):
            xyz = getattr(incoming, f"{side}_xyz")
            incoming.reject(
                ((xyz < lower) | (xyz >= upper)).any(axis=1),
                f"the {side} point is outside the volume ({lower.tolist()} to {(upper - 1).tolist()})",
            )
        if incoming.pre_sv is None:
            svs = {}
            for side in ("pre", "post"):
                found, status = supervoxels_at_voxels(dataset, getattr(incoming, f"{side}_xyz"), budget=budget)
                svs[side] = found
                incoming_outside = status == OUTSIDE
                if incoming_outside.any():  # bounds were checked above: only a volume smaller than its info says
                    raise SynapseError(f"{int(incoming_outside.sum())} {side} point(s) fall outside the segmentation")
            incoming.pre_sv, incoming.post_sv = svs["pre"], svs["post"]
        for side in ("pre", "post"):
            found = getattr(incoming, f"{side}_sv")
            unknown = (found != 0) & (graph_positions(graph, found) < 0)
            incoming.reject(unknown, f"the {side} supervoxel is not in the dataset's graph")
        now = time.time()
        large = len(incoming) > REBUILD_AFTER
        with self.engine.begin() as connection:
            seq = sql.next_change(connection)  # the write lock: no other write lands until this commits
            # a large write becomes this machine's snapshot straight from memory: what was here
            # before it (every change before ``seq``, committed) plus its own rows
            before = self.of(dataset.name, graph, fresh=True) if large else None
            dataset_id = connection.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == dataset.name))
            if incoming.ids is not None:
                taken = np.isin(incoming.ids, sql.existing_ids(connection, dataset_id, incoming.ids))
                incoming.reject(taken, "the dataset already has a synapse with this id")
                ids = incoming.ids
            else:
                start = sql.max_id(connection, dataset_id) + 1
                ids = np.arange(start, start + len(incoming), dtype=np.int64)
            if not len(incoming):
                connection.rollback()
                return ImportReport(0, None, None, sorted(incoming.rejected), incoming.rejected_count, None)
            rows = Columns.from_arrays(
                {
                    "ids": ids,
                    "pre_sv": incoming.pre_sv,
                    "post_sv": incoming.post_sv,
                    "pre_xyz": incoming.pre_xyz,
                    "post_xyz": incoming.post_xyz,
                    "ctr_xyz": incoming.ctr_xyz
                    if incoming.ctr_xyz is not None
                    else np.full((len(incoming), 3), MISSING_XYZ),
                    "size": incoming.size,
                    "created": np.full(len(incoming), now),
                    "deleted": np.full(len(incoming), NOT_DELETED),
                }
            )
            sql.insert(connection, dataset_id, rows, seq)
            audit.record(
                connection,
                user=user,
                action="synapse.import",
                dataset=dataset.name,
                origin=origin,
                target=f"{len(rows)} synapse(s), change {seq}",
                detail={"change_seq": seq, "added": len(rows), "rejected": incoming.rejected_count},
            )
        if before is not None:
            rows.pre_pos = graph_positions(graph, rows.pre_sv)
            rows.post_pos = graph_positions(graph, rows.post_sv)
            held = before.all_columns()
            merged = Columns.concat([held, rows])
            if len(held) and ids.min() <= held.ids.max():  # ids given below ones held: keep id order
                merged = merged.take(np.argsort(merged.ids, kind="stable"))
            family = before.family
            snapshots.save(
                self.folder,
                SnapshotKey(family.dataset_id, family.dataset_created, family.graph_created, seq),
                merged,
            )
            self._load(dataset.name, graph)
        else:
            self._after_write(dataset.name, graph, len(rows))
        return ImportReport(
            len(rows), int(ids.min()), int(ids.max()), sorted(incoming.rejected), incoming.rejected_count, seq
        )

    def remove(self, name: str, ids, user: str, origin: str = "") -> int:
        """Take synapses out of force now (kept for queries of earlier moments); how many were."""
        graph = self._graph(name)
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        with self.engine.begin() as connection:
            seq = sql.next_change(connection)
            dataset_id = connection.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name))
            removed = sql.mark_deleted(connection, dataset_id, ids, time.time(), seq)
            if not removed:
                connection.rollback()
                return 0
            audit.record(
                connection,
                user=user,
                action="synapse.remove",
                dataset=name,
                origin=origin,
                target=f"{removed} synapse(s), change {seq}",
                detail={"change_seq": seq, "ids": [int(i) for i in ids[:100]]},
            )
        self._after_write(name, graph, removed)
        return removed

    def _after_write(self, name: str, graph, rows: int) -> None:
        """Catch this process up at once; a large write becomes this machine's snapshot now, so
        no server process reads it row by row from SQL."""
        held = self._held.get(name)
        if rows > REBUILD_AFTER or held is None:
            self._load(name, graph)
        else:
            held[0].catch_up(graph)
            self._held[name] = (held[0], time.monotonic())

    def forget(self, name: str) -> None:
        with self._lock:
            self._held.pop(name, None)
