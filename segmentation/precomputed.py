"""Write Neuroglancer precomputed layers with CloudVolume: scales, sharded scales, legacy meshes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import tinybrain
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import image_shard_shape_from_spec

from .storage import cloud_files


def downsamples(array: np.ndarray, kind: str, levels: int, factor=(2, 2, 1)) -> list[np.ndarray]:
    """mip 0 followed by ``levels`` downsampled mips (mode for labels, mean for images)."""
    if levels == 0:
        return [array]
    if kind == "segmentation":
        return [array, *tinybrain.downsample_segmentation(array, factor, num_mips=levels, sparse=False)]
    out = [array]
    for _ in range(levels):
        out.append(average_once(out[-1], factor))
    return out


def average_once(array: np.ndarray, factor=(2, 2, 1)) -> np.ndarray:
    """One mip of an image: the mean of each block of ``factor`` voxels, a block cut by the volume's
    edge averaging the voxels it has.

    tinybrain (1.7) leaves the last row of an odd-sized axis as uninitialised memory (zeros or noise
    that differ from run to run), so an odd axis is first made even by repeating its last plane:
    with a factor of 2 the mean of (a, a) is a, so the edge block's mean is that of its own voxels.
    """
    odd = [(0, int(f > 1 and n % f != 0) * (f - n % f)) for n, f in zip(array.shape, factor)]
    if any(after for _, after in odd):
        array = np.pad(array, odd + [(0, 0)] * (array.ndim - len(odd)), mode="edge")
    return tinybrain.downsample_with_averaging(array, factor, num_mips=1)[0]


def new_layer_info(kind, dtype, encoding, resolution, size, chunk, mips, factor=(2, 2, 1), **extra):
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type=kind,
        data_type=str(np.dtype(dtype)),
        encoding=encoding,
        resolution=list(resolution),
        voxel_offset=[0, 0, 0],
        volume_size=list(size),
        chunk_size=list(chunk),
        **({"compressed_segmentation_block_size": [8, 8, 8]} if encoding == "compressed_segmentation" else {}),
    )
    for mip in range(1, mips):
        scale = [f**mip for f in factor]
        res = [r * s for r, s in zip(resolution, scale)]
        info["scales"].append(
            {
                **{k: v for k, v in info["scales"][0].items() if k not in ("key", "resolution", "size")},
                "key": "_".join(str(int(r)) for r in res),
                "resolution": res,
                "size": [int(np.ceil(n / s)) for n, s in zip(size, scale)],
            }
        )
    info.update(extra)
    return info


def write_layer(
    path: Path,
    levels: list[np.ndarray],
    kind: str,
    encoding: str,
    resolution,
    chunk,
    sharded: bool = False,
    **info_extra,
) -> str:
    """Write every mip of ``levels`` (mip 0 first) as one precomputed layer; returns its file:// URL."""
    url = f"file://{Path(path).resolve()}"
    info = new_layer_info(
        kind, levels[0].dtype, encoding, resolution, levels[0].shape, chunk, len(levels), **info_extra
    )
    if sharded:
        for scale in info["scales"]:
            scale["sharding"] = image_sharding_spec(scale["size"], chunk)
    CloudVolume(url, info=info, progress=False).commit_info()
    for mip, level in enumerate(levels):
        volume = CloudVolume(
            url, mip=mip, progress=False, compress=False if sharded else None, non_aligned_writes=False
        )
        if sharded:
            _write_shards(volume, level, info["scales"][mip]["sharding"], chunk)
        else:
            volume[:, :, :] = level
    return url


def image_sharding_spec(size, chunk, chunks_per_minishard_bits: int = 3, minishard_bits: int = 2) -> dict:
    """An identity-hash sharding spec giving a handful of shard files per scale."""
    grid = [max(1, int(np.ceil(s / c))) for s, c in zip(size, chunk)]
    total_bits = sum(int(np.ceil(np.log2(g))) for g in grid)
    shard_bits = max(0, total_bits - chunks_per_minishard_bits - minishard_bits)
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "identity",
        "preshift_bits": chunks_per_minishard_bits,
        "minishard_bits": minishard_bits,
        "shard_bits": shard_bits,
        "minishard_index_encoding": "gzip",
        "data_encoding": "gzip",
    }


def _write_shards(volume, level: np.ndarray, spec: dict, chunk) -> None:
    shape = [int(s) for s in image_shard_shape_from_spec(spec, level.shape, chunk)]
    for x in range(0, level.shape[0], shape[0]):
        for y in range(0, level.shape[1], shape[1]):
            for z in range(0, level.shape[2], shape[2]):
                hi = [min(a + s, n) for a, s, n in zip((x, y, z), shape, level.shape)]
                volume[x : hi[0], y : hi[1], z : hi[2]] = level[x : hi[0], y : hi[1], z : hi[2], np.newaxis]


def legacy_mesh_fragment(vertices_nm: np.ndarray, faces: np.ndarray) -> bytes:
    """Neuroglancer's legacy mesh fragment: uint32 vertex count, float32 xyz (nm), uint32 triangles."""
    vertices = np.ascontiguousarray(vertices_nm, dtype="<f4")
    return struct.pack("<I", len(vertices)) + vertices.tobytes() + np.ascontiguousarray(faces, dtype="<u4").tobytes()


def write_legacy_meshes(layer_url: str, meshes: dict[int, tuple[np.ndarray, np.ndarray]], mesh_dir: str = "mesh"):
    """One fragment and a ``<id>:0`` manifest per segment, written plain (not gzip) for simple serving."""
    files = cloud_files(f"{layer_url}/{mesh_dir}")
    uploads = [("info", json.dumps({"@type": "neuroglancer_legacy_mesh"}).encode())]
    for segid, (vertices, faces) in meshes.items():
        fragment = f"{segid}:0:whole"
        uploads.append((fragment, legacy_mesh_fragment(vertices, faces)))
        uploads.append((f"{segid}:0", json.dumps({"fragments": [fragment]}).encode()))
    files.puts(uploads, compress=None, content_type="application/octet-stream")
