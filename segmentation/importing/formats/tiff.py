"""TIFF: one multi-page file (a stack), or a folder of TIFF or PNG slices, one image per z.

A stack is read through tifffile's Zarr view of its pages, which decodes only the strips or tiles a
box touches. A folder is sorted naturally by name (``slice_2`` before ``slice_10``); opening reads
the first slice's header only, and each read checks the slices it decodes have that shape, so a
stray slice of another size fails at the box that meets it, naming the file. Default axes: z, y, x
(the stacking axis, then each image's rows and columns).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import tifffile

from ..volume import SourceError, VolumeSource, cached_handle, local_path, resolve_axes
from .units import nm_per

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIX = ".png"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (3, palette: refused)


def natural_key(name: str) -> list:
    """Sort key that orders the numbers in names by value: z2 < z10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def slice_files(folder: Path) -> list[str]:
    """The TIFF or PNG files in ``folder`` (hidden ones left out), sorted naturally."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = [n for n in names if not n.startswith(".") and n.lower().endswith((*TIFF_SUFFIXES, PNG_SUFFIX))]
    return sorted(found, key=natural_key)


class _Stack:
    """An open TIFF file and the Zarr view of its first series (closed together)."""

    def __init__(self, path: str):
        import zarr

        self.file = tifffile.TiffFile(path)
        self.array = zarr.open_array(self.file.series[0].aszarr(), mode="r")

    def close(self):
        self.file.close()


class TiffStackSource(VolumeSource):
    format = "tiff"

    def __init__(self, path: Path, axes: str | None):
        self.path = str(path)
        description = f"TIFF {path}"
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype, letters, pages = series.shape, series.dtype, series.axes, len(tif.pages)
            voxel_size = stack_voxel_size(tif)
        if len(shape) == 2 and pages > 1:
            raise SourceError(
                f"{description}: its {pages} pages differ in shape or type, so they are no stack; save them as one "
                f"stack, or as a folder of slices of one size"
            )
        super().__init__(
            stored_shape=shape,
            dtype=dtype,
            axes=resolve_axes(axes, shape, description, default=_axes_of(letters)),
            description=description,
            voxel_size=voxel_size,
            stored_chunks=self._stack().array.chunks,
        )

    def _stack(self) -> _Stack:
        return cached_handle(("tiff", self.path), lambda: _Stack(self.path))

    def _read_stored(self, index):
        return self._stack().array[index]


def stack_voxel_size(tif) -> tuple[float, float, float] | None:
    """nm per voxel (x, y, z) that a stack's metadata states: OME-TIFF's PhysicalSize (µm unless a
    unit is given), or ImageJ's pixel width and height (the resolution tags) and slice spacing in
    its unit; None unless all three are stated in a length unit."""
    if tif.is_ome and tif.ome_metadata:
        import xml.etree.ElementTree as ElementTree

        try:
            root = ElementTree.fromstring(tif.ome_metadata)
        except ElementTree.ParseError:
            return None
        pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        if pixels is None:
            return None
        return _in_nm([(pixels.get(f"PhysicalSize{a}"), pixels.get(f"PhysicalSize{a}Unit", "µm")) for a in "XYZ"])
    meta = tif.imagej_metadata if tif.is_imagej else None
    if not meta or "spacing" not in meta:
        return None
    unit = str(meta.get("unit", "")).replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    tags = tif.pages[0].tags
    sizes = []
    for name in ("XResolution", "YResolution"):
        tag = tags.get(name)
        try:
            numerator, denominator = tag.value
            sizes.append(denominator / numerator)  # the tag counts pixels per unit
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            return None
    return _in_nm([(sizes[0], unit), (sizes[1], unit), (meta["spacing"], unit)])


def _in_nm(values) -> tuple[float, float, float] | None:
    try:
        sizes = tuple(float(value) * nm_per(unit) for value, unit in values)
    except (TypeError, ValueError):  # a size not given (None) or a unit that is no length
        return None
    return sizes if all(0 < size < float("inf") for size in sizes) else None


def _axes_of(letters: str) -> str | None:
    """tifffile's axis letters (Q, I, Z: pages; S, C: samples, channels) as ours; None when unclear."""
    mapped = "".join({"X": "x", "Y": "y", "S": "c", "C": "c", "T": "t"}.get(letter, "z") for letter in letters)
    return mapped if sorted(mapped) == sorted(set(mapped)) and set("xyz") <= set(mapped) else None


