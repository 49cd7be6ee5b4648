"""Neuroglancer precomputed volumes through CloudVolume: ``file://``, ``gs://``, ``s3://``, ``http(s)://``
and plain local paths; raw, jpeg, compressed_segmentation and sharded layouts alike.

CloudVolume rather than tensorstore: it reads the ``.gz`` chunk files CloudVolume itself writes to
disk (tensorstore takes them for missing chunks and reads zeros), and CloudFiles' spelling of an S3
server at an address (``s3://http://host:port/bucket``). Scale 0 is read; a precomputed volume is x,
y, z by definition, with its voxel size and offset in its info. A chunk that is missing reads as 0,
as Neuroglancer shows it (tools leave out chunks that hold only background).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from .. import reachability
from ..volume import SourceError, VolumeSource, cached_handle, local_path


class PrecomputedSource(VolumeSource):
    format = "precomputed"

    def __init__(self, url: str, axes: str | None):
        self.url = url
        if axes is not None and axes.strip().lower() not in ("xyz", "xyzc"):
            raise SourceError(f"precomputed {url} is x, y, z by definition: --axes {axes} does not apply to it")
        volume = self._volume()
        shape = tuple(int(s) for s in volume.shape)  # x, y, z, channels
        super().__init__(
            stored_shape=shape,
            dtype=np.dtype(volume.dtype),
            axes="xyzc",
            description=f"precomputed {url}",
            voxel_size=tuple(float(v) for v in volume.resolution),
            voxel_offset=tuple(int(v) for v in volume.voxel_offset),
            stored_chunks=(*(int(c) for c in volume.chunk_size), shape[3]),
        )

    def _volume(self):
        def opener():
            from cloudvolume import CloudVolume

            return CloudVolume(_cloudvolume_path(self.url), mip=0, fill_missing=True, progress=False, cache=False)

        return cached_handle(("precomputed", self.url), opener)

    def _read_stored(self, index):
        x, y, z, _ = index
        ox, oy, oz = self.voxel_offset
        cutout = self._volume()[x.start + ox : x.stop + ox, y.start + oy : y.stop + oy, z.start + oz : z.stop + oz]
        return np.asarray(cutout)[..., 0]


def _cloudvolume_path(url: str) -> str:
    """``url`` as CloudVolume takes it. CloudFiles' spelling of an S3 server at an address,
    ``s3://http://host:port/bucket/key``, is not one CloudVolume parses: it reads it through a
    CloudFiles alias for that server, added in this process."""
    found = re.match(r"^s3://(https?://[^/]+)/(.*)$", url)
    if found is None:
        return url
    from cloudfiles import paths

    alias = "s3at" + hashlib.sha1(found.group(1).encode()).hexdigest()[:12]
    if alias not in paths.ALIASES:
        paths.add_alias(alias, f"s3://{found.group(1)}/")
    return f"{alias}://{found.group(2)}"


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> PrecomputedSource:
    if dataset_path:
        raise SourceError(f"{spec} is precomputed: --dataset-path is for HDF5, Zarr and N5 containers")
    path = local_path(spec)
    url = ("file://" + str(path.resolve())) if path is not None else spec
    if reachability.bucket_exists(url) is False:  # said now: CloudVolume retries it for many seconds
        raise SourceError(reachability.message(reachability.NO_BUCKET, url))
    return PrecomputedSource(url.rstrip("/"), axes)
