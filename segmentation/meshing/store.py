"""Where a dataset's built-in meshes live, and the index that says which fragment shows what.

Under ``<home>/meshes/<dataset>/<generation>/`` (a generation is one meshing run):

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

``current`` (a file beside the generations) names the complete generation in use. Everything is
written to a temporary name and renamed, so a killed run leaves nothing half-written in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .grid import MeshGrid
from .levels import coarser, file_name, join_parts, level_count
from .surfaces import SurfaceParams

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


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def _npz_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class MeshStore:
    """The meshes of one dataset: its generations, the one in use, and their indexes."""

    def __init__(self, home: str | os.PathLike, dataset: str):
        self.root = Path(home) / "meshes" / dataset

    def current(self, layer_url: str) -> Generation | None:
        """The complete generation in use, made from the layer at ``layer_url`` (None: the dataset was
        never meshed, or its meshes are of another volume: a dataset removed and added again)."""
        try:
            name = (self.root / "current").read_text().strip()
        except FileNotFoundError:
            return None
        generation = Generation(self.root / name)
        doc = generation.document()
        return generation if doc and doc.get("complete") and doc.get("layer") == layer_url else None

    def remove(self) -> bool:
        """Delete every generation (the dataset is removed); whether there were any."""
        import shutil

        existed = self.root.exists()
        shutil.rmtree(self.root, ignore_errors=True)
        return existed

    def start(
        self, layer_url: str, grid: MeshGrid, params: SurfaceParams, seq: int | None, restart: bool = False
    ) -> Generation:
        """The generation a run writes: an unfinished one with the same settings (resumed), else a new one.
        ``seq``: the graph operation whose roots it meshes (None: no graph, the stored labels)."""
        labels = "stored" if seq is None else "roots"  # a dataset given a graph since is meshed anew
        settings = {"layer": layer_url, "grid": grid.to_json(), "params": params.to_json(), "labels": labels}
        if not restart:
            for folder in sorted(self.root.glob("g*"), reverse=True):
                generation = Generation(folder)
                doc = generation.document()
                if (
                    doc
                    and not doc.get("complete")
                    and {k: doc.get(k) for k in settings} == json.loads(json.dumps(settings))
                ):
                    return generation
        number = 1 + max([int(p.name[1:]) for p in self.root.glob("g*") if p.name[1:].isdigit()] or [0])
        generation = Generation(self.root / f"g{number}")
        generation.write_document({**settings, "number": number, "seq": seq, "complete": False})
        return generation

    def publish(self, generation: Generation) -> None:
        """Make a complete generation the one in use."""
        write_atomically(self.root / "current", generation.folder.name.encode())


class Generation:
    """One meshing run's files."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._index = None

    def document(self) -> dict | None:
        try:
            return json.loads((self.folder / "generation.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def write_document(self, doc: dict) -> None:
        write_atomically(self.folder / "generation.json", json.dumps(doc, indent=1).encode())

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
    def fragments_path(self, name: str) -> Path:
        return self.folder / "initial" / f"{name}.frags"

    def part_path(self, name: str) -> Path:
        return self.folder / "parts" / f"{name}.npz"

    def has_part(self, name: str) -> bool:
        return self.part_path(name).exists()

    def write_chunk(self, name: str, core_svs, core_roots, meshes: dict[int, bytes]) -> None:
        """A chunk's fragments (one per root of its core) and its part of the index."""
        core_svs = np.asarray(core_svs, dtype=np.uint64)
        core_roots = np.asarray(core_roots, dtype=np.uint64)
        roots, sv_group = np.unique(core_roots, return_inverse=True)
        blobs = [meshes.get(int(r), b"") for r in roots.tolist()]
        sizes = np.array([len(b) for b in blobs], dtype=np.int64)
        offsets = (np.cumsum(sizes) - sizes).astype(np.int64)  # where each starts (none for an empty chunk)
        write_atomically(self.fragments_path(name), b"".join(blobs))
        write_atomically(
            self.part_path(name),
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
        join = join or (lambda parts: join_parts(self._read_fragment, parts))
        svs, chunks, groups = [], [], []
        coords, group_coords, group_root, group_offset, group_nbytes = [], [], [], [], []
        first_group = 0
        for number, coord in enumerate(grid.coords()):
            coords.append(coord)
            with np.load(self.part_path(MeshGrid.name(coord))) as part:
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
        """One ``.npy`` per array in ``index/``, moved into place whole: every server process maps them
        read-only, so the operating system shares their pages (as with a graph's base)."""
        import shutil

        staging = self.folder / "index.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
        shutil.rmtree(self.folder / "index", ignore_errors=True)
        os.replace(staging, self.folder / "index")

    def _read_fragment(self, level: int, coords, offset: int, nbytes: int) -> bytes:
        with open(self.fragments_path(file_name(level, coords)), "rb") as handle:
            handle.seek(offset)
            return handle.read(nbytes)

    def _write_level(self, level: int, coords, data: bytes) -> None:
        write_atomically(self.fragments_path(file_name(level, coords)), data)

    def index(self) -> dict[str, np.ndarray]:
        """The index arrays, memory-mapped read-only."""
        if self._index is None:
            folder = self.folder / "index"
            self._index = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _INDEX_ARRAYS}
        return self._index

    # ---- fragments made after edits ----------------------------------------------
    def dynamic_name(self, coord, supervoxels: np.ndarray) -> str:
        """The name of the fragment showing ``supervoxels`` (sorted) in one chunk of this run: it says what
        it shows (another run, with other chunks or settings, names it differently)."""
        shown = np.asarray(supervoxels, dtype="<u8").tobytes()
        digest = hashlib.blake2b(shown, digest_size=8, salt=str(self.number).encode()[:16]).hexdigest()
        return f"{MeshGrid.name(coord)}_{digest}"

    def dynamic_path(self, name: str, suffix: str) -> Path:
        return self.folder / "dynamic" / f"{name}{suffix}"


def join_in(folder: str, parts: list) -> list[bytes]:
    """:func:`.levels.join_parts` for the generation in ``folder``, in whichever process runs it."""
    return join_parts(Generation(Path(folder))._read_fragment, parts)
