"""Built-in meshes: every dataset gets 3D. With a graph, one fragment per root per chunk (and per
block of chunks above) for the graphene source and the roots view; without one, Neuroglancer
multi-resolution meshes of the stored labels (:mod:`~segmentation.meshing.multilod`).

:func:`~segmentation.meshing.build.mesh_dataset` (``axonlink mesh NAME``) meshes a dataset;
:class:`DatasetMeshes` is what the server asks: a root's manifest
(:mod:`~segmentation.meshing.cover`), the bytes of a chunk's fragment file, and fragments made
after edits: made in the background as soon as an edit's new roots are known (:meth:`DatasetMeshes.prepare`)
or their manifest is asked for, and kept; until then manifests list their quick (unsimplified)
twins, made on request (:mod:`~segmentation.meshing.cover`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import locations
from ..errors import Unavailable
from .build import MeshingError, mesh_dataset, mesh_supervoxels, open_volume
from .cover import QUICK, manifest, remember_dynamic
from .store import FragmentFile, Generation, MeshStore
from .surfaces import SurfaceParams

__all__ = ["DatasetMeshes", "FragmentFile", "MeshStore", "MeshingError", "mesh_dataset"]

# a run's fragment file as the graphene source names it: g<run>-<chunk or block>.frags
_FRAGMENT_FILE = re.compile(r"^g(\d{1,9})-((?:L\d_)?\d{1,7}_\d{1,7}_\d{1,7})\.frags$")
_DYNAMIC = re.compile(r"^(\d{1,7}_\d{1,7}_\d{1,7})_[0-9a-f]{16}(q?)$")  # (chunk, quick twin?)
# a built-in fragment as a legacy mesh of the roots view: g<run>-<file>-<offset>-<size> or d-<dynamic name>
_LEGACY_STORED = re.compile(r"^g(\d{1,9})-((?:L\d_)?\d{1,7}_\d{1,7}_\d{1,7})-(\d{1,15})-(\d{1,12})$")
_LEGACY_DYNAMIC = re.compile(r"^d-(\d{1,7}_\d{1,7}_\d{1,7}_[0-9a-f]{16}q?)$")
LEGACY_DIR = "axonlink_meshes"  # the roots view's mesh directory (legacy format) for built-in meshes
_RECHECK_SECONDS = 1.0  # how often a server looks for a newer generation
_MANIFESTS_CACHED = 2048
_BUILD_WAIT_SECONDS = 120.0  # a request for a fragment another thread is making waits this long at most
_UNSIMPLIFIED = SurfaceParams(reduction_factor=0, max_error_nm=0)  # quick twins: the simplifier is most of the cost
_CLAIM_SECONDS = 120.0  # a claim on making a fragment (another server process makes it) lapses after this


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
        self._building: dict[str, threading.Event] = {}  # dynamic fragments being made, by name
        self._background: ThreadPoolExecutor | None = None
        self._queued = 0
        self._scheduled: set[str] = set()  # dynamic fragments queued for the background, not yet done

    @property
    def remote(self) -> bool:
        """Whether the meshes are in object storage (reading them is a request, not a file read)."""
        return locations.is_remote(self.store.root)

    @property
    def generation(self) -> Generation | None:
        """The complete generation in use (re-read at most every second). A newer run in object
        storage is switched to once this machine has its index: meanwhile its index is copied in
        the background and the run in use goes on answering (as a graph's new base is)."""
        now = time.monotonic()
        with self._lock:
            looking = now - self._checked > _RECHECK_SECONDS
            if looking:
                self._checked = now  # one thread looks; the others answer from the run in use meanwhile
        if looking:
            try:
                current = self.store.current(self.layer_url)
            except Exception as error:  # noqa: BLE001 - a bucket that does not answer: the run in use stays
                logging.getLogger(__name__).warning("cannot look for a newer meshing run: %s", error)
                if self._generation is None:  # not "no meshes": a client would keep that answer
                    with self._lock:
                        self._checked = -float("inf")
                    raise Unavailable("the meshes' store cannot be read just now; try again") from None
                return self._generation
            with self._lock:
                if current is not self._generation:  # another run (the store keeps one object per run)
                    if current is not None and self._generation is not None and not current.index_ready():
                        current.fetch_index_in_background()
                    else:
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
        found = self.manifest_state(root, supervoxels)
        return None if found is None else found[0]

    def cached_manifest(self, root: int) -> list[str] | None:
        """The root's settled manifest if this process has it (no supervoxels needed)."""
        return self._manifests.get(int(root)) if self.of_roots is not None else None

    def manifest_state(self, root: int, supervoxels: np.ndarray) -> tuple[list[str], bool] | None:
        """(fragment names, settled): not settled while some cut chunk is listed by its quick twin, whose
        fragments are then being made in the background (ask again later for the switched list)."""
        generation = self.of_roots
        if generation is None:
            return None
        names = self._manifests.get(int(root))
        if names is not None:
            return names, True
        names, dynamic, pending = manifest(generation, supervoxels)
        remember_dynamic(generation, dynamic)
        if pending:
            for name in pending:
                self._schedule(name)
            return names, False
        with self._lock:
            if len(self._manifests) >= _MANIFESTS_CACHED:
                self._manifests.pop(next(iter(self._manifests)))
            self._manifests[int(root)] = names
        return names, True

    def prepare(self, roots, leaves_of) -> None:
        """Start making the fragments the new roots of an edit need (``leaves_of(root)``: its
        supervoxels), in the background, so they are ready, or nearly, when the viewer asks."""
        if self.of_roots is None:
            return
        for root in roots:
            self._in_background(lambda r: self.manifest_state(r, leaves_of(r)), int(root))

    def settle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is being made in the background (tests, benchmarks); whether it finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queued and not self._building:
                    return True
            time.sleep(0.01)
        return False

    def _schedule(self, name: str) -> None:
        """Queue dynamic fragment ``name`` for the background once, however often its manifest is asked
        for meanwhile (a client asking again and again must not pile work up)."""
        with self._lock:
            if name in self._scheduled:
                return
            self._scheduled.add(name)

        def make():
            try:
                self._make_dynamic(name, False)
            finally:
                with self._lock:
                    self._scheduled.discard(name)

        self._in_background(make)

    def _in_background(self, work, *args) -> None:
        with self._lock:
            if self._background is None:  # one thread: meshing is CPU work, requests come first
                self._background = ThreadPoolExecutor(1, thread_name_prefix=f"meshes-{self.store.dataset}")
            self._queued += 1

        def run():
            try:
                work(*args)
            except Exception:  # noqa: BLE001 - a request for the fragment makes it again and reports
                logging.getLogger(__name__).exception("making fragments in the background failed")
            finally:
                with self._lock:
                    self._queued -= 1

        self._background.submit(run)

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
            found = self.fragment_file(f"g{stored.group(1)}-{stored.group(2)}.frags")
            offset, size = int(stored.group(3)), int(stored.group(4))
            if found is None or offset + size > found.size:
                return None
            data = found.read(offset, offset + size)
        elif dynamic:
            data = self.dynamic_fragment(dynamic.group(1))
        else:
            return None
        if not data:
            return None
        vertices, faces = decode(data)
        return legacy_mesh_fragment(vertices, faces)

    def fragment_file(self, name: str) -> FragmentFile | None:
        """The chunk fragment file ``initial/<name>`` (read by byte range), if it exists."""
        generation = self.generation
        match = _FRAGMENT_FILE.match(name)
        if generation is None or not match or int(match.group(1)) != generation.number:
            return None
        return generation.fragment_file(match.group(2))

    def dynamic_fragment(self, name: str) -> bytes | None:
        """A fragment made after an edit: read, or made now from the voxels (and kept); when another
        thread is making it, its result. A quick twin is answered by the simplified fragment once
        that is made (the same supervoxels, fewer triangles)."""
        generation = self.generation
        match = _DYNAMIC.match(name)
        if generation is None or not match:
            return None
        names = (name.removesuffix(QUICK), name) if match.group(2) else (name,)
        for made in names:
            data = generation.read_dynamic(made, ".drc")
            if data is not None:
                return data or None  # empty: nothing to show
        return self._make_dynamic(name, True)

    def _make_dynamic(self, name: str, wait: bool) -> bytes | None:
        """Make dynamic fragment ``name`` (simplified, or unsimplified for a quick twin) unless made; if
        another thread is making it, wait for it (``wait``) or leave it to that thread."""
        generation = self.generation
        if generation is None:
            return None
        with self._lock:
            running = self._building.get(name)
            if running is None:
                running = self._building[name] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            if wait and running.wait(_BUILD_WAIT_SECONDS):
                return generation.read_dynamic(name, ".drc") or None
            return None
        claim = None
        try:
            made = generation.read_dynamic(name, ".drc")
            if made is not None:
                return made or None
            if not wait:  # in the background: leave it to another server process already making it
                claim = _claim(generation.claim_path(name))
                if claim is None:
                    return None
            chunk, quick = _DYNAMIC.match(name).groups()
            shown = generation.read_dynamic(name.removesuffix(QUICK) if quick else name, ".svs")
            if shown is None:
                return None  # no manifest listed it
            supervoxels = np.frombuffer(shown, dtype="<u8")
            coord = generation.grid.parse(chunk)
            if coord is None:
                return None
            if self._volume is None:
                self._volume = open_volume(self.layer_url)
            params = _UNSIMPLIFIED if quick else generation.params
            data = mesh_supervoxels(self._volume, generation.grid, coord, supervoxels, params)
            generation.keep_dynamic(
                name, ".drc", data or b""
            )  # made, even when empty: manifests stop listing the quick twin
            return data
        finally:
            if claim is not None:
                claim.unlink(missing_ok=True)
            with self._lock:
                self._building.pop(name, None)
            running.set()


def _claim(path: Path) -> Path | None:
    """``path`` made by this process (it makes the fragment), or None when another process's fresh claim is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return path
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime < _CLAIM_SECONDS:
                    return None
                path.unlink()  # left by a process killed while making it
            except FileNotFoundError:
                pass
    return None
