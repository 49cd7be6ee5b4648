"""The fast path: chunks (stored or live), mesh fragment files and manifests for whoever may view
them, and stored states showing only public data, asked anonymously.

A viewer fires hundreds of chunk requests per view, almost all of this one kind. Flask's
machinery around a view (request and application contexts, eight before/after hooks, the rate
limiter, Werkzeug's request and response objects) costs about 0.6 ms of a 1 ms request here;
this WSGI layer answers the common case without it — the same bytes and the same headers,
byte for byte (``tests/test_fast_path.py`` compares the two on every case it takes) — and hands
every other request to Flask untouched. It takes a request only when all of these hold, and
otherwise (or on any doubt or error) Flask answers:

- ``GET`` of ``/data/<name>/<layer>/<key>``: no ``@`` view (moments, supervoxels), no ``Range``,
  no ``If-None-Match`` (Werkzeug words a 304), no cookie (a browser's session: its cross-site
  rules are Flask's);
- the caller anonymous, or holding a valid ``Authorization: Bearer`` token (the principal cached
  per process as the access check caches it), and allowed to view the dataset by the same rule
  (``require_role``); an answer about a private dataset carries the private cache headers
  ``server.caching`` gives it;
- a ``Host`` (and scheme) Flask has already accepted in this process (it runs the host check);
- either the layer served as stored (no live view: no graph remaps it), from local files, and
  ``key`` a chunk file of one of its scales (info files, meshes, multi-resolution meshes go to
  Flask); or a live layer (root ids of now) whose chunk the live view's cache holds and knows
  current without SQL (``LiveSegmentation.cached_now``): computing a chunk, or catching up with
  edits, is left to Flask in a thread;
- or ``GET /data/<name>@supervoxels/<layer>/graphene_meshes/initial/<file>``, a built-in mesh's
  chunk fragment file, whole or one byte range (``Range`` taken here), for the same callers;
- or ``GET /meshing/api/v1/table/<name>/manifest/<root>:0`` of a root whose settled built-in mesh
  manifest this process made before (a root's supervoxels never change, so neither does its
  manifest within a meshing run); a manifest still listing quick twins, or not made yet, is Flask's;
- or ``GET /api/v1/states/<id>`` (the state as stored, no ``as``) of a state the store read from
  the database, with its datasets, less than ``STATE_HEAD_SECONDS`` ago, every dataset it shows
  public (``StateStore.recently_read``); its view is counted as Flask counts it.

What Flask does for these requests and this path does too: the request id (the caller's when
well formed), CORS headers, the ETag, gzip as stored when the client takes it (else inflated),
the request's log line, and its count and time for Prometheus (``server.metrics``). Rate limits
do not apply to reads, so there is none to skip.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import NamedTuple

from werkzeug.http import parse_accept_header, parse_range_header

from segmentation.access import anonymous, require_role
from segmentation.graph.ids import is_supervoxel
from segmentation.meshes import MESH_DIR
from segmentation.storage import FileLayerStore, InvalidKey, validate_key

from . import metrics, request_log
from .blueprints.data import IMMUTABLE, MAX_READ_BYTES, fragment_etag
from .caching import private_cache_control, vary_on_caller
from .workspace import EXTENSION

ROUTE = "/data/<dataset_ref>/<layer>/<path:key>"  # the routes this path stands in for (its log lines say so)
STATE_ROUTE = "/api/v1/states/<ref>"
_PATH = re.compile(r"^/data/([^/@]{1,256})/([^/]{1,256})/(.{1,4096})$")
_FRAGMENT_PATH = re.compile(rf"^/data/([^/@]{{1,256}})@supervoxels/([^/]{{1,256}})/{MESH_DIR}/initial/([^/]{{1,256}})$")
_STATE_PATH = re.compile(r"^/api/v1/states/([A-Za-z0-9_-]{1,64})$")
_MANIFEST_PATH = re.compile(r"^/meshing/api/v1/table/([^/@]{1,256})/manifest/(\d{1,20}):0$")
MANIFEST_ROUTE = "/meshing/api/v1/table/<table>/manifest/<node_spec>"
# the routes' names in server.endpoints: what a request is counted under (server.metrics)
ENDPOINTS = {ROUTE: "layer_file", STATE_ROUTE: "get_state", MANIFEST_ROUTE: "mesh_manifest"}
#: How long a state's datasets, read by Flask, are trusted here without reading them again (a state
#: tied to one more dataset meanwhile, by another process, shows to anonymous callers this long more).
STATE_HEAD_SECONDS = 10.0
_ACCEPTED_HOSTS_MAX = 64  # Host values remembered as accepted (a client inventing names just misses)
_HEADER_CACHE_MAX = 256
_FLASK_ONLY_HEADERS = ("HTTP_COOKIE", "HTTP_IF_NONE_MATCH")  # and Range but for fragments
_CHUNK_HEADERS = (
    ("Content-Type", "application/octet-stream"),
    ("Cache-Control", "public, max-age=3600"),
    ("Accept-Ranges", "bytes"),
    ("Vary", "Accept-Encoding"),
)
_LIVE_HEADERS = (
    ("Content-Type", "application/octet-stream"),
    ("Cache-Control", "no-cache"),  # "now" changes with the next edit
    ("Vary", "Accept-Encoding"),
)


class _Answering(NamedTuple):
    """What every answer of this path needs besides its bytes: for its headers and its log line."""

    environ: dict
    dataset: str | None
    user: str
    public: bool  # False: the answer is about a private dataset (private cache headers, Vary on the caller)
    started: float


class FastPath:
    """WSGI middleware in front of a Flask app: see the module docstring."""

    def __init__(self, wsgi_app, flask_app, cors_headers: dict[str, str]):
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.cors = tuple(cors_headers.items())  # what the app adds to every answer
        self.accepted_hosts: set[tuple[str | None, str]] = set()
        self._gzip: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._anonymous = anonymous()
        # behind nginx with --accel-redirect, what comes through the trusted proxy is Flask's (server.accel)
        self._accel = bool(flask_app.config["AXONLINK_SETTINGS"].accel_redirect)

    def accepted(self, environ) -> None:
        """Flask's host check passed for this request's Host and scheme (called from the app)."""
        key = (environ.get("HTTP_HOST"), environ.get("wsgi.url_scheme", ""))  # no Host: None, never ""
        if key not in self.accepted_hosts and len(self.accepted_hosts) < _ACCEPTED_HOSTS_MAX:
            with self._lock:
                self.accepted_hosts.add(key)

    def __call__(self, environ, start_response):
        try:
            answer = self.answer(environ)
        except Exception:  # noqa: BLE001 - anything unexpected: Flask gives the canonical answer
            logging.getLogger(__name__).debug("fast path declined", exc_info=True)
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body] if body else []

    # ---- deciding --------------------------------------------------------------------------
    def answer(self, environ, memory_only: bool = False):
        """(status, headers, body) for a request this path takes, else None.

        ``memory_only`` (the server's poller, ``server.quick_answers``): only what this process
        holds in memory decides, never SQL, a graph load or a view built; anonymous callers only
        (a token costs SQL on its first use); else None, and a thread answers (and fills the caches)."""
        if environ["REQUEST_METHOD"] != "GET" or environ.get("QUERY_STRING"):
            return None
        if any(name in environ for name in _FLASK_ONLY_HEADERS) or not self._host_accepted(environ):
            return None
        if self._accel and "werkzeug.proxy_fix.orig" in environ:  # set by TrustedProxies for its proxies
            return None
        started = time.perf_counter()
        work = self.flask_app.extensions[EXTENSION]
        if memory_only and "HTTP_AUTHORIZATION" in environ:
            return None
        path = environ.get("PATH_INFO", "")
        match = _PATH.match(path)
        fragment = _FRAGMENT_PATH.match(path) if match is None else None
        state = _STATE_PATH.match(path) if match is None and fragment is None else None
        manifest = _MANIFEST_PATH.match(path) if match is None and fragment is None and state is None else None
        if match is None and fragment is None and state is None and manifest is None:
            return None  # not a route of this path: no token checked for nothing
        caller = self._caller(work, environ)
        if caller is None:
            return None
        if match is None:
            if manifest is not None:
                if "HTTP_RANGE" in environ:
                    return None
                try:
                    return self._manifest(environ, work, caller, *manifest.groups(), started, memory_only)
                except Exception:  # noqa: BLE001 - unknown dataset, no meshes: Flask words it
                    return None
            if fragment is not None:
                try:
                    return self._fragment(environ, work, caller, *fragment.groups(), started, memory_only)
                except Exception:  # noqa: BLE001 - unknown layer, a file gone meanwhile: Flask words it
                    return None
            if "HTTP_RANGE" in environ or caller is not self._anonymous:
                return None
            return self._state(environ, state.group(1), started, memory_only)
        if "HTTP_RANGE" in environ:
            return None
        name, layer_name, key = match.groups()
        public = self._viewer_of(work, caller, name, memory_only)
        if public is None:
            return None
        try:
            validate_key(key)
            found, store, keys = self._layer_store(work, name, layer_name, memory_only)
            known, live = self._live_view(work, name, found, store, memory_only)
        except Exception:  # noqa: BLE001 - unknown, invalid, not in memory: Flask words the answer
            return None
        if not known:
            return None
        answering = _Answering(environ, name, caller.name, public, started)
        if live is not None:
            return self._live_chunk(answering, live, key)
        if not isinstance(store, FileLayerStore) or not keys.under_scale(key) or not keys.allows(key):
            return None
        try:
            stored = store.get(key)
        except InvalidKey:
            return None
        if stored is None:
            return None
        return self._chunk(answering, stored)

    def _caller(self, work, environ):
        """Who asks: anonymous, or the principal of a valid Bearer token (cached per process, as the
        access check caches it); None for anything Flask must word (a malformed, unknown, revoked or
        expired token: 401)."""
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None:
            return self._anonymous
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return work.accounts.authenticate(token.strip())
        except Exception:  # noqa: BLE001 - refused: Flask words it
            return None

    @staticmethod
    def _layer_store(work, name: str, layer_name: str, memory_only: bool):
        if not memory_only:
            return work.datasets.layer_store(name, layer_name)
        found = work.datasets.layer_store_in_memory(name, layer_name)
        if found is None:
            raise LookupError("not in memory")
        return found

    @staticmethod
    def _live_view(work, name: str, found, store, memory_only: bool):
        """(known, live view or None); known is False when finding out would load a graph."""
        if memory_only:
            return work.live_view_in_memory(name, found, store)
        return True, work.live_view(name, found, store)

    def _viewer_of(self, work, caller, name: str, memory_only: bool = False) -> bool | None:
        """Whether ``name`` is public, when ``caller`` may view it; None when not (or no such dataset,
        or, ``memory_only``, when visibility is not in this process's cache)."""
        if memory_only:
            known, public = work.accounts.is_public_in_memory(name)
            if not known:
                return None
        else:
            public = work.accounts.is_public(name)
        if public is None:
            return None
        try:
            require_role(caller, name, public, "viewer", work.settings.anonymous_role)
        except Exception:  # noqa: BLE001 - refused: Flask words it (404 or 401)
            return None
        return public

    def _host_accepted(self, environ) -> bool:
        return (environ.get("HTTP_HOST"), environ.get("wsgi.url_scheme", "")) in self.accepted_hosts

    def _anonymous_may_view(self, work, datasets, memory_only: bool = False) -> bool:
        return all(self._viewer_of(work, self._anonymous, name, memory_only) is True for name in datasets)

    def _fragment(self, environ, work, caller, name, layer_name, fragment, started, memory_only=False):
        """A built-in mesh's chunk fragment file (``initial/<file>``), whole or the one byte range a
        graphene source asks for; what ``_graphene_mesh_file`` answers, for a public dataset."""
        public = self._viewer_of(work, caller, name, memory_only)
        if public is None:
            return None
        answering = _Answering(environ, name, caller.name, public, started)
        found, store, _ = self._layer_store(work, name, layer_name, memory_only)
        known, live = self._live_view(work, name, found, store, memory_only)
        if not known or live is None:
            return None
        segmentation = self._layer_store(work, name, "segmentation", memory_only)[0]
        built_in = work.meshes(name, segmentation.url)
        if memory_only and built_in.remote:
            return None  # in object storage: read in a thread
        found = built_in.fragment_file(fragment)
        if found is None or (found.path is None and found.size > MAX_READ_BYTES):
            return None  # Flask's view words the refusal
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Cache-Control", IMMUTABLE),
            ("ETag", f'"{fragment_etag(fragment)}"'),
            ("Accept-Ranges", "bytes"),
        ]
        given = environ.get("HTTP_RANGE")
        if given is None:
            return self._ok(answering, headers, found.read())
        parsed = parse_range_header(given)
        if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
            return None
        bounds = parsed.range_for_length(found.size)
        if bounds is None:
            return None  # 416: Flask words it
        start, stop = bounds
        body = found.read(start, stop)
        size = found.size
        headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
        return self._ok(answering, headers, body, status="206 PARTIAL CONTENT")

    def _manifest(self, environ, work, caller, name, node, started, memory_only=False):
        """A root's settled built-in mesh manifest that this process has made before (roots never
        change, so neither does it within a meshing run); what ``mesh_manifest`` answers."""
        node = int(node)
        if node >= 2**64 or is_supervoxel(node):
            return None
        public = self._viewer_of(work, caller, name, memory_only)
        if public is None:
            return None
        segmentation = self._layer_store(work, name, "segmentation", memory_only)[0]
        meshes = work.meshes(name, segmentation.url)
        if memory_only and meshes.remote:
            return None  # which run is in use is a request to object storage: asked in a thread
        generation = meshes.of_roots
        fragments = meshes.cached_manifest(node) if generation is not None else None
        if fragments is None:
            return None  # Flask's view looks again, and counts the miss
        metrics.count_cache("mesh_manifests", True)
        headers = [
            ("Content-Type", "application/json"),
            ("ETag", f'"manifest-{node}-g{generation.number}"'),
            ("Cache-Control", "no-cache"),  # as mesh_manifest: the next meshing run changes it
        ]
        body = (json.dumps({"fragments": fragments}, separators=(",", ":")) + "\n").encode()
        return self._ok(_Answering(environ, name, caller.name, public, started), headers, body, MANIFEST_ROUTE)

    def _state(self, environ, ref, started, memory_only=False):
        """A stored state as stored (no ``as``), showing only public data: from the store's memory."""
        work = self.flask_app.extensions[EXTENSION]
        stored = work.states.recently_read(
            ref,
            may_view=lambda datasets: self._anonymous_may_view(work, datasets, memory_only),
            max_age=STATE_HEAD_SECONDS,
        )
        if stored is None:
            return None
        work.states.count_view(stored, flush_in_background=True)
        headers = [("Content-Type", "application/json"), ("ETag", f'"{stored.etag}"'), ("Cache-Control", "no-cache")]
        return self._ok(
            _Answering(environ, None, self._anonymous.name, True, started), headers, stored.raw, STATE_ROUTE
        )

    # ---- answering -------------------------------------------------------------------------
    def _chunk(self, answering, stored):
        headers = list(_CHUNK_HEADERS)
        headers.append(("ETag", f'"{stored.etag}"'))
        if stored.encoding == "gzip" and self._takes_gzip(answering.environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = stored.content
            headers.append(("Content-Encoding", "gzip"))
        else:
            body = stored.decoded()
        return self._ok(answering, headers, body)

    def _live_chunk(self, answering, live, key):
        """A chunk of root ids as of now, when the live view's cache holds it and knows it current."""
        gzipped = self._takes_gzip(answering.environ.get("HTTP_ACCEPT_ENCODING", ""))
        found = live.cached_now(key, gzipped=gzipped)
        if found is None:
            return None
        version, body = found
        headers = list(_LIVE_HEADERS)
        headers.append(("ETag", f'"{live.etag(version)}"'))
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        return self._ok(answering, headers, body)

    def _ok(self, answering, headers, body, route=ROUTE, status="200 OK"):
        environ = answering.environ
        if not answering.public:  # as server.caching makes every answer about a private dataset
            headers = [
                (name, private_cache_control(value) if name == "Cache-Control" else vary_on_caller(value))
                if name in ("Cache-Control", "Vary")
                else (name, value)
                for name, value in headers
            ]
            if not any(name == "Vary" for name, _ in headers):
                headers.append(("Vary", vary_on_caller("")))
        headers.append(("Content-Length", str(len(body))))
        headers.extend(self.cors)
        given = environ.get("HTTP_X_REQUEST_ID", "")
        ident = given if request_log.well_formed(given) else request_log.new_request_id()
        headers.append((request_log.HEADER, ident))
        code, seconds = int(status[:3]), time.perf_counter() - answering.started
        metrics.observe_request(ENDPOINTS[route], "GET", code, seconds)
        request_log.log_line(
            "GET",
            route,
            code,
            lambda: {
                "status": code,
                "ms": round(seconds * 1000, 1),
                "bytes": len(body),
                "dataset": answering.dataset,
                "user": answering.user,
                "client": environ.get("REMOTE_ADDR"),
                "refused": None,
                "id": ident,
            },
        )
        return status, headers, body

    def _takes_gzip(self, accept_encoding: str) -> bool:
        """Whether the client takes gzip, as Flask reads ``Accept-Encoding`` (cached per header value)."""
        found = self._gzip.get(accept_encoding)
        if found is None:
            found = "gzip" in parse_accept_header(accept_encoding)
            if len(self._gzip) < _HEADER_CACHE_MAX:
                self._gzip[accept_encoding] = found
        return found
