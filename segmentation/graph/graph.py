"""``Graph``: the versioned proofreading graph of one dataset.

The graph as ingested is an immutable base of files (:mod:`segmentation.graph.base`) that
every process memory-maps; SQL holds the operation log, the source of truth for every edit.
Each process keeps a :class:`~segmentation.graph.index.GraphIndex` (the base plus what edits
changed) and replays new operations from the log before answering, so several processes
agree at once. An edit runs in one transaction that first takes the dataset's
``graph_state`` row lock (PostgreSQL row lock, SQLite's single writer), catches
up with the log, plans the edit on the index, writes the operation, commits,
and only then applies it in memory.

What the graph looked like at a past moment T may only be served as final (cached
forever) once no commit stamped at or before T can still appear. An edit stamps its
time after taking the lock, so (1) every edit still in flight is stamped later than
the newest one this process has seen, and (2) once a reader has held the lock itself,
every edit stamped before it started waiting has been committed. :meth:`is_settled`
uses both, taking the lock at most twice a second per process and dataset.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa

from .. import budget
from ..access import audit
from ..db import engine_for
from ..errors import NotFound
from ..models import DatasetRow, GraphOperationRow, GraphStateRow
from . import pieces
from .base import BaseError
from .edit_signal import UNKNOWN, EditSignal
from .ids import is_supervoxel
from .index import Edit, GraphError, GraphIndex
from .legacy import write_legacy_base
from .locking import lock_for_writing
from .operations import Merge, Operation, Redo, Split, Undo
from .store import base_ready, discard_base, open_base, release_base, write_beside

DEFAULT_COMPACT_AFTER = 20_000  # operations beyond the base before a background compaction


class GraphNotIngested(NotFound):
    pass


@dataclass(frozen=True)
class OperationResult:
    operation_id: int
    new_root_ids: list[int]
    old_root_ids: list[int]
    timestamp: datetime


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _dataset_id(connection, name: str) -> int:
    dataset_id = connection.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name))
    if dataset_id is None:
        raise LookupError(f"no dataset named {name!r}")
    return dataset_id


class Graph:
    """Reads (optionally as of a moment) and edits of one dataset's supervoxel graph."""

    @classmethod
    def open(cls, database_url: str, dataset: str) -> Graph:
        """A graph of one's own (loaded now; kept in step with the log by its reads), for scripts and
        tests. Services keep theirs in a :class:`~segmentation.graph.registry.Graphs` registry."""
        return cls(database_url, dataset)

    def __init__(self, database_url: str, dataset: str):
        self.on_gone = None  # called with the dataset's name when its graph is found removed or replaced
        self._compacting: threading.Thread | None = None  # a background compaction under way
        self._compaction_started_at = 0  # the operation the last one started here folds up to
        self.database_url = database_url
        self.engine = engine_for(database_url)
        self.dataset = dataset
        self._lock = threading.RLock()
        self._caught_up = threading.local()  # per thread: inside caught_up(), and synced already
        with self.engine.connect() as connection:
            self.dataset_id = _dataset_id(connection, dataset)
        self.base_url, self.index = self._open_newest_base()
        self._op_times: list[datetime] = []  # created_at of operation seq i+1
        # operations by their number in this dataset's log (1, 2, 3 ...): the operation ids the API
        # shows, so that ids never reveal how many edits other datasets had (rows are numbered globally)
        self._ops: dict[int, dict] = {}
        self._seq_of_row: dict[int, int] = {}
        with self.engine.connect() as connection:
            self.created_at = _utc(
                connection.scalar(
                    sa.select(GraphStateRow.created_at).where(GraphStateRow.dataset_id == self.dataset_id)
                )
            )
            self._settled_until = self.created_at  # moments up to this one can no longer change
            self._settle_checked = -float("inf")
            self._catch_up(connection)
        self.edit_signal = EditSignal(database_url, self.dataset_id, self.created_at)
        self.synced_at = time.monotonic()  # when the log was last found read to its end (sync, follower)

    def _open_newest_base(self) -> tuple[str, GraphIndex]:
        """The base the database names now, memory-mapped (a compaction may delete the one just read:
        then read again)."""
        for attempt in range(3):
            with self.engine.connect() as connection:
                state = connection.execute(
                    sa.select(GraphStateRow.base_url).where(GraphStateRow.dataset_id == self.dataset_id)
                ).first()
            if state is None:
                raise GraphNotIngested(f"dataset {self.dataset!r} has no graph yet (run ingest-graph)")
            url = state[0] or write_legacy_base(self.engine, self.database_url, self.dataset_id, self.dataset)
            try:
                return url, GraphIndex(open_base(url))
            except BaseError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ---- keeping in step with the log ---------------------------------------
    @property
    def _seen(self) -> int:
        """The newest operation of the log read here (operations are numbered 1, 2, 3 … without gaps)."""
        return len(self._op_times)

    def _catch_up(self, connection) -> None:
        rows = (
            connection.execute(
                sa.select(GraphOperationRow.__table__)
                .where(GraphOperationRow.dataset_id == self.dataset_id, GraphOperationRow.seq > self._seen)
                .order_by(GraphOperationRow.seq)
            )
            .mappings()
            .all()
        )
        for row in rows:
            self._apply_row(dict(row))

    def _apply_row(self, row: dict) -> None:
        _replay(self.index, row)
        row.pop("pieces", None)  # only replay needs them: not kept in memory
        row["created_at"] = _utc(row["created_at"])
        self._op_times.append(row["created_at"])
        self._settled_until = max(self._settled_until, row["created_at"])
        seq = row["seq"]
        self._seq_of_row[row["id"]] = seq
        target = row["target_operation_id"]
        row["row_id"], row["id"] = row["id"], seq
        row["target_operation_id"] = None if target is None else self._seq_of_row[target]
        self._ops[seq] = row

    def sync(self) -> None:
        """Replay operations other processes committed (one cheap query when there are none).

        Inside :meth:`caught_up` this runs once, however many reads the block makes.
        """
        if getattr(self._caught_up, "depth", 0) and self._caught_up.done:
            return
        if getattr(self._caught_up, "depth", 0):
            self._caught_up.done = True
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(GraphStateRow.last_seq, GraphStateRow.created_at, GraphStateRow.base_url).where(
                    GraphStateRow.dataset_id == self.dataset_id
                )
            ).first()
            if found is None or _utc(found[1]) != self.created_at:
                if self.on_gone is not None:  # the registry holding it loads what is there now
                    self.on_gone(self.dataset)
                raise GraphNotIngested(f"the graph of dataset {self.dataset!r} was removed or replaced; ask again")
            last, base_url = found[0], found[2]
            if last != self._seen:
                with self._lock:
                    self._catch_up(connection)
        self.synced_at = time.monotonic()
        if base_url is not None and base_url != self.base_url:
            self._switch_base(base_url)

    #: How old the last look at the log may be for :meth:`current_here` (edits made elsewhere show
    #: within this, even when the follower is off or the edit counter is not shared).
    CURRENT_SECONDS = 1.0

    def current_here(self) -> bool:
        """Whether, without SQL, the graph may be taken as current: every edit committed on this
        machine has been read here (:mod:`~segmentation.graph.edit_signal`), and the log was read to
        its end within :attr:`CURRENT_SECONDS` (by a request or the follower)."""
        if time.monotonic() - self.synced_at > self.CURRENT_SECONDS:
            return False
        signal = self.edit_signal.read()
        return signal != UNKNOWN and signal <= self._seen

    def _switch_base(self, url: str) -> None:
        """Another process compacted the graph: read the new base and let go of the old one's pages
        and of the changes it folded in (the answers stay the same). A base in object storage is
        first copied here in the background; until then the old base and the log answer."""
        if not base_ready(url):
            return
        try:
            index = GraphIndex(open_base(url))
        except BaseError:
            return  # compacted again meanwhile: the next sync finds the newest
        with self._lock:
            if index.base.seq > self._seen:
                return  # the base folds operations not read here yet: the next sync reads them first
            for seq in range(1, self._seen + 1):
                _replay(index, self._ops[seq])
            old_url, self.index, self.base_url = self.base_url, index, url
        release_base(old_url)

    @contextmanager
    def caught_up(self):
        """A block of reads answered after one catch-up with the log (a request asking about many
        ids must not query the database once per id)."""
        state = self._caught_up
        state.depth = getattr(state, "depth", 0) + 1
        if state.depth == 1:
            state.done = False
        try:
            yield self
        finally:
            state.depth -= 1

    # ---- time ---------------------------------------------------------------
    _SETTLE_CHECK_SECONDS = 0.5

    def is_settled(self, at: datetime) -> bool:
        """Whether what the graph looked like at ``at`` can no longer change (see the module docstring)."""
        at = _utc(at)
        if at <= self._settled_until:
            return True
        started = datetime.now(UTC)
        if at >= started or time.monotonic() - self._settle_checked < self._SETTLE_CHECK_SECONDS:
            return False
        self._settle_checked = time.monotonic()
        state = GraphStateRow.__table__
        with self._lock, self.engine.begin() as connection:
            # the writers' lock: whoever stamped an edit before we started waiting has committed it
            # (PostgreSQL: the row lock, without writing a row version; SQLite: its one writer lock)
            if self.engine.dialect.name == "postgresql":
                connection.execute(
                    sa.select(state.c.last_seq).where(state.c.dataset_id == self.dataset_id).with_for_update()
                )
            else:
                lock_for_writing(connection, self.dataset_id)
            self._catch_up(connection)
        self._settled_until = max(self._settled_until, started)
        return at <= self._settled_until

    def seq_at(self, at: datetime | None) -> int | None:
        """The last operation applied at moment ``at`` (None = now)."""
        if at is None:
            return None
        return bisect.bisect_right(self._op_times, _utc(at))

    def operation_time(self, seq: int) -> datetime:
        """When operation ``seq`` happened (seq 0 = when the graph was ingested)."""
        return self._op_times[seq - 1] if seq > 0 else self.created_at

    # ---- reads --------------------------------------------------------------
    def roots(self, supervoxels, at: datetime | None = None) -> np.ndarray:
        self.sync()
        return self.index.roots(supervoxels, self.seq_at(at))

    def root(self, supervoxel: int, at: datetime | None = None) -> int:
        return int(self.roots([supervoxel], at)[0])

    # ---- the index as it is now, for callers that read many ids per request (they sync first) ----
    @property
    def seq(self) -> int:
        """The number of the newest operation applied here."""
        return self.index.seq

    @property
    def supervoxel_ids(self) -> np.ndarray:
        """Every supervoxel id of the graph, sorted."""
        return self.index.sv_ids

    def has_supervoxel(self, supervoxel: int) -> bool:
        return self.index.has(supervoxel)

    def is_root(self, node: int) -> bool:
        """Whether ``node`` is a root this graph has had (now or before)."""
        return self.index.is_root(node)

    def root_created_seq(self, root: int) -> int:
        """The operation that made ``root`` (0: it was there at ingest)."""
        return self.index.record(root).created_seq

    def positions(self, supervoxels) -> np.ndarray:
        """Dense positions of supervoxel ids (GraphError for ids not in the graph)."""
        return self.index.index_of(supervoxels)

    def roots_at_positions(self, positions: np.ndarray, seq: int | None = None) -> np.ndarray:
        """Roots of the supervoxels at ``positions`` after operation ``seq`` (None: now)."""
        return self.index.roots_by_index(positions, seq)

    def last_change(self, positions: np.ndarray) -> int:
        """The newest operation that gave any of the supervoxels at ``positions`` a new root."""
        return self.index.last_change(positions)

    def newest_made(self, roots: np.ndarray) -> int:
        """The newest operation that made any of ``roots``: the moment an answer made of them is of."""
        return self.index.newest_made(roots)

    def leaves(self, root: int, bounds=None) -> np.ndarray:
        """Supervoxels of a root; with ``bounds`` ((x0, x1), (y0, y1), (z0, z1) voxels) only those touching it."""
        self.sync()
        return self.index.leaves(root, bounds)

    def members(self, root: int) -> np.ndarray:
        """Sorted dense positions of a root's supervoxels (any root the graph has had; GraphError else):
        what a caller indexing its own arrays by graph position (synapses) looks a neuron up by."""
        self.sync()
        return self.index.members(root)

    def leaves_many(self, nodes, bounds=None) -> dict[int, np.ndarray]:
        """Supervoxels of each of ``nodes`` (a supervoxel stands for itself), after one catch-up with the log."""
        self.sync()
        return {
            int(node): (np.array([node], dtype=np.uint64) if is_supervoxel(node) else self.index.leaves(node, bounds))
            for node in nodes
        }

    def representative(self, root: int) -> tuple[int, tuple[int, ...] | None]:
        """(the supervoxel with the largest box in ``root``, its box or None): where to anchor a neuron."""
        self.sync()
        members = self.index.members(root)
        if self.index.boxes is None:
            return int(self.index.sv_ids[members.min()]), None
        boxes = self.index.boxes[members].astype(np.int64)
        k = int(np.argmax(np.prod(boxes[:, 3:] - boxes[:, :3], axis=1)))
        return int(self.index.sv_ids[members[k]]), tuple(int(v) for v in boxes[k])

    def bounding_box(self, root: int) -> tuple[int, ...] | None:
        """[x0, y0, z0, x1, y1, z1) voxels around every supervoxel of ``root``, or None when the
        ingest recorded no boxes."""
        self.sync()
        if self.index.boxes is None:
            return None
        boxes = self.index.boxes[self.index.members(root)].astype(np.int64)
        return tuple(int(v) for v in (*boxes[:, :3].min(axis=0), *boxes[:, 3:].max(axis=0)))

    def is_latest(self, roots, at: datetime | None = None) -> list[bool]:
        self.sync()
        seq = self.index.seq if at is None else self.seq_at(at)
        return [self.index.is_root(int(r)) and self.index.exists_at(int(r), seq) for r in roots]

    def root_timestamps(self, roots) -> list[datetime]:
        self.sync()
        return [self.operation_time(self.index.record(r).created_seq) for r in roots]

    def latest_roots(self, root: int, at: datetime | None = None) -> list[int]:
        """The roots that ``root`` became by moment ``at`` (itself when unchanged)."""
        self.sync()
        seq = self.index.seq if at is None else self.seq_at(at)
        found = []

        def later(node, rec):
            if rec.retired_seq is None or rec.retired_seq > seq:
                found.append(node)
                return []
            return [c for c in rec.children if self.index.record(c).created_seq <= seq]

        list(self._walk([root], later))
        return sorted(found)

    def lineage(self, roots, past: datetime | None = None, future: datetime | None = None) -> dict:
        """Ancestors and descendants of ``roots`` between two moments, as networkx node-link data."""
        import networkx as nx

        self.sync()
        past_seq = -1 if past is None else self.seq_at(past)
        future_seq = self.index.seq if future is None else self.seq_at(future)
        graph = nx.DiGraph()

        def related(node, rec):
            nearby = []
            if rec.created_seq > past_seq:
                for parent in rec.parents:
                    graph.add_edge(parent, node)
                    nearby.append(parent)
            for child in rec.children:
                if self.index.record(child).created_seq <= future_seq:
                    graph.add_edge(node, child)
                    nearby.append(child)
            return nearby

        for node, rec in self._walk(roots, related):
            graph.add_node(
                node,
                timestamp=self.operation_time(rec.created_seq).timestamp(),
                operation_id=rec.created_seq or None,
            )
        return nx.node_link_data(graph, edges="links")

    def family(self, root: int, generations: int = 3, most: int = 60) -> tuple[list[dict], list[tuple[int, int]]]:
        """The roots ``root`` came from and became, up to ``generations`` operations back and forth
        and at most ``most`` of them, nearest first: (nodes, edges parent → child among them). Each
        node: ``id``, ``made`` (the operation that made it, 0 at ingest), ``current``, ``generation``
        (negative: an ancestor). A neuron page draws it; the whole history is :meth:`lineage`."""
        self.sync()
        nodes: dict[int, dict] = {}
        frontier = [(int(root), 0)]
        while frontier and len(nodes) < most:
            node, generation = frontier.pop(0)
            if node in nodes:
                continue
            budget.check()
            record = self.index.record(node)
            nodes[node] = {
                "id": node,
                "made": record.created_seq,
                "current": record.retired_seq is None,
                "generation": generation,
            }
            if generation <= 0 and -generation < generations:
                frontier.extend((int(parent), generation - 1) for parent in record.parents)
            if generation >= 0 and generation < generations:
                frontier.extend((int(child), generation + 1) for child in record.children)
        edges = [
            (int(parent), node) for node in nodes for parent in self.index.record(node).parents if int(parent) in nodes
        ]
        return list(nodes.values()), edges

    def _walk(self, start, next_nodes):
        """Visit root records depth-first from ``start``; ``next_nodes(node, record)`` says where to go."""
        stack, seen = [int(r) for r in start], set()
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            budget.check()
            record = self.index.record(node)
            yield node, record
            stack.extend(next_nodes(node, record))

    def change_log(self, root: int) -> dict:
        """The operations in a root's past: counts, users, operation ids, past root ids."""
        self.sync()
        past, stack, ops = set(), [int(root)], set()
        while stack:
            node = stack.pop()
            budget.check()
            rec = self.index.record(node)
            if rec.created_seq > 0:
                ops.add(rec.created_seq)
            for parent in rec.parents:
                if parent not in past:
                    past.add(parent)
                    stack.append(parent)
        kinds = [self._ops[o]["kind"] for o in sorted(ops)]
        users: dict[str, dict[str, int]] = {}
        for o in sorted(ops):
            op = self._ops[o]
            entry = users.setdefault(op["user_id"], {"n_splits": 0, "n_mergers": 0})
            entry["n_mergers" if self._is_merge_like(op) else "n_splits"] += 1
        return {
            "n_mergers": sum(self._is_merge_like(self._ops[o]) for o in ops),
            "n_splits": sum(not self._is_merge_like(self._ops[o]) for o in ops),
            "operations_ids": sorted(ops),
            "past_ids": sorted(past),
            "user_info": users,
            "kinds": kinds,
        }

    def tabular_change_log(self, root: int) -> list[dict]:
        """One row per operation that made a root in ``root``'s past (or ``root``), oldest first.

        ``after_root_ids`` holds only the root on the way to ``root``, as CAVE's tabular log does.
        """
        self.sync()
        made_by: dict[int, int] = {}  # seq -> the root it created on the way to ``root``
        for node, rec in self._walk([root], lambda node, rec: rec.parents):
            if rec.created_seq > 0:
                made_by[rec.created_seq] = node
        rows = []
        for seq in sorted(made_by):
            op = self._ops[seq]
            rows.append(
                {
                    "operation_id": op["id"],
                    "timestamp": int(op["created_at"].timestamp() * 1000),
                    "user_id": op["user_id"],
                    "before_root_ids": list(op["old_root_ids"]),
                    "after_root_ids": [made_by[seq]],
                    "is_merge": self._is_merge_like(op),
                    "user_name": op["user_id"],
                    "user_affiliation": "",
                }
            )
        return rows

    def user_operations(
        self, user: str | None, start: datetime | None = None, end: datetime | None = None, include_undo: bool = True
    ) -> list[dict]:
        """Operations by ``user`` (None: everyone) between two moments, oldest first."""
        return [dict(op) for op in self.operations_between(start, end, user, include_undo)]

    def operations_between(
        self, start: datetime | None, end: datetime | None, user: str | None = None, include_undo: bool = True
    ):
        """The operations (as this graph holds them: read, never change) between two moments, oldest
        first, without copying them; the request's time budget is checked as they are walked."""
        self.sync()
        first = 1 if start is None else bisect.bisect_left(self._op_times, _utc(start)) + 1
        last = self.index.seq if end is None else self.seq_at(end)
        for seq in range(first, last + 1):
            if seq % 4096 == 0:
                budget.check()
            op = self._ops[seq]
            if user is not None and op["user_id"] != user:
                continue
            if not include_undo and op["kind"] in ("undo", "redo"):
                continue
            yield op

    def valid_nodes(self, nodes, start: datetime | None = None, end: datetime | None = None) -> list[int]:
        """Those of ``nodes`` that are supervoxels of this graph or roots alive at some moment in [start, end]."""
        self.sync()
        first = 0 if start is None else self.seq_at(start)
        last = self.index.seq if end is None else self.seq_at(end)
        valid = []
        for node in nodes:
            node = int(node)
            if is_supervoxel(node):
                try:
                    self.index.index_of([node])
                except GraphError:
                    continue
                valid.append(node)
                continue
            try:
                rec = self.index.record(node)
            except GraphError:
                continue
            if rec.created_seq <= last and (rec.retired_seq is None or rec.retired_seq > first):
                valid.append(node)
        return valid

    def supervoxel_edges(self, root: int, bounds=None) -> np.ndarray:
        """Active edges between a root's supervoxels, as (n, 2) supervoxel ids (``bounds`` like :meth:`leaves`)."""
        self.sync()
        return self.index.active_edges(root, bounds)

    @staticmethod
    def _is_merge_like(op: dict) -> bool:
        """Undo of a split and redo of a merge join things, like a merge."""
        return any(on for _, _, on in op["edge_changes"])

    def delta_roots(self, past: datetime, future: datetime | None = None) -> tuple[list[int], list[int]]:
        """(roots retired, roots created) between two moments, counting only roots alive at the ends."""
        self.sync()
        s1 = self.seq_at(past)
        s2 = self.index.seq if future is None else self.seq_at(future)
        old, new = set(), set()
        for seq in range(s1 + 1, s2 + 1):
            op = self._ops[seq]
            old.update(r for r in op["old_root_ids"] if self.index.record(r).created_seq <= s1)
            new.update(r for r in op["new_root_ids"] if self.index.exists_at(r, s2))
        return sorted(old), sorted(new)

    def retired_by(self, root: int) -> dict | None:
        """The operation that retired ``root`` (its supervoxels went into other roots), or None while
        it is current: what a neuron's page offers to take back."""
        self.sync()
        seq = self.index.record(root).retired_seq
        return None if seq is None else dict(self._ops[seq])

    def operation(self, operation_id: int) -> dict:
        self.sync()
        if operation_id not in self._ops:
            raise GraphError(f"no operation {operation_id} in dataset {self.dataset!r}")
        return dict(self._ops[operation_id])

    # ---- edits --------------------------------------------------------------
    def merge(self, sv_a: int, sv_b: int, user: str, coords=None, origin: str = "") -> OperationResult:
        """Join the roots of two supervoxels; ``coords`` (the clicked points, voxels) are kept in the log."""
        return self.apply(Merge(int(sv_a), int(sv_b), coords), user, origin)

    def split(self, sources, sinks, user: str, coords=None, origin: str = "") -> OperationResult:
        """Minimum cut between sources and sinks of one root; ``coords`` = (source points, sink points)."""
        return self.apply(Split(tuple(int(s) for s in sources), tuple(int(s) for s in sinks), coords), user, origin)

    def preview_split(self, sources, sinks) -> list[list[int]]:
        """The supervoxel groups a split would make (sources' side first), without committing."""
        self.sync()
        with self._lock:
            return self.index.plan_split(sources, sinks)[2]

    def undo(self, operation_id: int, user: str, origin: str = "") -> OperationResult:
        return self.apply(Undo(int(operation_id)), user, origin)

    def redo(self, operation_id: int, user: str, origin: str = "") -> OperationResult:
        return self.apply(Redo(int(operation_id)), user, origin)

    def apply(self, operation: Operation, user: str, origin: str = "") -> OperationResult:
        """Commit one edit (a :mod:`~segmentation.graph.operations` object); ``operation.invert(id)``
        of the result's ``operation_id`` takes it back."""

        def plan(index: GraphIndex):
            target = getattr(operation, "operation_id", None)
            if target is not None and target not in self._ops:
                raise GraphError(f"no operation {target} in dataset {self.dataset!r}")
            planned = operation.plan(index, self._ops)
            return planned.changes, planned.params, planned.target_row

        return self._edit(operation.kind, user, plan, origin)

    def _edit(self, kind: str, user: str, plan, origin: str = "") -> OperationResult:
        """One edit in one transaction: lock, catch up, plan, write the operation and its audit entry."""
        with self._lock, self.engine.begin() as connection:
            state = GraphStateRow.__table__
            lock_for_writing(connection, self.dataset_id)  # first: edits of the graph go one at a time
            self._catch_up(connection)
            changes, params, target = plan(self.index)
            old_roots = self.index.plan_toggle(changes)
            new_roots = self.index.allocate_root_ids(self.index.count_components_after(changes))
            seq = self.index.seq + 1
            now = datetime.now(UTC)
            if self._op_times and now <= self._op_times[-1]:
                now = self._op_times[-1] + timedelta(microseconds=1)
            row = {
                "dataset_id": self.dataset_id,
                "seq": seq,
                "kind": kind,
                "user_id": str(user),
                "created_at": now,
                "params": params,
                "edge_changes": [[a, b, on] for a, b, on in changes],
                "old_root_ids": old_roots,
                "new_root_ids": list(new_roots),
                "target_operation_id": target,
                "pieces": None,
            }
            if not all(on for _, _, on in changes):  # a cut: keep its pieces, so replaying it is cheap
                row["pieces"] = pieces.encode(self.index.planned_components(changes), self.index.sv_ids)
            operation_id = connection.execute(
                sa.insert(GraphOperationRow.__table__).values(**row).returning(GraphOperationRow.__table__.c.id)
            ).scalar_one()
            connection.execute(sa.update(state).where(state.c.dataset_id == self.dataset_id).values(last_seq=seq))
            audit.record(
                connection,
                user=user,
                action=f"graph.{kind}",
                dataset=self.dataset,
                target=f"operation {seq}",
                origin=origin,
                detail={"old_root_ids": [str(r) for r in old_roots], "new_root_ids": [str(r) for r in new_roots]},
            )
            row["id"] = operation_id
        with self._lock:
            if self.index.seq == seq - 1:
                self._apply_row(row)
        self.edit_signal.raise_to(seq)  # committed: other processes here stop answering from memory alone
        self._compact_if_due()
        return OperationResult(seq, list(new_roots), old_roots, now)

    def compact(self, *, by: str = "system", origin: str = "") -> dict:
        """Fold every operation so far into a new base (:mod:`segmentation.graph.compaction`), written
        beside the current one (unchanged arrays hard-linked), and switch the graph to it."""
        started = time.perf_counter()
        with self.caught_up():
            self.sync()
            with self._lock:
                old, old_url = self.index.base, self.base_url
                if self.seq == old.seq:
                    return {"compacted": False, "seq": self.seq, "reason": "no operation since the base"}
                base = self.index.compacted()
        url = write_beside(base, old_url, f"dataset-{self.dataset_id}", reuse=old)
        state = GraphStateRow.__table__
        with self.engine.begin() as connection:
            lock_for_writing(connection, self.dataset_id)  # while switching
            current = connection.scalar(sa.select(state.c.base_url).where(state.c.dataset_id == self.dataset_id))
            switched = current == old_url
            if switched:
                connection.execute(sa.update(state).where(state.c.dataset_id == self.dataset_id).values(base_url=url))
                audit.record(
                    connection,
                    user=by,
                    action="graph.compact",
                    dataset=self.dataset,
                    origin=origin,
                    detail={"seq": base.seq, "folded": base.seq - old.seq},
                )
        if not switched:  # replaced, removed or compacted by someone else meanwhile
            discard_base(url)
            return {"compacted": False, "seq": base.seq, "reason": "the graph changed its base meanwhile"}
        # processes that mapped the old base keep reading its pages until their next sync switches them
        discard_base(old_url)
        return {
            "compacted": True,
            "seq": base.seq,
            "folded_operations": base.seq - old.seq,
            "history_entries": len(base.history_keys),
            "seconds": round(time.perf_counter() - started, 2),
            "base": url,
        }

    def _compact_if_due(self) -> None:
        """Past ``AXONLINK_COMPACT_AFTER`` operations beyond the base (0: never), compact in a
        background thread (one per graph at a time; of processes racing to switch, the losers
        discard their bases)."""
        threshold = int(os.environ.get("AXONLINK_COMPACT_AFTER", DEFAULT_COMPACT_AFTER))
        folded = max(self.index.base.seq, self._compaction_started_at)  # this graph switches at its next read
        if threshold <= 0 or self.index.seq - folded < threshold:
            return

        def run():
            try:  # on a graph of its own: this one's lock stays free for requests meanwhile
                Graph(self.database_url, self.dataset).compact(by="system", origin="automatic compaction")
            except Exception:  # logged; the graph goes on from its old base
                logging.getLogger("axonlink.graph").exception("compacting %s failed", self.dataset)

        with self._lock:
            if self._compacting is not None and self._compacting.is_alive():
                return
            self._compaction_started_at = self.index.seq
            self._compacting = threading.Thread(target=run, name=f"compact-{self.dataset}", daemon=True)
            self._compacting.start()


def _replay(index: GraphIndex, row: dict) -> None:
    """Bring ``index`` past one operation of the log: its lineage only when its base folded it in."""
    seq = row["seq"]
    if seq <= index.base.seq:
        joined = all(on for _, _, on in row["edge_changes"])
        index.fold(seq, row["old_root_ids"], row["new_root_ids"], joined=joined)
        return
    stored = None
    if row.get("pieces"):
        try:
            stored = tuple(pieces.decode(row["pieces"]))
        except BaseError:  # unreadable: the graph is searched instead
            logging.getLogger("axonlink.graph").warning("operation %s: stored pieces unreadable", seq)
    edit = Edit(
        tuple((int(a), int(b), bool(on)) for a, b, on in row["edge_changes"]),
        tuple(int(r) for r in row["new_root_ids"]),
        stored,
    )
    index.apply(edit, seq)
