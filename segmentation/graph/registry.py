"""The graphs of one database that a service keeps open: ``Graphs``.

A graph is loaded once and then kept in step with the operation log, so whoever serves requests
holds its graphs here — the server's :class:`~server.workspace.Workspace` owns one ``Graphs`` —
instead of in class or module state. That a dataset has no graph is remembered for
:data:`ABSENT_SECONDS` (serving skips SQL for it). An ingest, a replace or a removal in this
process reaches every open registry of its database through :func:`forget_everywhere`; other
processes notice at their next read (the graph's state row is gone or newer).
"""

from __future__ import annotations

import threading
import time
import weakref

from ..models import GraphStateRow
from .edit_signal import UNKNOWN
from .graph import Graph

ABSENT_SECONDS = 5.0
_registries: weakref.WeakSet[Graphs] = weakref.WeakSet()  # only to reach them on forget_everywhere


class Graphs:
    def __init__(self, database_url: str):
        self.database_url = database_url
        self._open: dict[str, Graph] = {}
        self._absent: dict[str, float] = {}
        self._lock = threading.Lock()
        _registries.add(self)

    def find(self, dataset: str) -> Graph | None:
        """The dataset's graph, or None when it has none."""
        graph = self._open.get(dataset)
        if graph is not None:
            return graph
        checked = self._absent.get(dataset)
        if checked is not None and time.monotonic() - checked < ABSENT_SECONDS:
            return None
        try:
            return self.open(dataset)
        except LookupError:  # no such dataset, or no graph ingested yet
            self._absent[dataset] = time.monotonic()
            return None

    def find_in_memory(self, dataset: str) -> tuple[bool, Graph | None]:
        """(known, graph) without touching the database: known is False when :meth:`find` would have
        to load the graph or look again for one."""
        graph = self._open.get(dataset)
        if graph is not None:
            return True, graph
        checked = self._absent.get(dataset)
        return checked is not None and time.monotonic() - checked < ABSENT_SECONDS, None

    def open(self, dataset: str) -> Graph:
        """The dataset's graph (loaded on first use); LookupError (GraphNotIngested …) without one."""
        with self._lock:
            graph = self._open.get(dataset)
            if graph is None:
                graph = Graph(self.database_url, dataset)
                graph.on_gone = _forgetting(self)
                self._open[dataset] = graph
                self._absent.pop(dataset, None)
        return graph

    def forget(self, dataset: str) -> None:
        """Drop the dataset's graph and any remembered absence: the next find() reads what is there."""
        with self._lock:
            self._open.pop(dataset, None)
            self._absent.pop(dataset, None)


#: How often the follower asks the database when no edit was signalled on this machine: what edits
#: made on other machines (and compactions) wait at most, besides the graph's own reads.
QUIET_POLL_SECONDS = 0.25


def follow(registry: Graphs, interval: float, quiet_interval: float = QUIET_POLL_SECONDS) -> threading.Thread:
    """Keep ``registry``'s open graphs in step with the log in the background, so that a request
    seldom replays other processes' edits itself (a server worker starts this; it stops once the
    registry is gone).

    Every ``interval`` seconds it looks at each graph's edit counter on this machine
    (:mod:`~segmentation.graph.edit_signal`, a memory read) and asks the database at once when an
    edit was made here that the graph has not read; otherwise it asks every ``quiet_interval``
    seconds (edits made on other machines, compactions). Asking every ``interval`` cost each idle
    worker about 10 ms of CPU a second, a tenth of a server's CPU during a CloudVolume cutout."""
    reference = weakref.ref(registry)

    def run():
        poll = StatePoll()
        asked = 0.0
        try:
            while True:
                time.sleep(interval)
                found = reference()
                if found is None:
                    return
                graphs = list(found._open.values())
                del found  # hold the registry only while listing its graphs (they point back to it)
                now = time.monotonic()
                if now - asked >= quiet_interval or any(_edited_here(graph) for graph in graphs):
                    _sync_all(graphs, poll)
                    asked = now
                del graphs
        finally:
            poll.close()

    thread = threading.Thread(target=run, name="graphs-follow", daemon=True)
    thread.start()
    return thread


class StatePoll:
    """Every graph's state row, read on one DBAPI connection kept for the purpose.

    A follower asks about 33 times a second in every server worker, mostly to hear "nothing new".
    Through SQLAlchemy's connection and result layers that cost about 90 µs of Python per query in
    a quiet process and far more in a busy one (each worker spent 28 ms of CPU a second idle,
    a fifth of a server's CPU during a CloudVolume cutout); the same query on a kept DBAPI cursor
    costs about 6 µs."""

    SQL = f"SELECT dataset_id, last_seq, base_url FROM {GraphStateRow.__tablename__}"

    def __init__(self):
        self._engine = None
        self._connection = None

    def rows(self, engine) -> list[tuple]:
        if self._engine is not engine:
            self.close()
            self._connection, self._engine = engine.raw_connection(), engine
        try:
            cursor = self._connection.cursor()
            try:
                cursor.execute(self.SQL)
                rows = cursor.fetchall()
            finally:
                cursor.close()
            self._connection.rollback()  # end the read: PostgreSQL would keep its snapshot open
        except Exception:
            self._connection.invalidate()  # a broken connection is not given back to the pool
            self._connection = self._engine = None
            raise
        return [tuple(row) for row in rows]

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
        self._connection = self._engine = None


def _forgetting(registry: Graphs):
    """``registry.forget`` held weakly: a graph must not keep its registry alive (a follower thread
    stops when the registry is gone, and no reference cycle waits for the garbage collector)."""
    reference = weakref.ref(registry)

    def forget(dataset: str) -> None:
        found = reference()
        if found is not None:
            found.forget(dataset)

    return forget


def _edited_here(graph) -> bool:
    """Whether an edit made on this machine is not read by ``graph`` yet (or the counter is unreadable)."""
    signal = graph.edit_signal.read()
    return signal == UNKNOWN or signal > graph._seen


def _sync_all(graphs, poll: StatePoll) -> None:
    """One query for the state of every graph (a follower asks often, mostly to hear "nothing new"),
    then a catch-up of the graphs whose log moved on or whose base changed."""
    if not graphs:
        return
    try:
        rows = poll.rows(graphs[0].engine)
    except Exception:  # database away: the next request says so
        return
    states = {dataset_id: (last, base_url) for dataset_id, last, base_url in rows}
    for graph in graphs:
        if states.get(graph.dataset_id) == (graph._seen, graph.base_url):
            graph.synced_at = time.monotonic()  # read to the end of the log, as of that query
            continue
        try:
            graph.sync()
        except Exception:  # removed, replaced, database away: the next request says so
            pass


def forget_everywhere(database_url: str, dataset: str) -> None:
    """Every open registry of ``database_url`` in this process forgets ``dataset``'s graph."""
    for registry in list(_registries):
        if registry.database_url == database_url:
            registry.forget(dataset)
