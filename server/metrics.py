"""What the server counts for Prometheus, and the one text that shows it (``GET /metrics``).

Counted:

- every answered request, by ``route`` (its endpoint name in :mod:`server.endpoints`,
  ``unmatched`` when no route matched), ``method`` (the usual ones, anything else ``OTHER``) and
  ``status``; its duration by ``route``. Never the path: a client chooses it, and a series per path
  would let anyone grow the scraped text and Prometheus's memory without bound. Flask's answers are
  counted once done (:func:`install`), the fast path's where it makes them (``FastPath._ok``, in a
  thread or in the poller), so every way to an answer counts once;
- graph edits committed, by ``kind`` (merge, split, undo, redo: counted by the chunkedgraph views
  once the graph has committed them), and edit requests answered with an error, by ``kind`` and
  ``status`` (no role, bad input, an edit the graph cannot make, the rate limit, the time budget);
- cache lookups by ``cache`` and ``result`` (hit, miss): remapped live chunks in the process's memory
  (``live_chunks``), then in the files the machine's server processes share
  (``live_chunks_shared``), and built-in mesh manifests (``mesh_manifests``): what decides whether
  a view of a proofread dataset is fast.

``axonlink serve`` runs several gunicorn worker processes and a scrape reaches any one of them, so
the counts of all of them must be summed. prometheus_client's multiprocess mode does that: each
process writes its values to memory-mapped files in one folder, and a scrape reads them all. The
runner calls :func:`use_multiprocess` before the workers fork (a fresh folder per server under the
home), :func:`worker_exited` when gunicorn sees a worker gone, :func:`server_stopped` at the end.
Without gunicorn (the development server, tests) one process answers everything and keeps its
values in a plain registry.

Cost per request: one dict lookup for the labelled children (made once per label set and kept)
and three increments (in multiprocess mode each a write to a memory-mapped file under
prometheus_client's lock): a few microseconds, against about 60 µs for a chunk on the fast path.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from flask import g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily

from . import endpoints

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FOLDER = "metrics"  # under the home: one folder per running server, server-<arbiter pid>
UNMATCHED = "unmatched"  # the route of a request no route matched (404, 405)
OTHER = "OTHER"  # any method but the usual ones (the client chooses the method too)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EDIT_KINDS = {"cg_merge": "merge", "cg_split": "split", "cg_undo": "undo", "cg_redo": "redo"}
CACHES = ("live_chunks", "live_chunks_shared", "mesh_manifests")
# From a chunk on the fast path (~60 µs) to an expensive read under its time budget (10 s by default).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROUTES = frozenset(endpoints.BY_ENDPOINT) | {UNMATCHED}

disable_created_metrics()  # no *_created series: the multiprocess mode has none, both modes show the same


class _Metrics:
    """The metric objects of this process, and the labelled children each request needs, kept."""

    def __init__(self, registry: CollectorRegistry | None):
        self.requests = Counter(
            "axonlink_http_requests",
            "HTTP requests answered, by route (endpoint name), method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "axonlink_http_request_duration_seconds",
            "Time to answer a request, by route (endpoint name).",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.edits = Counter("axonlink_edits", "Graph edits committed, by kind.", ("kind",), registry=registry)
        self.edits_refused = Counter(
            "axonlink_edits_refused",
            "Edit requests answered with an error (nothing committed), by kind and status.",
            ("kind", "status"),
            registry=registry,
        )
        self.cache_lookups = Counter(
            "axonlink_cache_lookups",
            "Cache lookups by cache and result (hit or miss).",
            ("cache", "result"),
            registry=registry,
        )
        # every known series starts at 0 (a rate over a series that appears later misses its first count)
        self.committed = {kind: self.edits.labels(kind) for kind in EDIT_KINDS.values()}
        self.caches = {
            (cache, hit): self.cache_lookups.labels(cache, "hit" if hit else "miss")
            for cache in CACHES
            for hit in (True, False)
        }
        self.per_request: dict[tuple, tuple] = {}

    def children(self, route: str, method: str, status: int) -> tuple:
        """(request counter, latency histogram, refused-edit counter or None) of one label set; kept only
        for known routes, so that the table stays as bounded as the labels."""
        known = route in _ROUTES
        if not known:
            route = "other"
        kind = EDIT_KINDS.get(route) if status >= 400 else None
        found = (
            self.requests.labels(route, method, str(status)),
            self.latency.labels(route),
            self.edits_refused.labels(kind, str(status)) if kind else None,
        )
        if known:
            self.per_request[(route, method, status)] = found
        return found


_REGISTRY = CollectorRegistry()
ProcessCollector(registry=_REGISTRY)
PlatformCollector(registry=_REGISTRY)
_metrics = _Metrics(_REGISTRY)
_folder: Path | None = None  # the multiprocess folder, once use_multiprocess made it
_arbiter: int | None = None  # gunicorn's arbiter: the process that made the folder


# ---- counting ------------------------------------------------------------------------------
def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request: ``route`` an endpoint name of :mod:`server.endpoints` (or
    ``unmatched``), ``method`` as the client sent it, ``status`` the answer's, ``seconds`` its time."""
    if method not in METHODS:
        method = OTHER
    counted = _metrics.per_request.get((route, method, status))
    if counted is None:
        counted = _metrics.children(route, method, status)
    requests, latency, refused = counted
    requests.inc()
    latency.observe(seconds)
    if refused is not None:
        refused.inc()


