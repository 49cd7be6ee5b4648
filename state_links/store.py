"""StateStore: Neuroglancer states kept compact, deduplicated and permanent in SQL.

A stored state never changes and its ids are never reused. It is reachable by
an integer id (what CAVE's state service hands out) and by a short random
base-62 id (what people paste); the short ids always hold a letter, so an
all-digit reference is an integer id. Posting the same state again (any key
order or whitespace) answers the first copy's ids.

Integer ids of new states are random in [2^40, 2^53) — exact in JavaScript, like CAVE's, and
not enumerable; states stored before that keep their small sequential ids. Each state is
tied to the datasets it names (``state_datasets``); :meth:`StateStore.get` is handed the
caller's "may view these datasets?" and answers :class:`StateNotFound` — the same text, after
the same database read — whether the state does not exist or the caller may not see it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import string
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from segmentation.db import engine_for
from segmentation.errors import NotFound
from segmentation.models import MAX_STATE_ID, MIN_RANDOM_STATE_ID, StateAnchorRow, StateDatasetRow, StateRow

from .codec import MAX_STATE_BYTES, content_key, decode, encode, parse_state

logger = logging.getLogger(__name__)
SHORT_ALPHABET = string.digits + string.ascii_letters
SHORT_LENGTH = 7  # 62**7 ≈ 3.5e12: unguessable enough to stop enumeration, short enough to read out
_VIEW_FLUSH_SECONDS = 2.0
_CACHE_STATES = 4096  # per process; states are immutable, so a cached one is never stale
_CACHE_BYTES = 64 * 1024 * 1024
_ID_ATTEMPTS = 8  # a random id or short id already taken: draw again (2^53 ids make this rare)

MayView = Callable[[frozenset], bool]  # "may the caller view every one of these datasets?"


def _head_query(column):
    """A state's id and the datasets it is tied to (one row per dataset; none when it does not exist),
    built once: every read runs it."""
    return (
        sa.select(StateRow.id, StateRow.dataset.label("legacy"), StateDatasetRow.dataset.label("tied"))
        .select_from(StateRow)
        .outerjoin(StateDatasetRow, StateDatasetRow.state_id == StateRow.id)
        .where(column == sa.bindparam("key"))
    )


_HEAD = {str: _head_query(StateRow.short_id), int: _head_query(StateRow.id)}


class StateNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Anchor:
    """A selected segment of a layer, pinned to a supervoxel of it (and a voxel inside, when known)."""

    layer: str
    segment_id: int
    dataset: str
    sv_id: int
    voxel: tuple[int, int, int] | None = None
    layer_index: int = -1  # position in the state's layers; -1: stored before positions were kept

    @property
    def layer_key(self) -> tuple[int, str]:
        """Which layer the anchor belongs to (index and name: two layers may share a name)."""
        return self.layer_index, self.layer


@dataclass(eq=False)
class StoredState:
    id: int
    short_id: str
    raw: bytes
    title: str
    description: str
    owner: str
    dataset: str | None
    created_at: datetime
    views: int
    raw_size: int
    stored_size: int
    anchors_loader: Callable[[], list[Anchor]] = field(default=list, repr=False)
    created: bool = False  # False when an identical state was stored before
    datasets: frozenset = frozenset()  # every dataset it names (anchors' and the legacy ``dataset`` included)

    @cached_property
    def etag(self) -> str:
        """The entity tag of its bytes, which never change (from the bytes, not the sequential id)."""
        return "state-" + hashlib.sha256(self.raw).hexdigest()[:24]

    @cached_property
    def anchors(self) -> list[Anchor]:
        """Read only when asked for (as=now, info): resolving a link as stored needs one query."""
        return self.anchors_loader()

    def info(self) -> dict:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "title": self.title,
            "description": self.description,
            "owner": self.owner,
            "dataset": self.dataset,
            "created": self.created_at.isoformat(),
            "views": self.views,
            "raw_bytes": self.raw_size,
            "stored_bytes": self.stored_size,
            "datasets": sorted(self.datasets),
            "anchors": [
                {
                    "layer": a.layer,
                    "layer_index": a.layer_index if a.layer_index >= 0 else None,
                    "segment_id": str(a.segment_id),
                    "dataset": a.dataset,
                    "supervoxel_id": str(a.sv_id),
                    "voxel": list(a.voxel) if a.voxel else None,
                }
                for a in self.anchors
            ],
        }


def new_state_id() -> int:
    """A random integer id in [2^40, 2^53): as wide as CAVE's, exact in JavaScript, not enumerable."""
    return MIN_RANDOM_STATE_ID + secrets.randbelow(MAX_STATE_ID + 1 - MIN_RANDOM_STATE_ID)


