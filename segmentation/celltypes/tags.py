"""CellTags: cell-type tags bound to a voxel, so they follow the neuron through every edit.

A tag stores the supervoxel under its voxel (looked up once, at creation). The neuron it
names at moment T is the root of that supervoxel at T, asked of the versioned graph — no
re-materialization after merges and splits. Tags are never deleted: retracting records
when and by whom. SQL is the source of truth; each process keeps every tag in numpy
columns (:class:`TagIndex`) and follows creations and retractions by ``change_seq``, the
way :class:`segmentation.graph.Graph` follows the operation log.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

from ..access import audit
from ..db import engine_for, next_number
from ..errors import Invalid, NotFound
from ..graph.points import OnBackground, PointOutsideVolume, supervoxel_at_voxel
from ..models import MAX_ROW_ID, CellTagPurgeRow, CellTagRow, CellTagStateRow, DatasetRow
from .vocabulary import UnknownTerm, Vocabulary

if TYPE_CHECKING:  # in annotations only: the registry calls in here (purge_dataset), never the other way
    from ..datasets import Dataset

NOT_RETRACTED = math.inf
_DERIVED_PER_KIND = 16  # e.g. neuron groupings of 16 moments (graph states)


class TagError(Invalid):
    """A tag that cannot be made or changed (bad term, outside the volume, background …): a 4xx."""

    def __init__(self, message: str, suggestions=(), unknown_term: str | None = None):
        super().__init__(message)
        self.suggestions = list(suggestions)
        self.unknown_term = unknown_term  # set when the vocabulary does not know the term


class TagNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Tag:
    id: int
    dataset: str
    sv_id: int
    voxel: tuple[int, int, int]
    term: str
    note: str
    confidence: float | None
    user: str
    created_at: datetime
    retracted_at: datetime | None = None
    retracted_by: str | None = None

    def alive_at(self, at: datetime | None) -> bool:
        if at is None:
            return self.retracted_at is None
        return self.created_at <= at and (self.retracted_at is None or self.retracted_at > at)

    def to_json(self, root_id: int | None = None) -> dict:
        answer = {
            "id": self.id,
            "dataset": self.dataset,
            "term": self.term,
            "note": self.note,
            "confidence": self.confidence,
            "user": self.user,
            "position": list(self.voxel),
            "supervoxel_id": str(self.sv_id),
            "created": self.created_at.isoformat(),
            "retracted": self.retracted_at.isoformat() if self.retracted_at else None,
            "retracted_by": self.retracted_by,
        }
        if root_id is not None:
            answer["root_id"] = str(root_id)
        return answer


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class _Codes:
    """Strings ↔ small integers (datasets, terms, users), so the index filters with numpy."""

    def __init__(self):
        self.names: list[str] = []
        self.codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        found = self.codes.get(name)
        if found is None:
            found = self.codes[name] = len(self.names)
            self.names.append(name)
        return found

    def known(self, names) -> np.ndarray:
        return np.array([self.codes[n] for n in names if n in self.codes], dtype=np.int32)


class TagIndex:
    """Every tag of every dataset as numpy columns (one row per tag, in id order)."""

    def __init__(self):
        self.datasets, self.terms, self.users = _Codes(), _Codes(), _Codes()
        self.seq = 0
        self._rows: list[tuple] = []  # appended since the columns were last built
        self._retractions: list[tuple[int, float, str]] = []
        self.notes: list[str] = []
        self.retracted_by: dict[int, str] = {}
        self._derived: dict = {}  # per-dataset positions and supervoxel order, rebuilt after changes
        self._build_empty()

    def _build_empty(self):
        self.ids = np.zeros(0, dtype=np.int64)
        self.dataset = np.zeros(0, dtype=np.int32)
        self.sv = np.zeros(0, dtype=np.uint64)
        self.term = np.zeros(0, dtype=np.int32)
        self.user = np.zeros(0, dtype=np.int32)
        self.created = np.zeros(0, dtype=np.float64)
        self.retracted = np.zeros(0, dtype=np.float64)
        self.xyz = np.zeros((0, 3), dtype=np.int32)
        self.confidence = np.zeros(0, dtype=np.float64)

    def add_rows(self, rows) -> None:
        """Rows of cell_tags (mappings), in change order: new tags are appended, retractions applied."""
        for row in rows:
            if row["id"] > (self._rows[-1][0] if self._rows else (self.ids[-1] if len(self.ids) else 0)):
                self._rows.append(
                    (
                        row["id"],
                        self.datasets.code(row["dataset"]),
                        int(row["sv_id"]),
                        self.terms.code(row["term"]),
                        self.users.code(row["user_id"]),
                        _utc(row["created_at"]).timestamp(),
                        row["x"],
                        row["y"],
                        row["z"],
                        row["confidence"] if row["confidence"] is not None else math.nan,
                    )
                )
                self.notes.append(row["note"] or "")
            if row["retracted_at"] is not None:
                self._retractions.append((row["id"], _utc(row["retracted_at"]).timestamp(), row["retracted_by"]))
            self.seq = max(self.seq, int(row["change_seq"]))

    def drop_dataset(self, name: str) -> None:
        """Forget every tag of a removed dataset (its rows were deleted with a purge)."""
        code = self.datasets.codes.get(name)
        if code is None:
            return
        self.columns()
        keep = self.dataset != code
        dropped = set(self.ids[~keep].tolist())
        for column in ("ids", "dataset", "sv", "term", "user", "created", "retracted", "xyz", "confidence"):
            setattr(self, column, getattr(self, column)[keep])
        self.notes = [note for note, kept in zip(self.notes, keep.tolist()) if kept]
        self.retracted_by = {k: v for k, v in self.retracted_by.items() if k not in dropped}
        self._derived = {}

    def columns(self) -> TagIndex:
        """Fold pending rows into the columns (cheap when nothing is pending)."""
        if self._rows:
            ids, ds, sv, term, user, created, x, y, z, conf = zip(*self._rows)
            self.ids = np.concatenate([self.ids, np.array(ids, dtype=np.int64)])
            self.dataset = np.concatenate([self.dataset, np.array(ds, dtype=np.int32)])
            self.sv = np.concatenate([self.sv, np.array(sv, dtype=np.uint64)])
            self.term = np.concatenate([self.term, np.array(term, dtype=np.int32)])
            self.user = np.concatenate([self.user, np.array(user, dtype=np.int32)])
            self.created = np.concatenate([self.created, np.array(created, dtype=np.float64)])
            self.retracted = np.concatenate([self.retracted, np.full(len(ids), NOT_RETRACTED)])
            self.xyz = np.concatenate([self.xyz, np.stack([x, y, z], axis=1).astype(np.int32)])
            self.confidence = np.concatenate([self.confidence, np.array(conf, dtype=np.float64)])
            self._rows = []
            self._derived = {}
        if self._retractions:
            ids, when, who = zip(*self._retractions)
            positions = np.searchsorted(self.ids, np.array(ids, dtype=np.int64))
            self.retracted[positions] = when
            self.retracted_by.update(zip(ids, who))
            self._retractions = []
            self._derived = {}
        return self

    def positions_of(self, dataset_code: int) -> np.ndarray:
        """Positions of one dataset's tags (cached until the next change)."""
        key = ("positions", dataset_code)
        if key not in self._derived:
            self._derived[key] = np.flatnonzero(self.dataset == dataset_code)
        return self._derived[key]

    def by_supervoxel(self, dataset_code: int) -> tuple[np.ndarray, np.ndarray]:
        """(supervoxels sorted, their tag positions) of one dataset: tags on given supervoxels by searchsorted."""
        key = ("by_sv", dataset_code)
        if key not in self._derived:
            positions = self.positions_of(dataset_code)
            order = np.argsort(self.sv[positions], kind="stable")
            self._derived[key] = (self.sv[positions][order], positions[order])
        return self._derived[key]

    def derived(self, key):
        """Something computed from the columns (None if not, or no longer, known)."""
        return self._derived.get(key)

    def remember(self, key, value):
        """Keep ``value`` until the next change of the tags (at most a few moments' worth)."""
        moments = [k for k in self._derived if k[0] == key[0]]
        if len(moments) >= _DERIVED_PER_KIND:
            del self._derived[moments[0]]
        self._derived[key] = value
        return value

    def forget_kind(self, kind: str) -> None:
        """Drop every remembered value of one kind (a caller that keeps only its newest large one)."""
        for key in [k for k in self._derived if k[0] == kind]:
            del self._derived[key]

    def alive_among(self, positions: np.ndarray, at: datetime | None) -> np.ndarray:
        """Mask over ``positions`` of the tags in force at ``at``."""
        if at is None:
            return self.retracted[positions] == NOT_RETRACTED
        t = _utc(at).timestamp()
        return (self.created[positions] <= t) & (self.retracted[positions] > t)

    def alive(self, at: datetime | None) -> np.ndarray:
        """Mask of tags in force at ``at`` (None: now)."""
        if at is None:
            return self.retracted == NOT_RETRACTED
        t = _utc(at).timestamp()
        return (self.created <= t) & (self.retracted > t)

    def tag(self, position: int) -> Tag:
        retracted = self.retracted[position]
        tag_id = int(self.ids[position])
        return Tag(
            id=tag_id,
            dataset=self.datasets.names[self.dataset[position]],
            sv_id=int(self.sv[position]),
            voxel=tuple(int(v) for v in self.xyz[position]),
            term=self.terms.names[self.term[position]],
            note=self.notes[position],
            confidence=None if math.isnan(self.confidence[position]) else float(self.confidence[position]),
            user=self.users.names[self.user[position]],
            created_at=datetime.fromtimestamp(self.created[position], tz=UTC),
            retracted_at=None if retracted == NOT_RETRACTED else datetime.fromtimestamp(retracted, tz=UTC),
            retracted_by=self.retracted_by.get(tag_id),
        )


