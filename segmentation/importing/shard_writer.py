"""Write whole shard files of a sharded scale from one task's box.

CloudVolume writes a shard from a shard-aligned cutout too, but pads an all-background chunk at the
volume's edge to a whole chunk in raw layers (a 16×16×8 chunk where the grid ends at 16×13×8), which
readers then refuse. This encodes each chunk as clipped by the scale's bounds with CloudVolume's own
encoder, orders them by compressed Morton code, and has CloudVolume synthesize the shard files.
"""

from __future__ import annotations

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import chunks
from cloudvolume.datasource.precomputed.common import compressed_morton_code
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files


def write_shards(layer_url: str, scale: dict, start, data: np.ndarray) -> None:
    """``data`` is the box of whole shards starting at ``start`` (voxels from the scale's origin)."""
    chunk = np.asarray(scale["chunk_sizes"][0])
    grid = np.ceil(np.asarray(scale["size"]) / chunk).astype(np.int64)
    first = np.asarray(start) // chunk
    counts = np.ceil(np.asarray(data.shape) / chunk).astype(np.int64)
    encoded = {}
    for point in np.ndindex(*counts):
        lo = np.asarray(point) * chunk
        hi = np.minimum(lo + chunk, data.shape)
        block = np.asfortranarray(data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][..., np.newaxis])
        code = int(compressed_morton_code([first + np.asarray(point)], grid)[0])
        encoded[code] = chunks.encode(
            block, scale["encoding"], block_size=scale.get("compressed_segmentation_block_size")
        )
    files = synthesize_shard_files(ShardingSpecification.from_dict(scale["sharding"]), encoded)
    CloudFiles(f"{layer_url}/{scale['key']}").puts(list(files.items()), compress=None, raw=True)
