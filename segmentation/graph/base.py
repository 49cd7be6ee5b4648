"""The immutable base of a dataset's graph: columnar files written once, memory-mapped by every process.

A graph of 10^8 supervoxels is a few GB of arrays. Loading them into each server worker
(from SQL, as axonlink once did) took minutes per worker and a private copy each; as
``.npy`` files opened with ``mmap_mode="r"`` they cost nothing to open and the operating
system keeps one copy of the pages for every worker and process on the machine. Edits never
write here: they live in the operation log (SQL) and in each process's small overlay
(:mod:`segmentation.graph.changes`); compaction writes a new base.

A base is a directory of ``.npy`` files and a ``manifest.json`` (format version, counts,
each file's size and SHA-256). Opening checks the format and every file's size (cheap);
:meth:`GraphBase.verify` checks the hashes (a full read: done when a base is copied from
object storage and by ``axonlink check``).

Arrays (``n`` supervoxels, ``m`` edges, dense supervoxel positions ``0..n-1``; positions are
int32 below 2^31 supervoxels, else int64):

- ``supervoxels`` (n,) uint64, sorted; ``boxes`` (n, 6) int32 ``[x0, y0, z0, x1, y1, z1)``, optional
- ``root_of`` (n,) uint64: each supervoxel's root at the base's operation ``seq``
- ``root_ids`` (r,) uint64 sorted, ``root_indptr`` (r+1,) int64, ``root_members`` positions:
  the supervoxels of each root the base knows, each run sorted (roots merges made are not listed:
  their members are those of the roots they joined, see :mod:`segmentation.graph.joins`)
- ``csr_indptr`` (n+1,) int64, ``csr_neighbors`` positions, ``csr_edges`` edge numbers: the
  adjacency, every edge in both rows, each row sorted by neighbour
- ``area`` (m,) float32 contact area, ``active`` (m,) bool: edge state at ``seq``
- ``history_keys``, ``history_roots`` (compacted bases only): the root assignments of the operations
  folded in, for time travel to before ``seq`` (see :mod:`segmentation.graph.compaction`);
  ``history_bitmap`` says which positions they list (the rest had their base root all along)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Invalid
from ..folder_copies import file_sha256, sweep_partial
from .ids import root_ids as root_ids_of

FORMAT = "axonlink-graph-base"
VERSION = 1
_ARRAYS = (
    "supervoxels",
    "boxes",
    "root_of",
    "root_ids",
    "root_indptr",
    "root_members",
    "csr_indptr",
    "csr_neighbors",
    "csr_edges",
    "area",
    "active",
    "history_keys",
    "history_roots",
    "history_bitmap",
)
_OPTIONAL = ("boxes", "history_keys", "history_roots", "history_bitmap")


class BaseError(Invalid):
    """A base that cannot be built (duplicate or unknown ids) or read (missing, damaged, foreign)."""


def position_dtype(count: int) -> np.dtype:
    """Positions of ``count`` things: int32 while they fit (half the bytes), else int64."""
    return np.dtype(np.int32 if count < 2**31 - 1 else np.int64)


@dataclass
class GraphBase:
    """The arrays of one base (in memory after :meth:`build`, memory-mapped after :meth:`open`)."""

    supervoxels: np.ndarray
    boxes: np.ndarray | None
    root_of: np.ndarray
    root_ids: np.ndarray
    root_indptr: np.ndarray
    root_members: np.ndarray
    csr_indptr: np.ndarray
    csr_neighbors: np.ndarray
    csr_edges: np.ndarray
    area: np.ndarray
    active: np.ndarray
    # root assignments before ``seq`` (compacted bases): keys (position << 32 | operation), sorted;
    # every position listed has an entry at operation 0 (its root as ingested)
    history_keys: np.ndarray | None = None
    history_roots: np.ndarray | None = None
    history_bitmap: np.ndarray | None = None  # one bit per position: does the history list it?
    seq: int = 0  # the last operation folded in (0: as ingested)
    root_base: int = 0  # this graph's root counters start above it
    next_root_counter: int = 1
    path: Path | None = None

    @property
    def supervoxel_count(self) -> int:
        return len(self.supervoxels)

    @property
    def edge_count(self) -> int:
        return len(self.area)

    # ---- building ----------------------------------------------------------
    @classmethod
    def build(cls, supervoxels, edge_a, edge_b, area, active, boxes=None, root_base: int = 0) -> GraphBase:
        """A base as ingested: initial roots are the components of the active edges, numbered from
        ``root_base + 1`` in order of their smallest supervoxel."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        sv = np.asarray(supervoxels, dtype=np.uint64).ravel()
        order = np.argsort(sv, kind="stable")
        sv = sv[order]
        n = len(sv)
        if n and np.any(sv[1:] == sv[:-1]):
            raise BaseError("duplicate supervoxel ids")
        if boxes is not None:
            boxes = np.ascontiguousarray(np.asarray(boxes, dtype=np.int32).reshape(-1, 6)[order])
        pos = position_dtype(n)
        a = positions_of(sv, edge_a, pos)
        b = positions_of(sv, edge_b, pos)
        if np.any(a == b):
            raise BaseError("an edge joins a supervoxel to itself")
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        del a, b
        key = lo.astype(np.int64) * max(n, 1) + hi
        area = np.asarray(area, dtype=np.float32).ravel()
        active = np.asarray(active, dtype=bool).ravel()
        if not np.all(key[1:] > key[:-1]):  # not already sorted and unique (a generator's edges often are)
            order = np.argsort(key, kind="stable")
            key = key[order]
            if np.any(key[1:] == key[:-1]):
                raise BaseError("an edge is listed twice")
            lo, hi, area, active = lo[order], hi[order], area[order], active[order]
            del order
        del key
        m = len(lo)
        # initial roots: components over the active edges, ranked by their smallest member
        graph = coo_matrix((np.ones(int(active.sum()), dtype=np.int8), (lo[active], hi[active])), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        del graph
        rank = _rank_by_smallest_member(labels)
        del labels
        roots = int(rank.max()) + 1 if n else 0
        root_ids = root_ids_of(np.arange(root_base + 1, root_base + roots + 1, dtype=np.uint64))
        root_of = root_ids[rank] if n else np.zeros(0, dtype=np.uint64)
        members = np.argsort(rank, kind="stable").astype(pos)  # each root's members stay sorted
        root_indptr = np.concatenate([[0], np.cumsum(np.bincount(rank, minlength=roots))]).astype(np.int64)
        del rank
        # the adjacency, both directions; (hi, lo) first so a stable sort by row leaves each row sorted
        heads = np.concatenate([hi, lo])
        tails = np.concatenate([lo, hi])
        edge_numbers = np.arange(m, dtype=position_dtype(m))
        edge_numbers = np.concatenate([edge_numbers, edge_numbers])
        del lo, hi
        csr_indptr = np.concatenate([[0], np.cumsum(np.bincount(heads, minlength=n))]).astype(np.int64)
        row_order = np.argsort(heads, kind="stable")
        del heads
        csr_neighbors = tails[row_order]
        del tails  # peaks matter: at 10^8 supervoxels each of these is 0.8-3.2 GB
        csr_edges = edge_numbers[row_order]
        del edge_numbers, row_order
        return cls(
            supervoxels=sv,
            boxes=boxes,
            root_of=root_of,
            root_ids=root_ids,
            root_indptr=root_indptr,
            root_members=members,
            csr_indptr=csr_indptr,
            csr_neighbors=csr_neighbors,
            csr_edges=csr_edges,
            area=area,
            active=active,
            seq=0,
            root_base=int(root_base),
            next_root_counter=int(root_base) + roots + 1,
        )

    # ---- files -------------------------------------------------------------
    def write(self, store: str | os.PathLike, name: str = "", reuse: GraphBase | None = None) -> Path:
        """Write this base into a new directory under ``store`` (returned); never overwrites one.

        Files go to a temporary directory first, renamed into place when complete, so a
        reader never sees half a base. Arrays that are ``reuse``'s own (a compaction keeps the
        supervoxels, boxes, often the adjacency) are hard-linked from its files, not copied.
        """
        reused = read_manifest(reuse.path)["files"] if reuse is not None and reuse.path is not None else {}
        store = Path(store)
        store.mkdir(parents=True, exist_ok=True)
        sweep_partial(store)
        final = store / f"{name or 'base'}-{self.seq}-{uuid.uuid4().hex[:12]}"
        partial = store / f".{final.name}.partial"
        partial.mkdir()
        files = {}
        try:
            for array_name in _ARRAYS:
                array = getattr(self, array_name)
                if array is None:
                    continue
                target = partial / f"{array_name}.npy"
                if array_name in reused and array is getattr(reuse, array_name):
                    _link_or_copy(reuse.path / f"{array_name}.npy", target)
                    files[array_name] = reused[array_name]
                    continue
                np.save(target, np.ascontiguousarray(array))
                files[array_name] = {"bytes": target.stat().st_size, "sha256": file_sha256(target)}
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "supervoxels": self.supervoxel_count,
                "edges": self.edge_count,
                "roots": len(self.root_ids),
                "seq": self.seq,
                "root_base": self.root_base,
                "next_root_counter": self.next_root_counter,
                "files": files,
            }
            (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
            os.replace(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return final

    @classmethod
    def open(cls, path: str | os.PathLike) -> GraphBase:
        """Memory-map a base directory read-only (no array is read until used)."""
        path = Path(path)
        manifest = read_manifest(path)
        arrays = {}
        for array_name in _ARRAYS:
            entry = manifest["files"].get(array_name)
            if entry is None:
                if array_name not in _OPTIONAL:
                    raise BaseError(f"graph base {path}: {array_name}.npy is missing from its manifest")
                arrays[array_name] = None
                continue
            file = path / f"{array_name}.npy"
            try:
                if file.stat().st_size != entry["bytes"]:
                    raise BaseError(f"graph base {path}: {file.name} is not the size its manifest says")
                arrays[array_name] = np.load(file, mmap_mode="r", allow_pickle=False)
            except OSError as error:  # missing (a compaction deleted it just now?) or unreadable
                raise BaseError(f"graph base {path}: {file.name} cannot be read ({error.strerror})") from None
        base = cls(
            **arrays,
            seq=int(manifest["seq"]),
            root_base=int(manifest["root_base"]),
            next_root_counter=int(manifest["next_root_counter"]),
            path=path,
        )
        if base.supervoxel_count != manifest["supervoxels"] or base.edge_count != manifest["edges"]:
            raise BaseError(f"graph base {path}: its arrays do not have the lengths its manifest says")
        return base

    def verify(self) -> None:
        """Check every file's SHA-256 against the manifest (reads the whole base)."""
        if self.path is None:
            return
        for array_name, entry in read_manifest(self.path)["files"].items():
            if file_sha256(self.path / f"{array_name}.npy") != entry["sha256"]:
                raise BaseError(f"graph base {self.path}: {array_name}.npy is damaged (checksum differs)")


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise BaseError(f"graph base {path}: no readable manifest.json ({error})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BaseError(
            f"graph base {path}: format {manifest.get('format')!r} version {manifest.get('version')!r} "
            f"is not {FORMAT!r} version {VERSION}"
        )
    return manifest


def remove(path: str | os.PathLike | None) -> None:
    """Delete a base directory that nothing refers to any more (best effort: a reader that still has
    it mapped keeps its pages until it lets go)."""
    if path:
        shutil.rmtree(path, ignore_errors=True)


def positions_of(sorted_ids: np.ndarray, ids, dtype=np.int64) -> np.ndarray:
    """Positions of ``ids`` in ``sorted_ids`` (as ``dtype``); any id not there raises :class:`BaseError`."""
    ids = np.asarray(ids, dtype=np.uint64).ravel()
    n = len(sorted_ids)
    if not n:
        if len(ids):
            raise BaseError(f"unknown supervoxel id(s): {[int(x) for x in ids[:5]]}")
        return np.zeros(0, dtype=dtype)
    first = sorted_ids[0]
    if int(sorted_ids[-1]) - int(first) == n - 1:  # ids first..first+n-1 (often): a subtraction
        bad = (ids < first) | (ids > sorted_ids[-1])
        if bad.any():
            raise BaseError(f"unknown supervoxel id(s): {[int(x) for x in ids[bad][:5]]}")
        return (ids - first).astype(dtype)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), n - 1)
    bad = sorted_ids[pos] != ids
    if bad.any():
        raise BaseError(f"unknown supervoxel id(s): {[int(x) for x in ids[bad][:5]]}")
    return pos.astype(dtype)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copyfile(source, target)


def _rank_by_smallest_member(labels: np.ndarray) -> np.ndarray:
    """Relabel components 0..k-1 in order of their smallest member position."""
    if len(labels) == 0:
        return labels.astype(np.int64)
    smallest = np.full(labels.max() + 1, len(labels), dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(len(labels)))
    rank = np.empty_like(smallest)
    rank[np.argsort(smallest, kind="stable")] = np.arange(len(smallest))
    return rank[labels]
