"""Built-in meshes: every dataset gets 3D. With a graph, one fragment per root per chunk (and per
block of chunks above) for the graphene source and the roots view; without one, Neuroglancer
multi-resolution meshes of the stored labels (:mod:`~segmentation.meshing.multilod`).

:func:`~segmentation.meshing.build.mesh_dataset` (``axonlink mesh NAME``) meshes a dataset;
:class:`DatasetMeshes` is what the server asks: a root's manifest
(:mod:`~segmentation.meshing.cover`), the bytes of a chunk's fragment file, and fragments made
after edits (made on first request from the voxels, then kept).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np

from .build import MeshingError, mesh_dataset, mesh_supervoxels, open_volume
from .cover import manifest, remember_dynamic
from .store import Generation, MeshStore, write_atomically

__all__ = ["DatasetMeshes", "MeshStore", "MeshingError", "mesh_dataset"]

# a run's fragment file as the graphene source names it: g<run>-<chunk or block>.frags
_FRAGMENT_FILE = re.compile(r"^g(\d{1,9})-((?:L\d_)?\d{1,7}_\d{1,7}_\d{1,7})\.frags$")
_DYNAMIC = re.compile(r"^(\d{1,7}_\d{1,7}_\d{1,7})_[0-9a-f]{16}$")
# a built-in fragment as a legacy mesh of the roots view: g<run>-<file>-<offset>-<size> or d-<dynamic name>
_LEGACY_STORED = re.compile(r"^g(\d{1,9})-((?:L\d_)?\d{1,7}_\d{1,7}_\d{1,7})-(\d{1,15})-(\d{1,12})$")
_LEGACY_DYNAMIC = re.compile(r"^d-(\d{1,7}_\d{1,7}_\d{1,7}_[0-9a-f]{16})$")
LEGACY_DIR = "axonlink_meshes"  # the roots view's mesh directory (legacy format) for built-in meshes
_RECHECK_SECONDS = 1.0  # how often a server looks for a newer generation
_MANIFESTS_CACHED = 2048


class DatasetMeshes:
    """The built-in meshes of one dataset, as a server reads them (one per dataset and process)."""

    _known: dict[tuple[str, str], DatasetMeshes] = {}
    _known_lock = threading.Lock()

    @classmethod
    def of(cls, home, dataset: str, layer_url: str) -> DatasetMeshes:
        key = (str(home), dataset)
        with cls._known_lock:
            found = cls._known.get(key)
            if found is None or found.layer_url != layer_url:
                found = cls._known[key] = cls(home, dataset, layer_url)
            return found

    def __init__(self, home, dataset: str, layer_url: str):
        self.store = MeshStore(home, dataset)
        self.layer_url = layer_url
        self._generation: Generation | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()
        self._manifests: dict[int, list[str]] = {}
        self._volume = None

    @property
    def generation(self) -> Generation | None:
        """The complete generation in use (re-read at most every second)."""
        now = time.monotonic()
        if now - self._checked > _RECHECK_SECONDS:
            current = self.store.current(self.layer_url)
            with self._lock:
                self._checked = now
                if current is None or self._generation is None or current.folder != self._generation.folder:
                    self._generation, self._manifests = current, {}
        return self._generation

    @property
    def of_roots(self) -> Generation | None:
        """The generation in use when it shows a graph's roots (a dataset meshed before it had a
        graph shows its stored labels: no use to the graph's views until meshed again)."""
        generation = self.generation
        return generation if generation is not None and generation.shows_roots else None

    def manifest(self, root: int, supervoxels: np.ndarray) -> list[str] | None:
        """Fragment names showing root ``root`` (its supervoxels given); None without meshes of roots."""
        generation = self.of_roots
        if generation is None:
            return None
        names = self._manifests.get(int(root))
        if names is None:
            names, dynamic = manifest(generation, supervoxels)
            remember_dynamic(generation, dynamic)
            with self._lock:
                if len(self._manifests) >= _MANIFESTS_CACHED:
                    self._manifests.pop(next(iter(self._manifests)))
                self._manifests[int(root)] = names
        return names

    def legacy_manifest(self, root: int, supervoxels: np.ndarray) -> list[str] | None:
        """The same fragments as :meth:`manifest`, named for Neuroglancer's legacy (precomputed) mesh
        source, which reads each name whole: what the roots view of a moment (share links that open
        as it was) shows in 3D."""
        names = self.manifest(root, supervoxels)
        if names is None:
            return None
        legacy = []
        for name in names:
            _, _, rest = name[1:].partition(":")
            if rest.startswith("~"):
                path, offset, size = rest[1:].split(":")
                legacy.append(f"{path.removesuffix('.frags')}-{offset}-{size}")  # g<run>-<file>-<offset>-<size>
            else:
                legacy.append(f"d-{rest}")
        return legacy

    def legacy_fragment(self, name: str) -> bytes | None:
        """A fragment named by :meth:`legacy_manifest`, as a legacy mesh (float vertices in nm)."""
        from ..precomputed import legacy_mesh_fragment
        from .surfaces import decode

        generation = self.generation
        if generation is None:
            return None
        stored, dynamic = _LEGACY_STORED.match(name), _LEGACY_DYNAMIC.match(name)
        if stored:
            path = self.fragment_file(f"g{stored.group(1)}-{stored.group(2)}.frags")
            offset, size = int(stored.group(3)), int(stored.group(4))
            if path is None or offset + size > path.stat().st_size:
                return None
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(size)
        elif dynamic:
            data = self.dynamic_fragment(dynamic.group(1))
        else:
            return None
        if not data:
            return None
        vertices, faces = decode(data)
        return legacy_mesh_fragment(vertices, faces)

    def fragment_file(self, name: str) -> Path | None:
        """The chunk fragment file ``initial/<name>`` (read by byte range), if it exists."""
        generation = self.generation
        match = _FRAGMENT_FILE.match(name)
        if generation is None or not match or int(match.group(1)) != generation.number:
            return None
        path = generation.fragments_path(match.group(2))
        return path if path.is_file() else None

    def dynamic_fragment(self, name: str) -> bytes | None:
        """A fragment made after an edit: read, or made now from the voxels (and kept)."""
        generation = self.generation
        match = _DYNAMIC.match(name)
        if generation is None or not match:
            return None
        coord = generation.grid.parse(match.group(1))
        made = generation.dynamic_path(name, ".drc")
        try:
            return made.read_bytes()
        except FileNotFoundError:
            pass
        try:
            supervoxels = np.frombuffer(generation.dynamic_path(name, ".svs").read_bytes(), dtype="<u8")
        except FileNotFoundError:
            return None  # no manifest listed it
        if coord is None:
            return None
        if self._volume is None:
            self._volume = open_volume(self.layer_url)
        data = mesh_supervoxels(self._volume, generation.grid, coord, supervoxels, generation.params)
        if data is None:
            return None
        write_atomically(made, data)
        return data
