"""Write precomputed layers shaped like real data with CloudVolume: odd grids, offsets, sharded scales.

``write_volume`` in tests/helpers.py writes chunk-aligned, offset-0 volumes through CloudVolume's
cutout writer. Real layers are less tidy: a voxel_offset, sizes that are not a multiple of
the chunk size, and sharded scales hashed with identity or MurmurHash3. CloudVolume can
only write a shard from a shard-aligned box, so sharded scales here are assembled with
CloudVolume's own pieces: its chunk encoder, its compressed Morton code, its shard file
synthesizer and its shard file naming.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume, chunks
from cloudvolume.datasource.precomputed.common import compressed_morton_code
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, ShardReader, synthesize_shard_file


def sharding(
    hash="identity",
    preshift_bits=1,
    minishard_bits=2,
    shard_bits=2,
    minishard_index_encoding="gzip",
    data_encoding="gzip",
) -> dict:
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": hash,
        "preshift_bits": preshift_bits,
        "minishard_bits": minishard_bits,
        "shard_bits": shard_bits,
        "minishard_index_encoding": minishard_index_encoding,
        "data_encoding": data_encoding,
    }


def write_layer(
    path,
    levels,
    *,
    encoding,
    chunk=(17, 13, 7),
    offset=(5, 3, 2),
    block_size=(8, 8, 8),
    shard=None,
    resolution=(8, 8, 40),
    layer_type="segmentation",
    compress=True,
) -> str:
    """Write ``levels`` (mip 0 first, each downsampled (2, 2, 1)) as one layer; returns its file:// URL.

    Scale ``i`` starts at ``offset // (2**i, 2**i, 1)``. ``shard`` (a sharding dict) makes
    every scale sharded; unsharded chunks are written by CloudVolume (gzip when ``compress``).
    """
    path = Path(path)
    url = f"file://{path}"
    array = levels[0]
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type=layer_type,
        data_type=str(array.dtype),
        encoding=encoding,
        resolution=list(resolution),
        voxel_offset=list(offset),
        volume_size=list(array.shape),
        chunk_size=list(chunk),
        compressed_segmentation_block_size=list(block_size) if encoding == "compressed_segmentation" else None,
    )
    base = info["scales"][0]
    info["scales"] = []
    for mip, level in enumerate(levels):
        factor = np.array([2**mip, 2**mip, 1])
        res = (np.array(resolution) * factor).tolist()
        scale = {
            **base,
            "key": "_".join(str(int(r)) for r in res),
            "resolution": res,
            "voxel_offset": (np.array(offset) // factor).tolist(),
            "size": list(level.shape),
        }
        if shard is not None:
            scale["sharding"] = dict(shard)
        info["scales"].append(scale)
    CloudVolume(url, info=info, progress=False).commit_info()
    for mip, level in enumerate(levels):
        scale = info["scales"][mip]
        if shard is None:
            volume = CloudVolume(url, mip=mip, progress=False, compress=compress)
            lo = scale["voxel_offset"]
            volume[lo[0] : lo[0] + level.shape[0], lo[1] : lo[1] + level.shape[1], lo[2] : lo[2] + level.shape[2]] = (
                level
            )
        else:
            _write_shards(url, path / scale["key"], level, scale)
    return url


def blank_image(path, shape, *, chunk, offset) -> str:
    """An all-zero uint8 image layer of ``shape`` (raw chunks of ``chunk`` from ``offset``); its file:// URL."""
    return write_layer(
        path, [np.zeros(shape, dtype=np.uint8)], encoding="raw", chunk=chunk, offset=offset, layer_type="image"
    )