def new_short_id() -> str:
    while True:
        short = "".join(secrets.choice(SHORT_ALPHABET) for _ in range(SHORT_LENGTH))
        if not short.isdigit():
            return short


def is_short_id(text: str) -> bool:
    return 0 < len(text) <= 16 and not text.isdigit() and all(c in SHORT_ALPHABET for c in text)


class StateStore:
    """Save and load states; views are counted in memory and written every few seconds."""

    def __init__(self, database_url: str, max_bytes: int = MAX_STATE_BYTES):
        self.engine = engine_for(database_url)
        self.max_bytes = max_bytes
        self._views: Counter[int] = Counter()
        self._views_lock = threading.Lock()
        self._flushed_at = time.monotonic()
        self._cache: OrderedDict[str | int, StoredState] = OrderedDict()
        self._heads: dict[str | int, tuple[frozenset, float]] = {}  # key -> (datasets, when read)
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()

    def parse(self, raw: bytes) -> dict:
        """The state as a dict, or StateRejected (4xx) for anything Neuroglancer would not have written."""
        return parse_state(raw, max_bytes=self.max_bytes)

    def save(
        self,
        raw: bytes,
        state: dict,
        *,
        title: str = "",
        description: str = "",
        owner: str = "anonymous",
        dataset: str | None = None,
        anchors=(),
        datasets: Iterable[str] = (),
    ) -> StoredState:
        """Store ``raw`` (already parsed into ``state``) unless the same state is stored; return it.

        ``datasets``: every dataset the state names (the caller checked the poster may view them);
        the anchors' datasets and ``dataset`` are added. An identical state stored before is tied
        to these too (another host spelling may have named fewer), so a tie is never lost.
        """
        ties = frozenset(datasets) | {a.dataset for a in anchors} | ({dataset} if dataset else frozenset())
        anchors = list({(a.layer_index, a.layer, a.segment_id): a for a in anchors}.values())
        key = content_key(state)
        existing = self._by_key(key)
        if existing is not None:
            return self._tie_more(existing, ties)
        codec, blob = encode(raw)
        for _ in range(_ID_ATTEMPTS):
            row = {
                "id": new_state_id(),
                "short_id": new_short_id(),
                "content_key": key,
                "codec": codec,
                "blob": blob,
                "raw_size": len(raw),
                "title": title[:1000],
                "description": description[:10000],
                "owner": owner,
                "dataset": dataset,
                "created_at": datetime.now(UTC),
                "views": 0,
            }
            try:
                with self.engine.begin() as connection:
                    connection.execute(sa.insert(StateRow).values(**row))
                    if ties:
                        connection.execute(
                            sa.insert(StateDatasetRow),
                            [{"state_id": row["id"], "dataset": name} for name in sorted(ties)],
                        )
                    if anchors:
                        connection.execute(sa.insert(StateAnchorRow), [_anchor_row(row["id"], a) for a in anchors])
            except IntegrityError:
                existing = self._by_key(key)  # the same state, stored by a concurrent request
                if existing is not None:
                    return self._tie_more(existing, ties)
                continue  # the random id or short id was taken: draw again
            return StoredState(
                id=row["id"],
                short_id=row["short_id"],
                raw=raw,
                title=row["title"],
                description=row["description"],
                owner=owner,
                dataset=dataset,
                created_at=row["created_at"],
                views=0,
                raw_size=len(raw),
                stored_size=len(blob),
                anchors_loader=lambda: list(anchors),
                created=True,
                datasets=ties,
            )
        raise RuntimeError(f"no free state id after {_ID_ATTEMPTS} random draws")

    def _tie_more(self, stored: StoredState, ties: frozenset) -> StoredState:
        """``stored`` tied to ``ties`` as well (rows added; a concurrent request may add the same ones)."""
        missing = ties - stored.datasets
        for name in sorted(missing):
            try:
                with self.engine.begin() as connection:
                    connection.execute(sa.insert(StateDatasetRow).values(state_id=stored.id, dataset=name))
            except IntegrityError:
                pass  # tied by a concurrent request
        if missing:
            self._forget(stored)
        return dataclasses.replace(stored, datasets=stored.datasets | missing)

    def get(self, ref: str | int, *, may_view: MayView) -> StoredState:
        """A state by integer id or short id, if ``may_view(its datasets)``; StateNotFound otherwise.

        Missing and not visible are one answer: the same message, after the same read (the state's
        id and datasets, fresh from the database even when the state is cached — ties may grow).
        Stored states never change, so the rest is kept in a small per-process cache (views aside:
        :meth:`info_of` reads those fresh).
        """
        key = self._normalise(ref)
        datasets = self._visible_head(key, may_view)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None:
            return cached if cached.datasets == datasets else dataclasses.replace(cached, datasets=datasets)
        stored = self._load(*self._condition(key), datasets=datasets)
        self._remember(stored)
        return stored

    def recently_read(self, ref: str, *, may_view: MayView, max_age: float) -> StoredState | None:
        """The state, from memory alone, when it is cached and its datasets were read from the database
        less than ``max_age`` seconds ago and ``may_view`` them; None otherwise (ask :meth:`get`).

        For the server's fast path (no SQL on a link resolve): it accepts that a state tied to one
        more dataset within the last ``max_age`` seconds (ties only grow) shows as it did before."""
        try:
            key = self._normalise(ref)
        except StateNotFound:
            return None
        head = self._heads.get(key)
        if head is None or time.monotonic() - head[1] > max_age:
            return None
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is None or not may_view(head[0]):
            return None
        return cached if cached.datasets == head[0] else dataclasses.replace(cached, datasets=head[0])

    def info_of(self, ref: str | int, *, may_view: MayView) -> StoredState:
        """Like :meth:`get`, with the view count as of now."""
        key = self._normalise(ref)
        datasets = self._visible_head(key, may_view)
        return self._load(*self._condition(key), datasets=datasets)

    def _visible_head(self, key: str | int, may_view: MayView) -> frozenset:
        """The state's datasets, or StateNotFound when it does not exist or ``may_view`` says no."""
        with self.engine.connect() as connection:
            rows = connection.execute(_HEAD[type(key)], {"key": key}).all()
        datasets = frozenset(name for row in rows for name in (row.legacy, row.tied) if name)
        if not rows or not may_view(datasets):
            with self._cache_lock:
                self._heads.pop(key, None)
            raise StateNotFound(self._condition(key)[1])
        with self._cache_lock:
            self._heads.pop(key, None)
            if len(self._heads) >= 2 * _CACHE_STATES:
                del self._heads[next(iter(self._heads))]  # the longest unread
            self._heads[key] = (datasets, time.monotonic())
        return datasets

    def datasets_of(self, state_ids) -> dict[int, frozenset]:
        """The datasets each of ``state_ids`` is tied to, read in a few queries (missing ids are
        left out): to show lists of states (an alias's history) only where the caller may view them."""
        found: dict[int, set] = {}
        ids = sorted({int(i) for i in state_ids})
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 1000):
                part = ids[start : start + 1000]
                for row in connection.execute(sa.select(StateRow.id, StateRow.dataset).where(StateRow.id.in_(part))):
                    found[row.id] = {row.dataset} - {None}
                for state_id, name in connection.execute(
                    sa.select(StateDatasetRow.state_id, StateDatasetRow.dataset).where(
                        StateDatasetRow.state_id.in_(part)
                    )
                ):
                    found.setdefault(state_id, set()).add(name)
        return {state_id: frozenset(names) for state_id, names in found.items()}

    @staticmethod
    def _normalise(ref: str | int) -> str | int:
        if isinstance(ref, str):
            if ref.isdigit():
                ref = int(ref)
            elif not is_short_id(ref):
                raise StateNotFound(f"no state {ref!r}")
        if isinstance(ref, int) and not 0 < ref <= MAX_STATE_ID:
            raise StateNotFound(f"no state {ref!r}")
        return ref

    @staticmethod
    def _condition(key: str | int):
        column = StateRow.short_id if isinstance(key, str) else StateRow.id
        return column == key, f"no state {key!r}"

    def _forget(self, stored: StoredState) -> None:
        with self._cache_lock:
            for key in (stored.id, stored.short_id):
                self._heads.pop(key, None)
                dropped = self._cache.pop(key, None)
                if dropped is not None:
                    self._cache_bytes -= len(dropped.raw)

    def _remember(self, stored: StoredState) -> None:
        with self._cache_lock:
            for key in (stored.id, stored.short_id):
                self._cache[key] = stored
            self._cache_bytes += 2 * len(stored.raw)
            while self._cache and (len(self._cache) > 2 * _CACHE_STATES or self._cache_bytes > _CACHE_BYTES):
                _, dropped = self._cache.popitem(last=False)
                self._cache_bytes -= len(dropped.raw)

    def count_view(self, state: StoredState, *, flush_in_background: bool = False) -> None:
        """Count one view (written with others every few seconds; ``flush_in_background``: by a thread
        of its own, for a caller that must not wait on the database)."""
        with self._views_lock:
            self._views[state.id] += 1
            due = time.monotonic() - self._flushed_at > _VIEW_FLUSH_SECONDS
            if due:
                self._flushed_at = time.monotonic()  # one flush at a time starts
        if due and flush_in_background:
            threading.Thread(target=self.flush_views, name="state-views", daemon=True).start()
        elif due:
            self.flush_views()

    def flush_views(self) -> None:
        with self._views_lock:
            pending, self._views = self._views, Counter()
            self._flushed_at = time.monotonic()
        if not pending:
            return
        try:
            with self.engine.begin() as connection:
                for state_id in sorted(pending):  # one lock order in every process: no deadlocks
                    connection.execute(
                        sa.update(StateRow)
                        .where(StateRow.id == state_id)
                        .values(views=StateRow.views + pending[state_id])
                    )
        except sa.exc.DBAPIError:
            # a view count is not worth failing a request for: keep the counts for the next flush
            logger.warning("could not record state views; will retry", exc_info=True)
            with self._views_lock:
                self._views.update(pending)

    # ---- internals ------------------------------------------------------
    def _by_key(self, key: str) -> StoredState | None:
        try:
            return self._load(StateRow.content_key == key, "")
        except StateNotFound:
            return None

    def _load(self, condition, missing: str, datasets: frozenset | None = None) -> StoredState:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(StateRow).where(condition)).mappings().first()
            if row is not None and datasets is None:
                tied = connection.execute(
                    sa.select(StateDatasetRow.dataset).where(StateDatasetRow.state_id == row["id"])
                ).scalars()
                datasets = frozenset(tied) | ({row["dataset"]} if row["dataset"] else frozenset())
        if row is None:
            raise StateNotFound(missing)
        created = row["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        with self._views_lock:
            pending = self._views.get(row["id"], 0)
        return StoredState(
            id=row["id"],
            short_id=row["short_id"],
            raw=decode(row["codec"], row["blob"]),
            title=row["title"],
            description=row["description"],
            owner=row["owner"],
            dataset=row["dataset"],
            created_at=created,
            views=row["views"] + pending,
            raw_size=row["raw_size"],
            stored_size=len(row["blob"]),
            anchors_loader=lambda: self._anchors(row["id"]),
            datasets=datasets,
        )

    def _anchors(self, state_id: int) -> list[Anchor]:
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    sa.select(StateAnchorRow)
                    .where(StateAnchorRow.state_id == state_id)
                    .order_by(StateAnchorRow.layer_index, StateAnchorRow.layer, StateAnchorRow.segment_id)
                )
                .mappings()
                .all()
            )
        return [
            Anchor(
                a["layer"],
                int(a["segment_id"]),
                a["dataset"],
                int(a["sv_id"]),
                (a["x"], a["y"], a["z"]) if a["x"] is not None else None,
                int(a["layer_index"]),
            )
            for a in rows
        ]


def _anchor_row(state_id: int, a: Anchor) -> dict:
    return {
        "state_id": state_id,
        "layer_index": a.layer_index,
        "layer": a.layer[:256],
        "segment_id": a.segment_id,
        "dataset": a.dataset,
        "sv_id": a.sv_id,
        "x": a.voxel[0] if a.voxel else None,
        "y": a.voxel[1] if a.voxel else None,
        "z": a.voxel[2] if a.voxel else None,
    }
