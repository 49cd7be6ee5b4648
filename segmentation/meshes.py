"""Draco mesh fragments, one per supervoxel, for Neuroglancer's graphene mesh source.

A graphene source always reads Draco. A root's manifest lists its supervoxels by
name, so a merge or a split changes manifests only: no remeshing, and every
fragment is immutable (a supervoxel never changes). Fragments are made from the
layer's legacy per-supervoxel meshes with DracoPy — all of them when the graph is
ingested (:func:`build_fragments`), any still missing on first request — and kept
under ``<home>/graphene/<dataset>/<supervoxel id>.drc``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import DracoPy
import numpy as np

MESH_DIR = "graphene_meshes"  # the mesh directory a graphene info names, under its data_dir
MESH_INFO = {"@type": "neuroglancer_legacy_mesh", "sharding": {}}  # "sharding" keeps fragment URLs clean
QUANTIZATION_BITS = 16


def legacy_mesh(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float32 N×3 in nm, triangles uint32 M×3) of one precomputed legacy fragment."""
    count = int(np.frombuffer(data, dtype="<u4", count=1)[0])
    vertices = np.frombuffer(data, dtype="<f4", count=3 * count, offset=4).reshape(-1, 3)
    triangles = np.frombuffer(data, dtype="<u4", offset=4 + 12 * count).reshape(-1, 3)
    return vertices, triangles


class DracoFragments:
    """The Draco fragment of each supervoxel of one live segmentation layer."""

    def __init__(self, live, directory: Path):
        self.live = live
        self.directory = Path(directory)

    def path(self, supervoxel: int) -> Path:
        return self.directory / f"{int(supervoxel)}.drc"

    def fragment(self, supervoxel: int) -> bytes | None:
        """The supervoxel's Draco bytes (made and kept on first use); None if it has no mesh."""
        path = self.path(supervoxel)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        encoded = self._encode(supervoxel)
        if encoded is not None:
            self._keep(path, encoded)
        return encoded

    def build(self, supervoxels, progress=None) -> int:
        """Make every missing fragment of ``supervoxels``; the number made."""
        made = 0
        for sv in supervoxels:
            if not self.path(sv).exists() and self.fragment(int(sv)) is not None:
                made += 1
            if progress:
                progress.update(1)
        return made

    def _encode(self, supervoxel: int) -> bytes | None:
        if not self.live.mesh_dir:
            return None
        manifest = self.live.manifest(int(supervoxel)) or {"fragments": []}
        parts, offset = [], 0
        for name in manifest["fragments"]:
            stored = self.live.store.get(f"{self.live.mesh_dir}/{name}")
            if stored is None:
                continue
            vertices, triangles = legacy_mesh(stored.decoded())
            parts.append((vertices, triangles + offset))
            offset += len(vertices)
        if not parts or offset == 0:
            return None
        vertices = np.concatenate([v for v, _ in parts]).astype(np.float32)
        triangles = np.concatenate([t for _, t in parts]).astype(np.uint32)
        return DracoPy.encode(vertices, triangles, quantization_bits=QUANTIZATION_BITS)

    def _keep(self, path: Path, data: bytes) -> None:
        """Write atomically: another process may be writing or reading the same fragment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)


def fragments_of(live, home: Path) -> DracoFragments:
    return DracoFragments(live, Path(home) / "graphene" / live.graph.dataset)


def build_for_dataset(database_url: str, home: Path, dataset: str, progress: bool = False) -> int:
    """Make the Draco fragments of every supervoxel of ``dataset`` (at ingest); the number made."""
    from .datasets import Datasets
    from .graph.registry import Graphs
    from .live import LiveViews

    layer, store, _ = Datasets(database_url).layer_store(dataset, "segmentation")
    live = LiveViews(Graphs(database_url)).view(dataset, layer, store)
    if live is None or not live.mesh_dir:
        return 0
    supervoxels = live.graph.supervoxel_ids
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(supervoxels), desc="Draco fragments", unit="supervoxel")
    try:
        return fragments_of(live, home).build(supervoxels, bar)
    finally:
        if bar is not None:
            bar.close()