def count_edit(kind: str) -> None:
    """A graph edit of ``kind`` (merge, split, undo, redo) was committed."""
    _metrics.committed[kind].inc()


def count_cache(cache: str, hit: bool) -> None:
    """One lookup in ``cache`` (one of :data:`CACHES`)."""
    _metrics.caches[(cache, hit)].inc()


def install(app) -> None:
    """Count every answer Flask gives (install right after :mod:`server.request_log`, whose start time
    it reads: its after-request hook then runs just before the log line's)."""

    @app.after_request
    def count(response):
        endpoint = request.endpoint
        route = endpoint.rpartition(".")[2] if endpoint else UNMATCHED
        started = g.get("request_started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        observe_request(route, request.method, response.status_code, seconds)
        return response


# ---- several worker processes --------------------------------------------------------------
def use_multiprocess(home) -> Path:
    """Count in files shared by this server's processes from now on; call before gunicorn forks.

    The folder is ``<home>/metrics/server-<pid>``, emptied first; folders of servers no longer
    running are removed. prometheus_client picks its value class when first imported (from
    ``PROMETHEUS_MULTIPROC_DIR``), and the app is imported long before the runner knows it will
    fork, so the class is switched here and the metrics made again with it."""
    global _metrics, _folder, _arbiter
    parent = Path(home) / FOLDER
    _remove_stale(parent)
    folder = parent / f"server-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # for prometheus_client, and what a worker starts
    values.ValueClass = values.MultiProcessValue()
    _metrics = _Metrics(None)  # in no registry: a scrape reads the files
    _folder, _arbiter = folder, os.getpid()
    return folder


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: a worker's live gauges go (its counts stay: they happened)."""
    if _folder is not None:
        multiprocess.mark_process_dead(pid, str(_folder))


def server_stopped() -> None:
    """gunicorn's on_exit: the folder goes with the server."""
    if _folder is not None and _arbiter == os.getpid():
        shutil.rmtree(_folder, ignore_errors=True)


def _remove_stale(parent: Path) -> None:
    import psutil

    if not parent.is_dir():
        return
    for folder in parent.glob("server-*"):
        pid = folder.name.removeprefix("server-")
        if pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class _ServerProcesses:
    """The server's processes as one (gunicorn's arbiter and its workers), read when scraped."""

    def collect(self):
        import psutil

        try:
            arbiter = psutil.Process(_arbiter)
            processes = [arbiter, *arbiter.children()]
            started = arbiter.create_time()
        except psutil.Error:
            return
        memory = 0
        for process in processes:
            try:
                memory += process.memory_info().rss
            except psutil.Error:
                pass  # a worker gone meanwhile
        yield GaugeMetricFamily("axonlink_workers", "Worker processes of this server.", value=len(processes) - 1)
        yield GaugeMetricFamily(
            "axonlink_resident_memory_bytes",
            "Resident memory of the server's processes, summed (pages the workers share count once each).",
            value=memory,
        )
        yield GaugeMetricFamily("axonlink_start_time_seconds", "When the server started (Unix time).", value=started)


# ---- the scrape ----------------------------------------------------------------------------
def exposition() -> bytes:
    """The metrics as Prometheus's text format 0.0.4: of every worker of this server, summed, or of
    this process alone without gunicorn."""
    if _folder is None:
        return generate_latest(_REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(_folder))
    registry.register(_ServerProcesses())
    return generate_latest(registry)