class SliceFolderSource(VolumeSource):
    format = "tiff"

    def __init__(self, folder: Path, files: list[str], axes: str | None):
        self.folder, self.files = str(folder), files
        kind = "PNG" if files[0].lower().endswith(PNG_SUFFIX) else "TIFF"
        description = f"{kind} slices {folder} ({len(files)} files)"
        self.slice_shape, dtype = _slice_header(folder / files[0])
        shape = (len(files), *self.slice_shape)
        super().__init__(
            stored_shape=shape,
            dtype=dtype,
            axes=resolve_axes(axes, shape, description, default="zyx" if len(shape) == 3 else "zyxc"),
            description=description,
            stored_chunks=(1, *self.slice_shape),
        )

    def _read_stored(self, index):
        first, rest = index[0], index[1:]
        picked = self.files[first] if isinstance(first, slice) else [self.files[first]]
        planes = []
        for name in picked:
            image = _read_slice(os.path.join(self.folder, name))
            if image.shape != self.slice_shape or image.dtype != self.dtype:
                raise SourceError(
                    f"{self.description}: slice {name} is {'×'.join(map(str, image.shape))} {image.dtype}, the first "
                    f"is {'×'.join(map(str, self.slice_shape))} {self.dtype}; all slices must have one size and type"
                )
            planes.append(image[rest])
        return np.stack(planes) if isinstance(first, slice) else planes[0]


def _slice_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape (rows, columns[, samples]) and dtype of one slice, from its header alone."""
    if path.suffix.lower() == PNG_SUFFIX:
        head = _head(path, 26)
        if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
            raise SourceError(f"{path} is not a PNG image; the folder's slices must all be PNG or TIFF images")
        width, height = struct.unpack(">II", head[16:24])
        depth, colour = head[24], head[25]
        if colour not in _PNG_CHANNELS:
            raise SourceError(f"{path} is a palette PNG: save the slices as grayscale images (8 or 16 bits)")
        samples = _PNG_CHANNELS[colour]
        shape = (height, width) if samples == 1 else (height, width, samples)
        return shape, np.dtype(np.uint16 if depth == 16 else np.uint8)
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return tuple(page.shape), np.dtype(page.dtype)
    except tifffile.TiffFileError as error:
        raise SourceError(f"{path} is not a TIFF image ({error}); the folder's slices must all be images") from None


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _read_slice(path: str) -> np.ndarray:
    if path.lower().endswith(PNG_SUFFIX):
        import imagecodecs

        with Path(path).open("rb") as handle:
            return imagecodecs.png_decode(handle.read())
    return tifffile.imread(path, key=0)


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> VolumeSource:
    path = local_path(spec).resolve()
    if dataset_path:
        raise SourceError(f"{spec} is TIFF: --dataset-path is for HDF5, Zarr and N5 containers")
    if path.is_dir():
        files = slice_files(path)
        if not files:
            raise SourceError(f"{spec} holds no TIFF or PNG slices: give a folder of one image per z")
        kinds = {name.lower().endswith(PNG_SUFFIX) for name in files}
        if len(kinds) > 1:
            raise SourceError(f"{spec} holds both TIFF and PNG files: keep one kind of slice in the folder")
        return SliceFolderSource(path, files, axes)
    try:
        return TiffStackSource(path, axes)
    except tifffile.TiffFileError as error:
        raise SourceError(
            f"{spec} is not a volume (not a TIFF file: {error}); give a TIFF stack or a folder of slices"
        ) from None