def next_change(connection) -> int:
    """Take the tag write lock (row lock / SQLite writer) and hand out the next change number."""
    return next_number(connection, CellTagStateRow.__table__)


def purge_dataset(connection, dataset_id: int, name: str) -> int:
    """Delete a removed dataset's tags under the next change number, recorded so that every
    process drops them from its index; returns how many were deleted."""
    seq = next_change(connection)
    connection.execute(sa.insert(CellTagPurgeRow).values(change_seq=seq, dataset=name))
    return connection.execute(sa.delete(CellTagRow).where(CellTagRow.dataset_id == dataset_id)).rowcount


class CellTags:
    """The tags of one database (all datasets), kept in step across processes."""

    def __init__(self, database_url: str, graphs=None):
        """``graphs``: the registry whose graphs give tags their roots (the workspace's; else its own)."""
        from ..graph.registry import Graphs

        self.database_url = database_url
        self.graphs = graphs if graphs is not None else Graphs(database_url)
        self.engine = engine_for(database_url)
        self.index = TagIndex()
        self._lock = threading.RLock()
        self.sync()

    # ---- following the table ---------------------------------------------
    def sync(self) -> TagIndex:
        """Apply creations and retractions other processes committed; return the index, up to date."""
        with self.engine.connect() as connection:
            last = connection.scalar(sa.select(CellTagStateRow.last_seq).where(CellTagStateRow.id == 1)) or 0
            if last != self.index.seq:
                with self._lock:
                    self._catch_up(connection)
        with self._lock:
            return self.index.columns()

    def _catch_up(self, connection) -> None:
        purges = connection.execute(
            sa.select(CellTagPurgeRow.change_seq, CellTagPurgeRow.dataset)
            .where(CellTagPurgeRow.change_seq > self.index.seq)
            .order_by(CellTagPurgeRow.change_seq)
        ).all()
        for seq, dataset in purges:  # rows of a dataset of that name added later have higher numbers
            self.index.drop_dataset(dataset)
            self.index.seq = max(self.index.seq, int(seq))
        table = CellTagRow.__table__
        rows = (
            connection.execute(
                sa.select(table, DatasetRow.name.label("dataset"))
                .join(DatasetRow, DatasetRow.id == table.c.dataset_id)
                .where(table.c.change_seq > self.index.seq)
                .order_by(table.c.change_seq, table.c.id)
            )
            .mappings()
            .all()
        )
        self.index.add_rows(rows)

    def _next_seq(self, connection) -> int:
        return next_change(connection)

    # ---- writes -------------------------------------------------------------
    def add(
        self,
        dataset: Dataset,
        voxel,
        term: str,
        user: str,
        vocabulary: Vocabulary,
        note: str = "",
        confidence: float | None = None,
        origin: str = "",
    ) -> Tag:
        """Tag the neuron at ``voxel`` (full-resolution voxels) of ``dataset``; TagError if that cannot be."""
        self._check_taggable(dataset)
        checked = self._checked(
            dataset, {"voxel": voxel, "term": term, "note": note, "confidence": confidence}, vocabulary
        )
        return self._store(dataset, [checked], user, origin)[0]

    def add_many(self, dataset: Dataset, rows, user: str, vocabulary: Vocabulary, origin: str = ""):
        """Tag many points in one transaction: (tags added, [(row number, reason) for rows refused]).

        A refused row (bad term, outside the volume, background, bad confidence) is reported and
        skipped; the others are all stored, or none if the database fails.
        """
        self._check_taggable(dataset)
        accepted, rejected = [], []
        for number, row in enumerate(rows, start=1):
            try:
                accepted.append(self._checked(dataset, row, vocabulary))
            except TagError as error:
                rejected.append((number, str(error)))
        return (self._store(dataset, accepted, user, origin) if accepted else []), rejected

    def _check_taggable(self, dataset: Dataset) -> None:
        """Tags name neurons: an image-only dataset has none (NoSegmentation, 409), a segmentation
        without a graph none yet (TagError)."""
        dataset.segmentation_layer("cell-type tags name neurons, and an image-only dataset has none")
        if self.graphs.find(dataset.name) is None:
            raise TagError(f"dataset {dataset.name!r} has no graph: run `axonlink ingest-graph {dataset.name}` first")

    def _store(self, dataset: Dataset, accepted, user: str, origin: str = "") -> list[Tag]:
        """Insert the tags; answer exactly the rows this call wrote (by the ids the insert returned),
        never "the newest rows", which a concurrent writer's tags could be."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            seq = self._next_seq(connection)
            dataset_id = connection.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == dataset.name))
            inserted = connection.execute(
                sa.insert(CellTagRow).returning(CellTagRow.id, sort_by_parameter_order=True),
                [
                    {
                        "dataset_id": dataset_id,
                        "sv_id": sv,
                        "x": v[0],
                        "y": v[1],
                        "z": v[2],
                        "term": term,
                        "note": note,
                        "confidence": confidence,
                        "user_id": str(user),
                        "created_at": now,
                        "change_seq": seq,
                    }
                    for sv, v, term, note, confidence in accepted
                ],
            )
            ids = np.array(inserted.scalars().all(), dtype=np.int64)
            audit.record(
                connection,
                user=user,
                action="tag.add",
                dataset=dataset.name,
                origin=origin,
                target=f"{len(accepted)} tag(s), change {seq}",
                detail={"change_seq": seq, "terms": sorted({a[2] for a in accepted})},
            )
        index = self.sync()
        return [index.tag(int(p)) for p in np.searchsorted(index.ids, ids)]

    def _checked(self, dataset: Dataset, row: dict, vocabulary: Vocabulary):
        try:
            voxel = [int(v) for v in row["voxel"]]
            if len(voxel) != 3:
                raise ValueError
        except (TypeError, ValueError, KeyError, OverflowError):
            raise TagError("position must be three integers x, y, z (full-resolution voxels)") from None
        try:
            term = vocabulary.resolve(str(row.get("term") or ""))
        except UnknownTerm as error:
            raise TagError(str(error), error.suggestions, unknown_term=error.term) from None
        confidence = row.get("confidence")
        if confidence is not None:
            try:
                confidence = float(confidence)
            except (TypeError, ValueError, OverflowError):
                raise TagError(f"confidence must be a number from 0 to 1, not {confidence!r}") from None
            if not 0 <= confidence <= 1:
                raise TagError(f"confidence must be a number from 0 to 1, not {confidence!r}")
        note = str(row.get("note") or "")
        if len(note) > 10_000:
            raise TagError("note is longer than 10,000 characters")
        try:
            sv = supervoxel_at_voxel(dataset, voxel)
        except (PointOutsideVolume, OnBackground) as error:
            raise TagError(str(error)) from None
        return sv, voxel, term, note, confidence

    def retract(self, tag_id: int, user: str, origin: str = "") -> Tag:
        if not 0 < tag_id <= MAX_ROW_ID:
            raise TagNotFound(f"no tag {tag_id}")
        with self.engine.begin() as connection:
            row = connection.execute(
                sa.select(CellTagRow.retracted_at, DatasetRow.name, CellTagRow.term)
                .join(DatasetRow, DatasetRow.id == CellTagRow.dataset_id)
                .where(CellTagRow.id == tag_id)
            ).first()
            if row is None:
                raise TagNotFound(f"no tag {tag_id}")
            if row[0] is not None:
                raise TagError(f"tag {tag_id} was already retracted")
            seq = self._next_seq(connection)
            connection.execute(
                sa.update(CellTagRow)
                .where(CellTagRow.id == tag_id)
                .values(retracted_at=datetime.now(UTC), retracted_by=str(user), change_seq=seq)
            )
            audit.record(
                connection,
                user=user,
                action="tag.retract",
                dataset=row[1],
                target=f"tag {tag_id}",
                detail={"term": row[2]},
                origin=origin,
            )
        return self.get(tag_id)

    # ---- reads --------------------------------------------------------------
    def get(self, tag_id: int) -> Tag:
        index = self.sync()
        position = int(np.searchsorted(index.ids, tag_id))
        if position >= len(index.ids) or index.ids[position] != tag_id:
            raise TagNotFound(f"no tag {tag_id}")
        return index.tag(position)

    def of_dataset(
        self, dataset: str, at: datetime | None = None, root_id: int | None = None, include_retracted: bool = False
    ) -> list[tuple[Tag, int]]:
        """(tag, root of its supervoxel at ``at``) for the dataset's tags in force at ``at``."""
        index = self.sync()
        code = index.datasets.codes.get(dataset)
        if code is None:
            return []
        mask = index.dataset == code
        if not include_retracted:
            mask &= index.alive(at)
        positions = np.flatnonzero(mask)
        roots = self.roots_of(dataset, index.sv[positions], at)
        if root_id is not None:
            keep = roots == np.uint64(root_id)
            positions, roots = positions[keep], roots[keep]
        return [(index.tag(int(p)), int(r)) for p, r in zip(positions, roots)]

    def roots_of(self, dataset: str, supervoxels: np.ndarray, at: datetime | None) -> np.ndarray:
        graph = self.graphs.find(dataset)
        if graph is None or not len(supervoxels):
            return np.asarray(supervoxels, dtype=np.uint64)
        return graph.roots(supervoxels, at)