def _write_shards(url, directory: Path, level: np.ndarray, scale: dict) -> None:
    spec = ShardingSpecification.from_dict(scale["sharding"])
    names = ShardReader(url, None, spec)
    chunk = np.array(scale["chunk_sizes"][0])
    grid = np.ceil(np.array(level.shape) / chunk).astype(np.int64)
    by_shard = defaultdict(dict)
    for point in np.ndindex(*grid):
        lo = np.array(point) * chunk
        hi = np.minimum(lo + chunk, level.shape)
        block = level[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][..., np.newaxis]
        code = int(compressed_morton_code([point], grid)[0])
        by_shard[names.get_filename(code)][code] = chunks.encode(
            block, scale["encoding"], block_size=scale.get("compressed_segmentation_block_size")
        )
    directory.mkdir(parents=True, exist_ok=True)
    for filename, group in by_shard.items():
        (directory / filename).write_bytes(synthesize_shard_file(spec, group))


def read_layer(url: str, mip: int = 0) -> np.ndarray:
    """The whole scale as CloudVolume reads it (x, y, z)."""
    volume = CloudVolume(url, mip=mip, progress=False, cache=False)
    return np.asarray(volume[volume.bounds])[..., 0]


def write_sparse_sharded(path, *, size, chunk, cells: dict, dtype=np.uint64, encoding="raw", shard=None) -> str:
    """A sharded layer whose info claims ``size`` voxels but whose shards hold only ``cells``.

    ``cells`` maps grid points to their chunk arrays: a large volume on paper that costs a
    few chunks on disk, for checking that nothing is ever sized by the volume or the request.
    """
    path = Path(path)
    url = f"file://{path}"
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type="segmentation",
        data_type=np.dtype(dtype).name,
        encoding=encoding,
        resolution=[8, 8, 40],
        voxel_offset=[0, 0, 0],
        volume_size=list(size),
        chunk_size=list(chunk),
    )
    scale = info["scales"][0]
    scale["sharding"] = dict(shard or sharding(preshift_bits=3, minishard_bits=2, shard_bits=3))
    CloudVolume(url, info=info, progress=False).commit_info()
    spec = ShardingSpecification.from_dict(scale["sharding"])
    names = ShardReader(url, None, spec)
    grid = np.ceil(np.array(size) / np.array(chunk)).astype(np.int64)
    by_shard = defaultdict(dict)
    for point, block in cells.items():
        code = int(compressed_morton_code([point], grid)[0])
        by_shard[names.get_filename(code)][code] = chunks.encode(block.astype(dtype)[..., np.newaxis], encoding)
    (path / scale["key"]).mkdir(parents=True, exist_ok=True)
    for filename, group in by_shard.items():
        (path / scale["key"] / filename).write_bytes(synthesize_shard_file(spec, group))
    return url


def raveler_style(seed: int = 3, shape=(96, 80, 20), neurons: int = 8):
    """The demo's neurons as a Raveler/NeuTu export has them: per-plane superpixels and a body table.

    Raveler keeps superpixels per z plane (2D pieces, numbered within their plane) and maps each
    to a body. Exported to precomputed they become ``(z << 16) | superpixel`` (uint32), or, when
    few enough, one running number (uint16). Returns (uint32 labels, uint16 labels, body of each
    uint32 label, body of each uint16 label); body ids are the demo's neuron ids.
    """
    import cc3d

    from segmentation.demo.phantom import make_phantom

    phantom = make_phantom(seed=seed, neuron_count=neurons, shape=shape)
    wide = np.zeros(shape, dtype=np.uint32)
    narrow = np.zeros(shape, dtype=np.uint16)
    wide_body, narrow_body, running = {}, {}, 0
    for z in range(shape[2]):
        plane = phantom.labels[:, :, z]
        pieces, count = cc3d.connected_components(plane, connectivity=4, return_N=True)
        pieces = pieces.astype(np.uint32)
        for piece, supervoxel in zip(*np.unique(np.stack([pieces.ravel(), plane.ravel()]), axis=1)):
            if piece == 0:
                continue
            body = phantom.supervoxel_to_neuron[int(supervoxel)]
            wide_body[(z << 16) | int(piece)] = body
            narrow_body[running + int(piece)] = body
        wide[:, :, z] = np.where(pieces > 0, (z << 16) | pieces, 0)
        narrow[:, :, z] = np.where(pieces > 0, running + pieces, 0)
        running += int(count)
    assert running < 2**16
    return wide, narrow, wide_body, narrow_body
