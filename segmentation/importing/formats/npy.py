"""``.npy`` files, memory-mapped: opening reads the header only, and a box reads only its pages.

The default axes are z, y, x: arrays saved from numpy tools (tifffile, h5py, scikit-image) are
indexed ``[z, y, x]``. An array CloudVolume returned is ``[x, y, z]``: give ``--axes xyz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..volume import SourceError, VolumeSource, cached_handle, local_path, resolve_axes


class NpySource(VolumeSource):
    format = "npy"

    def __init__(self, path: Path, axes: str | None):
        self.path = str(path)
        array = self._array()
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise SourceError(f"{path} holds {array.dtype} values, not numbers: save the volume as a numeric array")
        description = f"npy {path}"
        super().__init__(
            stored_shape=array.shape,
            dtype=array.dtype,
            axes=resolve_axes(axes, array.shape, description),
            description=description,
        )

    def _array(self) -> np.ndarray:
        return cached_handle(("npy", self.path), lambda: np.load(self.path, mmap_mode="r", allow_pickle=False))

    def _read_stored(self, index):
        """A copy of the box from a map opened for this read only. A map kept open keeps every page a
        worker has read in its resident memory (clean file pages, but counted as its own): over a
        long import that grew with the volume, 5.9 GB at 1024×1024×256 with 4 workers."""
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(array[index])
        finally:
            mapping = getattr(array, "_mmap", None)
            del array
            if mapping is not None:
                mapping.close()


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> NpySource:
    path = local_path(spec)
    if dataset_path:
        raise SourceError(f"{spec} is a .npy file: it holds one array, so --dataset-path does not apply")
    try:
        return NpySource(path.resolve(), axes)
    except ValueError as error:  # not a .npy after all (a header numpy cannot parse)
        if isinstance(error, SourceError):
            raise
        raise SourceError(f"{spec} is not a volume (not a readable .npy: {error}); save it with numpy.save") from None
