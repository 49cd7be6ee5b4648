"""Where a dataset's built-in meshes live, and the index that says which fragment shows what.

The mesh store is ``AXONLINK_MESH_STORE`` when set (a folder, or a prefix in object storage:
``s3://bucket/meshes``, ``gs://…``), else ``meshes`` in the server's home. Several server nodes
share one store in object storage: each copies a run's index to its own disk (verified, then
memory-mapped: :mod:`segmentation.folder_copies`) and reads fragments by byte range from the
bucket; what a node derives for itself (claims on fragments being made, multi-resolution files)
stays in ``mesh-cache`` in its home.

Under ``<store>/<dataset>/<generation>/`` (a generation is one meshing run):

- ``generation.json``: the grid, the surface parameters, the graph operation whose roots the run
  meshed (``seq``), and ``complete`` once every chunk is done;
- ``initial/<x>_<y>_<z>.frags``: one file per chunk, the Draco fragments of the roots in it, one
  after the other (served by byte range: one file per chunk, however many roots it holds), and
  ``initial/L<level>_<x>_<y>_<z>.frags``: the same per block of the coarser levels (:mod:`.levels`);
- ``parts/<x>_<y>_<z>.npz``: what a chunk's run found (written after its ``.frags``; a rerun
  skips chunks that have one);
- ``index/``: all parts in one (written last, one ``.npy`` per array, memory-mapped by servers): for
  each supervoxel the chunks it is in and, at every level, the fragment ("group": one root of the
  run within one chunk or block) showing it;
- ``dynamic/``: fragments made after edits, named by chunk and a hash of the supervoxels they show.

``current`` (a file beside the generations) names the complete generation in use. Every file is
written whole or not at all (a temporary name renamed, or one PUT), and ``index/`` last, so a killed
run leaves nothing half-written in use.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from .. import folder_copies, locations
from ..config import DEFAULT_HOME
from ..errors import Unavailable
from .grid import MeshGrid
from .levels import coarser, file_name, join_parts, level_count
from .surfaces import SurfaceParams

INDEX_FORMAT = "axonlink-mesh-index"
INDEX_VERSION = 1
_SIZES_KEPT = 65536  # fragment files' sizes a process remembers (a HEAD each in object storage)
_COPY_RETRY_SECONDS = 30.0  # an index copy that failed is not tried again sooner (it may be gigabytes)
_GENERATIONS_KEPT = 8  # runs of one dataset a process keeps (with their cached documents and indexes)
_INDEX_ARRAYS = (
    "svs",
    "indptr",
    "entry_chunk",
    "entry_groups",
    "chunk_coords",
    "group_level",
    "group_coords",
    "group_root",
    "group_offset",
    "group_nbytes",
    "group_svcount",
)


def mesh_store(home: str | os.PathLike | None = None) -> str:
    """Where datasets' meshes are: ``AXONLINK_MESH_STORE`` (a path or an object-storage URL), else
    ``meshes`` in ``home`` (the server's: ``--home``, ``AXONLINK_HOME``)."""
    configured = os.environ.get("AXONLINK_MESH_STORE")
    if configured:
        if locations.is_remote(configured):
            return configured.rstrip("/")
        return str(locations.local_path(configured).expanduser().resolve())
    return str(Path(home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME).expanduser().resolve() / "meshes")


def cache_root(home: str | os.PathLike | None = None) -> Path:
    """Where a node keeps what it derives from meshes in object storage (index copies, claims, files
    made per label): ``mesh-cache`` in ``home``."""
    return Path(home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME).expanduser().resolve() / "mesh-cache"


def _from_store(call, *args):
    """``call(*args)`` on the store; a store that fails (unreachable, refusing) is a 503 whose message
    names no bucket (the log has the cause)."""
    try:
        return call(*args)
    except (FileNotFoundError, Unavailable):
        raise
    except Exception as error:  # noqa: BLE001 - botocore's and CloudFiles' many kinds alike
        if not locations.is_remote(str(args[0])):
            raise
        logging.getLogger(__name__).error("the mesh store failed: %s", error)
        raise Unavailable("the meshes' store cannot be read just now; try again") from None


def _npz_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class MeshStore:
    """The meshes of one dataset: its generations, the one in use, and their indexes."""

    def __init__(self, home: str | os.PathLike, dataset: str):
        self.dataset = dataset
        self.root = locations.join(mesh_store(home), dataset)  # a path or a URL
        self.cache = cache_root(home) / hashlib.sha256(self.root.encode()).hexdigest()[:16]
        self._generations: dict[str, Generation] = {}
        self._lock = threading.Lock()

    def generation(self, name: str, run: str | None = None) -> Generation:
        """Generation ``name``; ``run``: the id ``current`` gives it (a dataset removed and meshed again
        reuses names: a kept one of another run is dropped with what it cached)."""
        with self._lock:
            found = self._generations.get(name)
            if found is None or (run and found.run_id not in (None, run)):
                if len(self._generations) >= _GENERATIONS_KEPT:
                    self._generations.pop(next(iter(self._generations)))
                found = self._generations[name] = Generation(locations.join(self.root, name), self.cache)
            return found

    def current(self, layer_url: str) -> Generation | None:
        """The complete generation in use, made from the layer at ``layer_url`` (None: the dataset was
        never meshed, or its meshes are of another volume: a dataset removed and added again)."""
        named = locations.get(locations.join(self.root, "current"))
        if named is None:
            return None
        name, _, run = named.decode().strip().partition(" ")
        generation = self.generation(name, run or None)
        doc = generation.document()
        if run and doc and doc.get("run") != run:  # read while being replaced: ask again next time
            return None
        return generation if doc and doc.get("complete") and doc.get("layer") == layer_url else None

    def remove(self) -> bool:
        """Delete every generation (the dataset is removed); whether there were any."""
        import shutil

        shutil.rmtree(self.cache, ignore_errors=True)
        return locations.remove_tree(self.root)

    def start(
        self, layer_url: str, grid: MeshGrid, params: SurfaceParams, seq: int | None, restart: bool = False
    ) -> Generation:
        """The generation a run writes: an unfinished one with the same settings (resumed), else a new one.
        ``seq``: the graph operation whose roots it meshes (None: no graph, the stored labels)."""
        labels = "stored" if seq is None else "roots"  # a dataset given a graph since is meshed anew
        settings = {"layer": layer_url, "grid": grid.to_json(), "params": params.to_json(), "labels": labels}
        numbers = sorted(
            (int(name[1:]) for name in locations.folders_in(self.root) if name[:1] == "g" and name[1:].isdigit()),
            reverse=True,
        )
        if not restart:
            for number in numbers:
                generation = self.generation(f"g{number}")
                doc = generation.document()
                if (
                    doc
                    and not doc.get("complete")
                    and {k: doc.get(k) for k in settings} == json.loads(json.dumps(settings))
                ):
                    return generation
        number = 1 + max(numbers or [0])
        generation = self.generation(f"g{number}")
        run = uuid.uuid4().hex  # names of runs come again after a removal; their ids do not
        generation.write_document({**settings, "number": number, "run": run, "seq": seq, "complete": False})
        return generation

    def publish(self, generation: Generation) -> None:
        """Make a complete generation the one in use."""
        locations.put(locations.join(self.root, "current"), f"{generation.name} {generation.run_id or ''}".encode())


class FragmentFile:
    """One fragment file of a run, read whole or by byte range: on this machine (``path``, which a
    front server can send itself) or in object storage (one ranged GET per read)."""

    def __init__(self, location: str, size: int):
        self.location, self.size = location, size
        self.path = None if locations.is_remote(location) else locations.local_path(location)

    def read(self, start: int = 0, stop: int | None = None) -> bytes:
        stop = self.size if stop is None else min(stop, self.size)
        if stop <= start:
            return b""
        data = locations.read_range(self.location, start, stop)
        if data is None or len(data) != stop - start:  # deleted meanwhile, or the store did not answer
            raise Unavailable("the meshes' store cannot be read just now; try again")
        return data


class Generation:
    """One meshing run's files, at ``location`` (a folder or a URL); ``caches``: where this machine
    keeps what it derives from a run in object storage, a folder per run (:attr:`cache`)."""

    def __init__(self, location: str | os.PathLike, caches: Path | None = None):
        self.location = str(location)
        self.remote = locations.is_remote(self.location)
        self.name = self.location.rstrip("/").rsplit("/", 1)[-1]
        parent = self.location.rstrip("/").rsplit("/", 1)[0]
        self._caches = (
            Path(caches) if caches is not None else cache_root() / hashlib.sha256(parent.encode()).hexdigest()[:16]
        )
        self._index = None
        self._index_lock = threading.Lock()
        self._fetching: threading.Thread | None = None
        self._copy_failed_at = -float("inf")
        self._complete_doc: dict | None = None
        self._sizes: dict[str, int] = {}
        self._quick_lock = threading.Lock()  # short sections only (sizes, the copying thread): never held during a copy
        self._dynamic_kept: set[str] = set()  # dynamic files known to be written (they never change)

    def at(self, *names: str) -> str:
        return locations.join(self.location, *names)

    @property
    def run_id(self) -> str | None:
        """The id its run was given (None: a run from before ids were given)."""
        doc = self.document()
        return doc.get("run") if doc else None

    @property
    def cache(self) -> Path:
        """This machine's folder for what it derives from the run (index copy, claims, files made per
        label): for a local run, the run's own folder; else one named by the run's id, so a copy of
        a removed dataset's run is never taken for a new run of the same name."""
        if not self.remote:
            return locations.local_path(self.location)
        run = self.run_id
        return self._caches / (f"{self.name}-{run[:16]}" if run else self.name)

    def document(self) -> dict | None:
        if self._complete_doc is not None:
            return self._complete_doc
        try:
            doc = json.loads(locations.get(self.at("generation.json")) or b"null")
        except ValueError:
            return None
        if isinstance(doc, dict) and doc.get("complete"):
            self._complete_doc = doc  # a complete run's document no longer changes
        return doc if isinstance(doc, dict) else None

    def write_document(self, doc: dict) -> None:
        locations.put(self.at("generation.json"), json.dumps(doc, indent=1).encode())
        self._complete_doc = None

    @property
    def complete(self) -> bool:
        doc = self.document()
        return bool(doc and doc.get("complete"))

    @property
    def shows_roots(self) -> bool:
        """Whether fragments show a graph's roots (else the stored labels)."""
        return self.document().get("labels", "roots") == "roots"

    @property
    def number(self) -> int:
        return int(self.document()["number"])

    @property
    def grid(self) -> MeshGrid:
        return MeshGrid.from_json(self.document()["grid"])

    @property
    def params(self) -> SurfaceParams:
        return SurfaceParams(**self.document()["params"])

    # ---- chunks ----------------------------------------------------------------
    def _size(self, location: str) -> int | None:
        """A file's size, remembered (files of a run never change; a HEAD each in object storage)."""
        size = self._sizes.get(location)
        if size is None:
            size = _from_store(locations.size, location)
            if size is not None:
                with self._quick_lock:  # request threads share this cache
                    if len(self._sizes) >= _SIZES_KEPT:
                        self._sizes.pop(next(iter(self._sizes)), None)
                    self._sizes[location] = size
        return size

    def fragment_file(self, name: str) -> FragmentFile | None:
        """The fragment file ``initial/<name>.frags``, if it exists."""
        location = self.at("initial", f"{name}.frags")
        size = self._size(location)
        return None if size is None else FragmentFile(location, size)

    def read_fragment(self, level: int, coords, offset: int, nbytes: int) -> bytes:
        """The bytes of one stored fragment (its file's name from its level and position); a file
        missing or cut short is an error, never a fragment silently left out of a coarser level."""
        location = self.at("initial", f"{file_name(level, coords)}.frags")
        data = locations.read_range(location, offset, offset + nbytes)
        if data is None or len(data) != nbytes:
            raise OSError(f"{location}: {nbytes} bytes at {offset} cannot be read")
        return data

    def parts_done(self) -> set[str]:
        """The chunks whose part is written (one listing: a rerun skips them)."""
        return {name.removesuffix(".npz") for name in locations.names_in(self.at("parts")) if name.endswith(".npz")}

    def write_chunk(self, name: str, core_svs, core_roots, meshes: dict[int, bytes]) -> None:
        """A chunk's fragments (one per root of its core) and its part of the index."""
        core_svs = np.asarray(core_svs, dtype=np.uint64)
        core_roots = np.asarray(core_roots, dtype=np.uint64)
        roots, sv_group = np.unique(core_roots, return_inverse=True)
        blobs = [meshes.get(int(r), b"") for r in roots.tolist()]
        sizes = np.array([len(b) for b in blobs], dtype=np.int64)
        offsets = (np.cumsum(sizes) - sizes).astype(np.int64)  # where each starts (none for an empty chunk)
        locations.put(self.at("initial", f"{name}.frags"), b"".join(blobs))
        locations.put(  # after its fragments: a part says the chunk is done
            self.at("parts", f"{name}.npz"),
            _npz_bytes(
                svs=core_svs,
                sv_group=sv_group.astype(np.int32),
                roots=roots,
                offsets=offsets,
                sizes=sizes,
                svcount=np.bincount(sv_group, minlength=len(roots)).astype(np.int32),
            ),
        )

    def finish(self, grid: MeshGrid, join=None) -> None:
        """Join every chunk's part into the index, build the coarser levels, mark the generation complete.

        ``join(parts)`` makes a level's fragments (:func:`.levels.coarser`); by default here, one after
        the other: a run with processes spreads them with :func:`join_in`."""
        join = join or (lambda parts: join_parts(self.read_fragment, parts))
        svs, chunks, groups = [], [], []
        coords, group_coords, group_root, group_offset, group_nbytes = [], [], [], [], []
        first_group = 0
        for number, coord in enumerate(grid.coords()):
            coords.append(coord)
            stored = locations.get(self.at("parts", f"{MeshGrid.name(coord)}.npz"))
            if stored is None:
                raise FileNotFoundError(f"{self.location}: chunk {MeshGrid.name(coord)} has no part (not meshed)")
            with np.load(io.BytesIO(stored)) as part:
                svs.append(part["svs"])
                chunks.append(np.full(len(part["svs"]), number, dtype=np.int32))
                groups.append(part["sv_group"] + first_group)
                group_coords.append(np.tile(np.asarray(coord, dtype=np.int32), (len(part["roots"]), 1)))
                group_root.append(part["roots"])
                group_offset.append(part["offsets"])
                group_nbytes.append(part["sizes"])
                first_group += len(part["roots"])
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        entry_sv, entry_chunk, entry_group = cat(svs, np.uint64), cat(chunks, np.int32), cat(groups, np.int32)
        order = np.argsort(entry_sv, kind="stable")
        entry_sv, entry_chunk, entry_group = entry_sv[order], entry_chunk[order], entry_group[order]
        unique, counts = np.unique(entry_sv, return_counts=True)
        tables = [
            {
                "level": 0,
                "coords": np.concatenate(group_coords) if group_coords else np.zeros((0, 3), np.int32),
                "root": cat(group_root, np.uint64),
                "offset": cat(group_offset, np.int64),
                "nbytes": cat(group_nbytes, np.int64),
            }
        ]
        entry_groups = [entry_group]
        first = [0]
        for _ in range(level_count(grid.shape)):
            parent_of, parents = coarser(tables[-1], join, self._write_level)
            first.append(first[-1] + len(tables[-1]["root"]))
            entry_groups.append((parent_of[entry_groups[-1] - first[-2]] + first[-1]).astype(np.int32))
            tables.append(parents)
        entry_groups = np.stack(entry_groups, axis=1)
        total = first[-1] + len(tables[-1]["root"])
        self._write_index(
            dict(
                svs=unique,
                indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                entry_chunk=entry_chunk,
                entry_groups=entry_groups,
                chunk_coords=np.asarray(coords, dtype=np.int32).reshape(-1, 3),
                group_level=np.concatenate([np.full(len(t["root"]), t["level"], np.int8) for t in tables]),
                group_coords=np.concatenate([t["coords"] for t in tables]).astype(np.int32),
                group_root=np.concatenate([t["root"] for t in tables]),
                group_offset=np.concatenate([t["offset"] for t in tables]),
                group_nbytes=np.concatenate([t["nbytes"] for t in tables]),
                group_svcount=np.bincount(entry_groups.ravel(), minlength=total).astype(np.int32),
            )
        )
        self.write_document({**self.document(), "levels": len(tables) - 1, "complete": True})

    def _write_index(self, arrays: dict) -> None:
        """One ``.npy`` per array in ``index/``, put in place whole: every server process maps them
        read-only, so the operating system shares their pages (as with a graph's base). In object
        storage the index is uploaded with its manifest, last, and this machine keeps its copy."""
        import shutil

        staging = self.cache / "index.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
        if self.remote:  # with sizes and hashes, so that every machine's copy is checked
            manifest = {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "files": folder_copies.describe(staging, arrays),
            }
            (staging / folder_copies.MANIFEST).write_text(json.dumps(manifest, indent=1))
            folder_copies.upload(staging, self.at("index"))
        shutil.rmtree(self.cache / "index", ignore_errors=True)
        os.replace(staging, self.cache / "index")
        self._index = None

    def _write_level(self, level: int, coords, data: bytes) -> None:
        locations.put(self.at("initial", f"{file_name(level, coords)}.frags"), data)

    def index(self) -> dict[str, np.ndarray]:
        """The index arrays, memory-mapped read-only (from object storage: a verified copy first)."""
        with self._index_lock:
            if self._index is None:
                folder = self.cache / "index"
                if self.remote:
                    if time.monotonic() - self._copy_failed_at < _COPY_RETRY_SECONDS:
                        raise Unavailable("the meshes' index cannot be read just now; try again later")
                    try:
                        folder_copies.verified_copy(self.at("index"), folder, "mesh index", INDEX_FORMAT, INDEX_VERSION)
                    except Exception as error:  # noqa: BLE001 - logged here; the client is told no URL
                        self._copy_failed_at = time.monotonic()
                        logging.getLogger(__name__).error("copying the mesh index failed: %s", error)
                        raise Unavailable("the meshes' index cannot be read just now; try again later") from None
                self._index = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _INDEX_ARRAYS}
            return self._index

    def index_ready(self) -> bool:
        """Whether :meth:`index` maps at once (a run in object storage: this machine has its copy)."""
        return not self.remote or (self.cache / "index" / folder_copies.MANIFEST).exists()

    def fetch_index_in_background(self) -> None:
        """Start copying the index here in a thread of its own (once at a time per run; never waiting
        for a copy under way, which holds the index's lock)."""
        with self._quick_lock:
            if self._fetching is not None and self._fetching.is_alive():
                return

            def fetch():
                try:
                    self.index()
                except Unavailable:  # logged; tried again after a while, the run in use answering meanwhile
                    pass

            self._fetching = threading.Thread(target=fetch, name="mesh-index-copy", daemon=True)
            self._fetching.start()

    # ---- fragments made after edits ----------------------------------------------
    def dynamic_name(self, coord, supervoxels: np.ndarray) -> str:
        """The name of the fragment showing ``supervoxels`` (sorted) in one chunk of this run: it says what
        it shows (another run, with other chunks or settings, names it differently)."""
        shown = np.asarray(supervoxels, dtype="<u8").tobytes()
        digest = hashlib.blake2b(shown, digest_size=8, salt=str(self.number).encode()[:16]).hexdigest()
        return f"{MeshGrid.name(coord)}_{digest}"

    def dynamic_size(self, name: str) -> int | None:
        """The size of the dynamic fragment ``name`` (``.drc``), None while it is not made."""
        return self._size(self.at("dynamic", f"{name}.drc"))

    def read_dynamic(self, name: str, suffix: str) -> bytes | None:
        """``dynamic/<name><suffix>`` (``.drc``: the fragment, ``.svs``: the supervoxels it shows)."""
        return _from_store(locations.get, self.at("dynamic", f"{name}{suffix}"))

    def keep_dynamic(self, name: str, suffix: str, data: bytes, if_new: bool = False) -> None:
        """Write ``dynamic/<name><suffix>`` (``if_new``: unless it is there: it never changes)."""
        key = name + suffix
        if if_new and (key in self._dynamic_kept or _from_store(locations.exists, self.at("dynamic", key))):
            self._remember_kept(key)
            return
        _from_store(locations.put, self.at("dynamic", key), data)
        self._remember_kept(key)

    def _remember_kept(self, key: str) -> None:
        with self._quick_lock:
            if len(self._dynamic_kept) >= _SIZES_KEPT:
                self._dynamic_kept.clear()  # only saves a request per name: start again
            self._dynamic_kept.add(key)

    def claim_path(self, name: str) -> Path:
        """The file whose creation claims making dynamic fragment ``name`` on this machine (server
        processes sharing a disk make it once; nodes sharing a bucket may each make it, the same bytes)."""
        return self.cache / "dynamic" / f"{name}.making"


def join_in(location: str, parts: list) -> list[bytes]:
    """:func:`.levels.join_parts` for the generation at ``location``, in whichever process runs it."""
    return join_parts(Generation(location).read_fragment, parts)
