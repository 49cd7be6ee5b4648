"""Open a volume a lab already has, in whatever format, and read any box of it.

``open_source`` looks at a path or URL, picks the reader of its format (``formats/``) and returns a
:class:`~.volume.VolumeSource`: its shape, dtype and voxel size in x, y, z, and ``read(start, stop)``
for a box. The import pipeline opens sources in the main process and ships them to Dask workers
(see :mod:`.volume` for what a source holds).
"""

from __future__ import annotations

import os
from pathlib import Path

from .volume import SourceError, VolumeSource, local_path, split_container

__all__ = ["SourceError", "VolumeSource", "open_source", "detect_format", "local_path", "split_container"]


# -- dispatch ----------------------------------------------------------------------------------------

FORMATS = ("npy", "hdf5", "tiff", "zarr", "n5", "precomputed")
_FORMAT_NAMES = {
    "npy": "npy",
    "numpy": "npy",
    "hdf5": "hdf5",
    "h5": "hdf5",
    "hdf": "hdf5",
    "tiff": "tiff",
    "tif": "tiff",
    "png": "tiff",
    "slices": "tiff",
    "zarr": "zarr",
    "zarr2": "zarr",
    "zarr3": "zarr",
    "ome-zarr": "zarr",
    "ome_zarr": "zarr",
    "omezarr": "zarr",
    "n5": "n5",
    "precomputed": "precomputed",
}
_SUFFIXES = {
    ".npy": "npy",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".he5": "hdf5",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".zarr": "zarr",
    ".n5": "n5",
}
_MAGIC = (
    (b"\x93NUMPY", "npy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
)
LOCAL_ONLY = ("npy", "hdf5", "tiff")  # read with libraries that need a file on this machine


def open_source(
    spec: str, *, dataset_path: str | None = None, axes: str | None = None, format: str | None = None
) -> VolumeSource:
    """Open the volume at ``spec`` (a path or URL); ``format`` overrides the detected one."""
    from . import reachability

    spec = str(spec).strip()
    if not spec:
        raise SourceError("no source given: name a file, folder or URL")
    spec, prefixed = _strip_prefix(spec)
    chosen = _format_name(format) if format else prefixed
    problem = reachability.check_scheme(spec)
    if problem:
        raise SourceError(problem)
    remote = reachability.is_remote(spec)
    if chosen is None:
        chosen = detect_format(spec)
    if remote and chosen in LOCAL_ONLY:
        raise SourceError(
            f"{spec}: {chosen} files are read from this machine's disk; copy it here first and import the local copy"
        )
    if remote:
        problem = reachability.probe(spec)
        if problem:
            raise SourceError(problem)
    module = _format_module(chosen)
    try:
        return module.open(spec, dataset_path=dataset_path, axes=axes)
    except SourceError:
        raise
    except Exception as error:  # a library's own error: say what it means
        raise SourceError(reachability.explain(spec, error)) from error


def _format_name(given: str) -> str:
    name = _FORMAT_NAMES.get(given.strip().lower())
    if name is None:
        raise SourceError(f"unknown format {given!r}: use one of {', '.join(FORMATS)}")
    return name


def _strip_prefix(spec: str) -> tuple[str, str | None]:
    """Neuroglancer's data-source prefixes (``precomputed://``, ``zarr://``, ``n5://``) name the format."""
    for prefix, name in (("precomputed://", "precomputed"), ("zarr2://", "zarr"), ("zarr3://", "zarr")):
        if spec.startswith(prefix):
            return spec[len(prefix) :], name
    for prefix, name in (("zarr://", "zarr"), ("n5://", "n5")):
        if spec.startswith(prefix):
            return spec[len(prefix) :], name
    return spec, None


def detect_format(spec: str) -> str:
    """The format of ``spec``: by the magic bytes of a local file, what a local folder holds, or the name's
    suffix (``.zarr``, ``.n5`` anywhere in the path); a remote URL without one is taken as precomputed."""
    path = local_path(spec)
    if path is not None:
        return _detect_local(spec, path)
    for part in reversed(spec.rstrip("/").split("/")):
        found = _SUFFIXES.get(os.path.splitext(part)[1].lower())
        if found:
            return found
    return "precomputed"


def _detect_local(spec: str, path: Path) -> str:
    from . import reachability

    if not path.exists():
        container, _ = split_container(path)
        if container is not None and _magic(container) == "hdf5":  # data.h5/volumes/raw or data.h5:/volumes/raw
            return "hdf5"
        raise SourceError(reachability.message(reachability.NOT_FOUND, spec))
    if path.is_file():
        found = _magic(path)
        if found:
            return found
        if path.suffix.lower() == ".png":
            raise SourceError(
                f"{spec} is a single 2-D PNG image: a volume needs 3 axes; give the folder holding one PNG per slice"
            )
        raise SourceError(reachability.message(reachability.NOT_A_VOLUME, spec, file_kind(path)))
    if not path.is_dir():
        raise SourceError(reachability.message(reachability.NOT_A_VOLUME, spec, "neither a file nor a folder"))
    names = set(os.listdir(path))
    if "info" in names:
        return "precomputed"
    if names & {".zarray", ".zgroup", ".zattrs", "zarr.json"}:
        return "zarr"
    if "attributes.json" in names:
        return "n5"
    found = _SUFFIXES.get(path.suffix.lower())
    if found in ("zarr", "n5"):
        return found
    from .formats.tiff import slice_files

    if slice_files(path):
        return "tiff"
    raise SourceError(
        reachability.message(
            reachability.NOT_A_VOLUME,
            spec,
            "a folder with no precomputed info, Zarr or N5 metadata, and no TIFF or PNG slices",
        )
    )


def _magic(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def file_kind(path: Path) -> str:
    """A few words on what a file that is no volume seems to be (shown in the error)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        return error.strerror or str(error)
    if not head:
        return "an empty file"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "a text file"
        except UnicodeDecodeError:
            pass
    return "a file of no format read here"


def _format_module(name: str):
    if name == "npy":
        from .formats import npy as module
    elif name == "hdf5":
        from .formats import hdf5 as module
    elif name == "tiff":
        from .formats import tiff as module
    elif name == "zarr":
        from .formats import zarr as module
    elif name == "n5":
        from .formats import n5 as module
    elif name == "precomputed":
        from .formats import precomputed as module
    else:  # pragma: no cover - _format_name only returns the names above
        raise SourceError(f"unknown format {name!r}")
    return module
