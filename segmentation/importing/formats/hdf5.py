"""HDF5 files (``.h5``, ``.hdf5``) through h5py: one dataset of the file, read a box at a time.

A file often holds several arrays (raw, labels, masks); ``dataset_path`` picks one, and without it
the file must hold exactly one array of 3 or more dimensions. Default axes are z, y, x, the order
h5py, ilastik and the CREMI files use. A voxel size is taken from the dataset's ``resolution``
attribute (nm, CREMI) or ``element_size_um`` (µm, ilastik/vigra), in the stored axis order.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..volume import SourceError, VolumeSource, cached_handle, local_path, resolve_axes, split_container


class Hdf5Source(VolumeSource):
    format = "hdf5"

    def __init__(self, path: Path, key: str, axes: str | None):
        self.path, self.key = str(path), key
        dataset = self._dataset()
        description = f"HDF5 {path}:{key}"
        if dataset.dtype.kind not in "biuf":
            raise SourceError(f"{description} holds {dataset.dtype} values, not numbers: choose another dataset")
        axes = resolve_axes(axes, dataset.shape, description)
        super().__init__(
            stored_shape=dataset.shape,
            dtype=dataset.dtype,
            axes=axes,
            description=description,
            stored_chunks=dataset.chunks,
        )
        self.voxel_size = _voxel_size(dataset.attrs, axes)

    def _dataset(self) -> h5py.Dataset:
        file = cached_handle(("hdf5", self.path), lambda: h5py.File(self.path, "r"))
        return file[self.key]

    def _read_stored(self, index):
        return self._dataset()[index]


def _voxel_size(attrs, axes: str) -> tuple[float, float, float] | None:
    for name, to_nm in (("resolution", 1.0), ("element_size_um", 1000.0)):
        value = attrs.get(name)
        try:
            values = [float(v) * to_nm for v in np.ravel(value)] if value is not None else []
        except (TypeError, ValueError):
            continue
        if len(values) == len(axes) and all(v > 0 for v in values):
            return tuple(values[axes.index(axis)] for axis in "xyz")
    return None


def volumes_in(file: h5py.File) -> list[tuple[str, tuple, str]]:
    """(key, shape, dtype) of each dataset of 3 or more dimensions in ``file``."""
    found = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and item.ndim >= 3:
            found.append(("/" + name, item.shape, str(item.dtype)))

    file.visititems(visit)
    return found


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> Hdf5Source:
    path = local_path(spec)
    if not path.is_file():
        path, inner = split_container(path)
        if path is None:
            raise SourceError(f"nothing at {spec}: not found; check the path")
        dataset_path = dataset_path or inner
    path = path.resolve()
    try:
        file = cached_handle(("hdf5", str(path)), lambda: h5py.File(path, "r"))
    except OSError as error:
        raise SourceError(
            f"{spec} is not a volume (h5py cannot open it as HDF5: {error}); give an HDF5 file (.h5, .hdf5)"
        ) from None
    if dataset_path:
        key = "/" + dataset_path.strip("/")
        item = file.get(key)
        if not isinstance(item, h5py.Dataset):
            listed = ", ".join(k for k, _, _ in volumes_in(file)) or "none"
            what = "a group, not a dataset" if isinstance(item, h5py.Group) else "not in the file"
            raise SourceError(f"{path}: {key} is {what}; its 3-D datasets: {listed}; give one with --dataset-path")
        return Hdf5Source(path, key, axes)
    volumes = volumes_in(file)
    if len(volumes) == 1:
        return Hdf5Source(path, volumes[0][0], axes)
    if not volumes:
        raise SourceError(f"{path} holds no dataset of 3 or more dimensions: it has no volume to import")
    listed = ", ".join(f"{key} {'×'.join(map(str, shape))} {dtype}" for key, shape, dtype in volumes)
    raise SourceError(
        f"{path} holds {len(volumes)} volumes ({listed}): choose one with --dataset-path, e.g. --dataset-path {volumes[0][0]}"
    )
