"""The segmentation as the graph sees it: supervoxel chunks remapped to the root ids of a moment.

For a dataset with a graph, its segmentation layers are served through
:class:`LiveSegmentation`: one data path per chunk — read the supervoxel chunk,
map each supervoxel to its root, answer. Every view declares uint64 labels
whatever the stored type (uint8/16/32/64): root ids need 64 bits.
compressed_segmentation chunks only get their lookup tables rewritten (uint32
tables widened to 64 bits first); raw chunks are decoded, remapped with
fastremap and re-encoded as uint64. The view is always unsharded (a shard's byte ranges
cannot be remapped in place), so the info drops ``sharding`` and chunks of
sharded layers are read out of their shards by :class:`~segmentation.shards.ShardReader`.
The same chunks with PyChunkedGraph supervoxel ids (layer 1) make the supervoxel
view. Mesh manifests of a root list the fragments of its supervoxels, so 3D views
follow edits without remeshing.

A chunk name is a request, not a fact: only names that are exactly a chunk of the
scale's grid (:mod:`segmentation.chunk_grid`) are read, anything else is missing
(404) before storage is touched. Stored bytes are checked against the chunk's
shape before decoding; inconsistent ones raise CorruptStoredData (a 5xx).
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import fastremap
import numpy as np
from cloudvolume import chunks

from . import compressed_segmentation
from .chunk_grid import CHUNK_NAME_SHAPE, ChunkGrid, max_chunk_bytes
from .graph import Graph
from .graph.ids import LAYER_SHIFT, ROOT_LAYER, SUPERVOXEL_LAYER
from .graph.ingest import as_supervoxel_ids
from .live_shared import SharedChunks
from .shards import ShardingSpec, ShardReader
from .storage import CorruptStoredData, LayerStore

_MANIFEST = re.compile(r"^(\d+):0$")
_CACHE_ENTRIES = int(os.environ.get("AXONLINK_LIVE_CACHE_CHUNKS", "1024"))  # 0 disables the chunk cache
CONFIRMED_KEYS = 65536  # chunks remembered as current until the next edit (a bound on a set of names)
#: ``count(cache, hit)``: told of each chunk looked up, in memory ("live_chunks") and, after a miss
#: there, in the files shared with the machine's other processes ("live_chunks_shared"); the server
#: counts them for Prometheus (server.metrics), this module only says what happened.
CacheCount = Callable[[str, bool], None]


def _uncounted(cache: str, hit: bool) -> None:
    pass


class LiveSegmentation:
    """One segmentation layer of a dataset with a graph, as root ids (now or then) or supervoxel ids."""

    def __init__(
        self,
        layer_url: str,
        store: LayerStore,
        graph: Graph,
        shared: SharedChunks | None = None,
        count: CacheCount | None = None,
    ):
        self.layer_url = layer_url
        self._count = count or _uncounted
        self.store = store
        self.graph = graph
        self.stored_info = json.loads(store.get("info").decoded())
        self.scales = {s["key"]: (i, s) for i, s in enumerate(self.stored_info["scales"])}
        self.mesh_dir = self.stored_info.get("mesh")
        self.plain_ids = None  # whether the volume stores plain labels (decided on the first chunk)
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        # "now" chunks found current at the graph state _confirmed_at (its index and seq): asked again
        # before the next edit is read, they need no check (a remapped chunk's most common request)
        self._confirmed: set = set()
        self._confirmed_at: tuple = (None, -1)
        self._grids: dict[str, tuple] = {}  # scale key → (grid, chunk byte cap, shard reader or None)
        # "now" chunks made by the other server processes of this machine (segmentation.live_shared)
        self.shared = shared if _CACHE_ENTRIES and shared is not None and shared.max_bytes else None
        self._namespace = None
        if self.shared is not None:
            self._namespace = self.shared.namespace(graph.dataset, layer_url, graph.created_at.isoformat())

    # ---- what the data route asks --------------------------------------------
    def info(self) -> dict:
        """The stored info as every view of it is served: uint64 labels (root ids need 64 bits,
        whatever the stored type), unsharded scales."""
        info = copy.deepcopy(self.stored_info)
        info["data_type"] = "uint64"
        for scale in info["scales"]:
            scale.pop("sharding", None)
        return info

    def is_chunk(self, key: str) -> bool:
        """Whether ``key`` asks for a chunk of a scale (it may still be off the grid: then it is missing)."""
        scale_key, _, name = key.rpartition("/")
        return scale_key in self.scales and bool(CHUNK_NAME_SHAPE.match(name))

    def manifest_id(self, key: str) -> int | None:
        """The segment id when ``key`` asks for a legacy mesh manifest (``<mesh dir>/<id>:0``)."""
        if not self.mesh_dir:
            return None
        directory, _, name = key.rpartition("/")
        match = _MANIFEST.match(name)
        return int(match.group(1)) if directory == self.mesh_dir and match else None

    def version(self, at: datetime | None) -> int:
        """The operation sequence number the answer depends on (part of ETags and cache keys)."""
        self.graph.sync()
        return self.graph.seq if at is None else self.graph.seq_at(at)

    def chunk(self, key: str, seq: int, gzipped: bool = False) -> tuple[int, bytes] | None:
        """(content version, encoded chunk of root ids after operation ``seq``), or None when missing;
        ``gzipped``: the encoded chunk gzipped, compressed once and kept with it in the cache (a
        remapped chunk then costs the bytes on the wire a stored one does).

        The version is the last operation that changed a root in this chunk: a "now"
        chunk stays cached (and its ETag unchanged) until an edit touches one of its
        supervoxels. Past moments are immutable and cached under their operation number.
        """
        now = seq >= self.graph.seq
        cache_key = key if now else (key, seq)
        with self._lock:
            entry = self._cache.get(cache_key)
        if entry is not None:
            version, sv_index, encoded, packed = entry
            if not now or self._still_current(cache_key, version, sv_index):
                self._count("live_chunks", True)
                self._remember(cache_key, entry)
                return version, _gzipped(packed, encoded) if gzipped else encoded
        self._count("live_chunks", False)
        if now and self.shared is not None:
            entry = self._shared_entry(key)
            self._count("live_chunks_shared", entry is not None)
            if entry is not None:
                self._remember(key, entry)
                version, _, encoded, packed = entry
                return version, _gzipped(packed, encoded) if gzipped else encoded

        made = {"version": 0 if now else seq}  # a chunk of background alone depends on no edit

        def to_roots(unique):
            sv_index = self._supervoxel_index(unique)
            roots = self.graph.roots_at_positions(sv_index, seq)
            if now:  # the version of these very roots: an edit applied meanwhile must not lend it its own
                made["version"] = self.graph.newest_made(roots)
            return sv_index, roots

        computed = self._compute_chunk(key, to_roots)
        if computed is None:
            return None
        sv_index, encoded = computed
        version = made["version"] if now else seq
        packed: list[bytes] = []  # its gzip, made when first asked for
        if now and self.shared is not None:  # the other processes will ask for it too, gzipped mostly
            self.shared.write(self._namespace, key, version, sv_index, encoded, _gzipped(packed, encoded))
        self._remember(cache_key, (version, sv_index, encoded, packed))
        return version, _gzipped(packed, encoded) if gzipped else encoded

    def _shared_entry(self, key: str):
        """A memory entry for the "now" chunk ``key`` from another process's file, when that file
        still shows its supervoxels' roots here; None: compute it."""
        found = self.shared.read(self._namespace, key)
        if found is None:
            return None
        version, positions, encoded, gzipped = found
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self.graph.supervoxel_ids)):
            return None  # not of this graph (a damaged file): never an answer
        if self.graph.last_change(positions) != version:
            return None  # an edit here since (or one not read here yet): made again
        return version, positions, encoded, [gzipped] if gzipped else []

    def etag(self, version: int) -> str:
        """The tag of a chunk made after operation ``version``: the graph's ingest time in it, since a
        re-ingested graph (--replace) numbers its operations anew."""
        return f"g{int(self.graph.created_at.timestamp() * 1e6):x}-ops-{version}"

    def cached_now(self, key: str, gzipped: bool = False) -> tuple[int, bytes] | None:
        """What :meth:`chunk` answers for "now", when that is known from memory alone: the graph has
        read every edit made on this machine (:meth:`Graph.current_here`, no SQL), and the cached
        chunk is still the one of its roots. None: ask :meth:`chunk` (the server's fast path asks
        this first and leaves the rest to a thread)."""
        with self._lock:
            entry = self._cache.get(key)
        if entry is None or not self.graph.current_here():
            return None
        version, sv_index, encoded, packed = entry
        if not self._still_current(key, version, sv_index):
            return None  # not counted: chunk() looks again, and counts
        self._count("live_chunks", True)
        self._remember(key, entry)
        return version, _gzipped(packed, encoded) if gzipped else encoded

    def _still_current(self, key, version: int, sv_index) -> bool:
        """Whether a cached "now" chunk still shows its supervoxels' roots: no operation since
        ``version`` gave any of them a new one. Checking costs a lookup of every supervoxel's root
        (most of a cached live chunk's time in the fast path); once found current, a chunk needs no
        check again until the graph here reads another operation."""
        index = self.graph.index
        seen_index, seen_seq = self._confirmed_at
        if seen_index is not index or seen_seq != index.seq:  # another operation read (or a new base)
            self._confirmed, self._confirmed_at = set(), (index, index.seq)
        confirmed = self._confirmed
        if key in confirmed:
            return True
        if self.graph.last_change(sv_index) != version:
            return False
        if len(confirmed) < CONFIRMED_KEYS:
            confirmed.add(key)
        return True

    def supervoxel_chunk(self, key: str) -> bytes | None:
        """The chunk with PyChunkedGraph supervoxel ids (layer 1), as graphene sources expect."""
        cache_key = ("supervoxels", key)
        with self._lock:
            entry = self._cache.get(cache_key)
        self._count("live_chunks", entry is not None)
        if entry is None:
            computed = self._compute_chunk(key, lambda unique: (None, as_supervoxel_ids(unique)))
            if computed is None:
                return None
            entry = (0, None, computed[1], [])
        self._remember(cache_key, entry)
        return entry[2]

    def _remember(self, cache_key, entry) -> None:  # entry: (version, sv_index, encoded, [its gzip])
        with self._lock:
            self._cache[cache_key] = entry
            self._cache.move_to_end(cache_key)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def _compute_chunk(self, key: str, relabel):
        """(what ``relabel`` reports, encoded chunk) with each stored label replaced as it says.

        None when ``key`` is not a chunk of its scale's grid, or the chunk is not stored.
        """
        scale_key, _, name = key.rpartition("/")
        _, scale = self.scales[scale_key]
        grid, cap, reader = self._scale_reading(scale_key, scale)
        located = grid.locate(name)
        if located is None:
            return None
        origin, shape = located
        if reader is None:
            stored = self.store.get(key, max_stored_bytes=cap + cap // 1000 + 1024)  # + gzip's overhead
            data = None if stored is None else stored.decoded(cap)
        else:
            data = reader.chunk(grid.morton_code(grid.gridpoint(origin)))
        if not data:
            return None  # not stored (an empty object is no chunk either)
        dtype = np.dtype(self.stored_info["data_type"])
        encoding = scale["encoding"]
        block_size = scale.get("compressed_segmentation_block_size")
        if encoding == "compressed_segmentation":
            if dtype == np.uint32:  # root ids need 64 bits: the view is uint64, the chunk is widened
                data, dtype = compressed_segmentation.widen(data, shape, block_size, key), np.dtype(np.uint64)
            labels = compressed_segmentation.table_labels(data, shape, block_size, dtype, key)
            unique = fastremap.unique(labels)
            unique = unique[unique != 0]
            report, new = relabel(unique) if len(unique) else (np.zeros(0, dtype=np.int64), unique)
            return report, compressed_segmentation.remap(data, shape, block_size, unique, new, dtype, key)
        labels = self._decode_raw(key, data, encoding, shape, dtype).astype(np.uint64, copy=False)
        unique = fastremap.unique(labels)
        unique = unique[unique != 0]
        report, new = relabel(unique) if len(unique) else (np.zeros(0, dtype=np.int64), unique)
        relabelled = fastremap.remap(
            labels, dict(zip(unique.tolist(), new.tolist())), preserve_missing_labels=True, in_place=False
        )
        return report, chunks.encode(relabelled, encoding, block_size=block_size)

    def _decode_raw(self, key: str, data: bytes, encoding: str, shape, dtype) -> np.ndarray:
        """The voxels of a raw chunk, once its length is exactly what ``shape`` holds.

        Other encodings (jpeg, png, compresso, crackle ...) are refused: their decoders
        size their output from headers we would have to check first, and a segmentation
        served live is compressed_segmentation or raw.
        """
        if encoding != "raw":
            raise CorruptStoredData(
                key,
                f"encoding {encoding!r} is not served live "
                "(only raw and compressed_segmentation are checked before decoding)",
            )
        channels = int(self.stored_info.get("num_channels", 1))
        expected = shape[0] * shape[1] * shape[2] * channels * dtype.itemsize
        if len(data) != expected:
            raise CorruptStoredData(
                key,
                f"raw chunk of {len(data)} bytes, a {shape} chunk of {dtype} × {channels} channel(s) holds {expected}",
            )
        return chunks.decode(data, "raw", shape=(*shape, channels), dtype=dtype)

    def manifest(self, node: int) -> dict | None:
        """Legacy mesh manifest of a root (its supervoxels' fragments) or of a layer-1 supervoxel id."""
        if node >> LAYER_SHIFT == ROOT_LAYER:
            svs = self.graph.leaves(node).tolist()
        elif node >> LAYER_SHIFT == SUPERVOXEL_LAYER:
            svs = [node]
        else:
            return None  # a stored label: its manifest is served as stored
        fragments = []
        for sv in svs:
            label = sv & ((1 << LAYER_SHIFT) - 1) if self._stores_plain_ids() else sv
            stored = self.store.get(f"{self.mesh_dir}/{label}:0")
            if stored is not None:
                fragments.extend(json.loads(stored.decoded()).get("fragments", []))
        return {"fragments": fragments}

    # ---- internals --------------------------------------------------------------
    def _scale_reading(self, scale_key: str, scale: dict) -> tuple:
        """(grid, cap on one chunk's bytes, shard reader or None) of a scale, built once.

        The cap bounds what a stored chunk may inflate to; a sharded scale's chunks are read
        out of their shards' byte ranges (not a decoded cutout), so compressed_segmentation
        chunks of sharded layers are relabelled in their lookup tables like unsharded ones.
        """
        reading = self._grids.get(scale_key)
        if reading is None:
            grid = ChunkGrid.from_scale(scale)
            try:
                cap = max_chunk_bytes(
                    grid, scale, self.stored_info["data_type"], int(self.stored_info.get("num_channels", 1))
                )
            except (KeyError, TypeError, ValueError) as error:
                raise CorruptStoredData("info", f"scale {scale_key!r}: {error}") from None
            reader = None
            if "sharding" in scale:
                reader = ShardReader(self.store, scale_key, ShardingSpec.from_dict(scale["sharding"]), grid, cap)
            reading = self._grids.setdefault(scale_key, (grid, cap, reader))
        return reading

    def _stores_plain_ids(self) -> bool:
        if self.plain_ids is None:
            first = int(self.graph.supervoxel_ids[0]) if len(self.graph.supervoxel_ids) else 0
            probe = self.store.get(f"{self.mesh_dir}/{first}:0") if self.mesh_dir else None
            self.plain_ids = probe is None
        return self.plain_ids

    def _supervoxel_index(self, unique: np.ndarray) -> np.ndarray:
        """Graph indices of the nonzero stored labels ``unique``."""
        if self.plain_ids is None:
            self.plain_ids = bool(np.all((unique >> np.uint64(LAYER_SHIFT)) != SUPERVOXEL_LAYER))
        return self.graph.positions(as_supervoxel_ids(unique))


class LiveViews:
    """The live views of one database's segmentation layers, kept by whoever serves them (the
    server's workspace): one per layer, rebuilt when its graph or its store is replaced."""

    def __init__(self, graphs, shared: SharedChunks | None = None, count: CacheCount | None = None):
        self.graphs = graphs  # a segmentation.graph.registry.Graphs
        self.shared = shared  # chunk files shared with the other processes of this machine, or None
        self.count = count  # told of each chunk cache lookup (CacheCount), or None
        self._views: dict[tuple[str, str], LiveSegmentation] = {}

    def view(self, dataset: str, layer, store: LayerStore) -> LiveSegmentation | None:
        """The live view of a segmentation layer, or None when the layer is served as stored."""
        if layer.kind != "segmentation":
            return None
        graph = self.graphs.find(dataset)
        if graph is None:
            return None
        return self._view_of(dataset, layer, store, graph)

    def view_in_memory(self, dataset: str, layer, store: LayerStore):
        """(known, view) without loading a graph (``Graphs.find_in_memory``): for the server's poller."""
        if layer.kind != "segmentation":
            return True, None
        known, graph = self.graphs.find_in_memory(dataset)
        if graph is None:
            return known, None
        view = self._views.get((dataset, layer.name))
        if view is None or view.graph is not graph or view.store is not store:
            return False, None  # a thread builds it
        return True, view

    def _view_of(self, dataset: str, layer, store: LayerStore, graph) -> LiveSegmentation:
        key = (dataset, layer.name)
        view = self._views.get(key)
        if view is None or view.graph is not graph or view.store is not store:
            view = self._views[key] = LiveSegmentation(layer.url, store, graph, self.shared, self.count)
        return view


def _gzipped(packed: list[bytes], encoded: bytes) -> bytes:
    """``encoded`` gzipped, kept in ``packed`` (the cache entry's slot) after the first time."""
    if not packed:
        packed.append(gzip.compress(encoded, compresslevel=5))  # two threads may both make it: same bytes
    return packed[0]
