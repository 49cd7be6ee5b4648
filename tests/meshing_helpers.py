"""What the mesh tests share: a volume with an odd voxel offset and odd storage chunks (uint32, raw) holding
two tube-shaped neurons cut into supervoxels every 10 voxels along x, as oversegmentations are, and ways
to read a manifest's fragments as Neuroglancer does and check where their surfaces lie."""

from __future__ import annotations

import numpy as np

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import ingest_dataset
from segmentation.graph.ids import supervoxel_ids
from segmentation.meshing import DatasetMeshes
from segmentation.meshing.surfaces import SurfaceParams, decode

OFFSET = np.array([5, 7, 3])
SHAPE = (70, 52, 24)
RESOLUTION = np.array([8.0, 8.0, 40.0])
MESH_CHUNK = (32, 32, 12)  # a 3 x 2 x 2 grid over the volume
EXACT = SurfaceParams(reduction_factor=0, max_error_nm=0)  # unsimplified: a vertex at every surface corner
TUBES = {  # neuron -> (first label, y range, z range), along the whole x extent
    "a": (1, (10, 20), (2, 14)),
    "b": (11, (30, 42), (6, 20)),
}


def tube_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint32)
    for first, (y0, y1), (z0, z1) in TUBES.values():
        for k in range(7):
            labels[10 * k : 10 * (k + 1), y0:y1, z0:z1] = first + k
    return labels


def write_tubes(path) -> str:
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type="segmentation",
        data_type="uint32",
        encoding="raw",
        resolution=RESOLUTION.tolist(),
        voxel_offset=OFFSET.tolist(),
        volume_size=list(SHAPE),
        chunk_size=[20, 19, 7],
    )
    volume = CloudVolume(f"file://{path}", info=info, progress=False)
    volume.commit_info()
    volume[OFFSET[0] : OFFSET[0] + SHAPE[0], OFFSET[1] : OFFSET[1] + SHAPE[1], OFFSET[2] : OFFSET[2] + SHAPE[2]] = (
        tube_labels()
    )
    return f"file://{path}"


def tubes_dataset(settings, small_volumes, tmp_path):
    """Dataset `tubes` with its graph: neuron a = supervoxels 1-7, neuron b = 11-17."""
    db.upgrade(settings.database_url)
    url = write_tubes(tmp_path / "tubes-seg")
    Datasets(settings.database_url).add("tubes", image=small_volumes["image"], segmentation=url)
    pairs = [[first + k, first + k + 1] for first, *_ in TUBES.values() for k in range(6)]
    ingest_dataset(settings.database_url, "tubes", agglomeration=pairs, progress=False)
    return settings


def meshes_of(settings) -> DatasetMeshes:
    url = Datasets(settings.database_url).get("tubes").layer("segmentation").url
    return DatasetMeshes(settings.home, "tubes", url)


def sv(label: int) -> int:
    return int(supervoxel_ids(np.array([label], dtype=np.uint64))[0])


def face_point(label: int) -> np.ndarray:
    """The middle of the +y face of a supervoxel's voxels, in nm (on its surface)."""
    for first, (_y0, y1), (z0, z1) in TUBES.values():
        if first <= label < first + 7:
            k = label - first
            voxel = OFFSET + np.array([10 * k + 5, y1, (z0 + z1) / 2])
            return voxel * RESOLUTION
    raise AssertionError(label)


def vertices_of(meshes: DatasetMeshes, names: list[str]) -> np.ndarray:
    """Every vertex of the fragments a manifest names, read as Neuroglancer's graphene source reads them."""
    parts = []
    for name in names:
        assert name.startswith("~")
        key, _, rest = name[1:].partition(":")
        assert key and ":" not in key
        if rest.startswith("~"):
            path, offset, size = rest[1:].split(":")
            data = meshes.fragment_file(path).read(int(offset), int(offset) + int(size))
        else:
            data = meshes.dynamic_fragment(rest)
        assert data, name
        parts.append(decode(data)[0])
    return np.concatenate(parts)


def shows(vertices: np.ndarray, labels) -> bool:
    """Whether the surface of each supervoxel label has a vertex where its +y face's middle is."""
    near = float(np.linalg.norm(RESOLUTION)) / 2 + 0.01  # unsimplified: vertices on a half-voxel grid
    return all(np.min(np.linalg.norm(vertices - face_point(label), axis=1)) <= near for label in labels)


def manifest_of(meshes, graph, root):
    return meshes.manifest(root, graph.leaves(root))
