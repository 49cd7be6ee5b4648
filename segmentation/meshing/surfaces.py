"""Surface meshes of labelled voxels with zmesh, as Draco bytes for Neuroglancer's graphene source.

Vertices are nm in the volume's global frame, on voxel faces (``voxel_centered``: voxel i spans
[i, i+1) as Neuroglancer draws it). zmesh's simplifier keeps the open border where a chunk's
array ends, so the pieces of one neuron in neighbouring chunks meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import DracoPy
import fastremap
import numpy as np
import zmesh

QUANTIZATION_BITS = 16  # Draco positions: 1/65535 of a fragment's extent (sub-nm for a chunk)


@dataclass(frozen=True)
class SurfaceParams:
    reduction_factor: int = 10  # zmesh's target: this many times fewer triangles
    max_error_nm: float = 40.0  # … without moving the surface further than this

    def to_json(self) -> dict:
        return {"reduction_factor": self.reduction_factor, "max_error_nm": self.max_error_nm}


def mesh_labels(labels: np.ndarray, start_voxel, resolution, wanted, params: SurfaceParams) -> dict[int, bytes]:
    """Draco bytes of the surface of each label in ``wanted`` (labels absent or with no surface are
    left out). ``labels`` is an x, y, z array whose first voxel is ``start_voxel`` of the volume."""
    wanted = {int(w) for w in wanted if int(w)}
    if not wanted or not labels.size:
        return {}
    labels = np.ascontiguousarray(labels)
    small, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    mesher = zmesh.Mesher(tuple(float(r) for r in resolution))
    mesher.mesh(np.asfortranarray(small))
    origin = np.asarray(start_voxel, dtype=np.float64) * np.asarray(resolution, dtype=np.float64)
    out = {}
    for label, local in mapping.items():
        if int(label) not in wanted or not local:
            continue
        mesh = mesher.get(
            local,
            normals=False,
            reduction_factor=params.reduction_factor,
            max_error=params.max_error_nm,
            voxel_centered=True,
        )
        mesher.erase(local)
        if not len(mesh.faces):
            continue
        vertices = (mesh.vertices.astype(np.float64) + origin).astype(np.float32)
        out[int(label)] = DracoPy.encode(vertices, mesh.faces.astype(np.uint32), quantization_bits=QUANTIZATION_BITS)
    mesher.clear()
    return out


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices N×3 nm, faces M×3) of Draco bytes."""
    mesh = DracoPy.decode(data)
    return np.asarray(mesh.points, dtype=np.float32).reshape(-1, 3), np.asarray(mesh.faces).reshape(-1, 3)


def joined(fragments: list[bytes]) -> bytes:
    """One Draco mesh of several (a coarser level's fragment: its children side by side, at their
    full detail, so the viewer needs one request instead of many); b"" when all are empty."""
    parts = [decode(data) for data in fragments if data]
    parts = [(v, f) for v, f in parts if len(f)]
    if not parts:
        return b""
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    vertices = np.concatenate([v for v, _ in parts]).astype(np.float32)
    faces = np.concatenate([f.astype(np.int64) + o for (_, f), o in zip(parts, offsets)]).astype(np.uint32)
    return DracoPy.encode(vertices, faces, quantization_bits=QUANTIZATION_BITS)
