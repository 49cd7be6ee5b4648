"""What every source reader shares: :class:`VolumeSource` (a box in x, y, z from any stored axis
order), :class:`SourceError`, the axes rules, per-process handles and local paths.

Stored arrays come in many axis orders (numpy and HDF5 are usually z, y, x; N5 and precomputed x, y,
z); the ``axes`` string says which stored axis is which, and the base class turns a box in x, y, z
into an index of the stored array and the answer back into x, y, z. Only single-channel volumes
are imported: a channel (``c``) or time (``t``) axis must have length 1. A source holds only what
names the data (path, dataset key, axes, metadata): file handles are opened lazily, once per
process (:func:`cached_handle`), and never pickled. The format modules (``formats/``) build on
this; :mod:`.sources` picks one of them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import Invalid

XYZ = "xyz"
SINGLETON_AXES = "ct"  # channel and time: allowed only with length 1


class SourceError(Invalid):
    """A source that cannot be opened or read; the message names the problem and the fix."""


class VolumeSource:
    """A volume in x, y, z, read a box at a time. Subclasses set the stored array's shape and axes and
    implement :meth:`_read_stored`."""

    format = "volume"

    def __init__(
        self,
        *,
        stored_shape: tuple[int, ...],
        dtype,
        axes: str,
        description: str,
        voxel_size: tuple[float, float, float] | None = None,
        voxel_offset: tuple[int, int, int] | None = None,
        stored_chunks: tuple[int, ...] | None = None,
    ):
        self.axes = axes
        self.stored_shape = tuple(int(s) for s in stored_shape)
        self.dtype = np.dtype(dtype)
        self.description = description
        for axis, length in zip(axes, self.stored_shape):
            if axis in SINGLETON_AXES and length != 1:
                what = "channels" if axis == "c" else "time points"
                raise SourceError(
                    f"{description} has {length} {what} (axis {axis} of axes {axes}, shape {self.stored_shape}): only "
                    f"single-channel volumes are imported; split it into one volume per channel first, or give the "
                    f"right axes with --axes"
                )
        self.shape = self.to_xyz(self.stored_shape)
        if min(self.shape) < 1:
            raise SourceError(f"{description} is empty (shape {self.stored_shape}): nothing to import")
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        self.voxel_offset = None if voxel_offset is None else tuple(int(v) for v in voxel_offset)
        self.chunk_shape = None if stored_chunks is None else self.to_xyz(stored_chunks)

    def to_xyz(self, stored: tuple) -> tuple:
        """Per-stored-axis values (shape, chunks, voxel sizes) in x, y, z order."""
        return tuple(stored[self.axes.index(axis)] for axis in XYZ)

    def read(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> np.ndarray:
        """The box [start, stop) in x, y, z voxels from the source's origin, as an (x, y, z) array of the
        source's dtype. Reads only that box (and the stored chunks it touches)."""
        start, stop = tuple(int(v) for v in start), tuple(int(v) for v in stop)
        if len(start) != 3 or len(stop) != 3 or any(not 0 <= a <= b <= s for a, b, s in zip(start, stop, self.shape)):
            raise SourceError(f"box {start}..{stop} is not inside {self.description} (x, y, z size {self.shape})")
        if any(a == b for a, b in zip(start, stop)):
            return np.zeros([b - a for a, b in zip(start, stop)], self.dtype)
        index = tuple(slice(start[XYZ.index(axis)], stop[XYZ.index(axis)]) if axis in XYZ else 0 for axis in self.axes)
        try:
            data = self._read_stored(index)
        except SourceError:
            raise
        except Exception as error:  # any reader's failure, said in one line
            from .reachability import explain

            raise SourceError(f"reading box {start}..{stop}: {explain(self.description, error)}") from error
        kept = [axis for axis in self.axes if axis in XYZ]  # the spatial axes, in stored order
        data = np.asarray(data).transpose([kept.index(axis) for axis in XYZ])
        if data.dtype != self.dtype:
            data = data.astype(self.dtype)
        return data

    def _read_stored(self, index: tuple) -> np.ndarray:
        """The stored array at ``index`` (a slice per spatial axis, 0 for a channel axis)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.description}: {self.shape} {self.dtype}>"


def resolve_axes(given: str | None, stored_shape: tuple[int, ...], description: str, default: str | None = None) -> str:
    """The axes string for an array of ``stored_shape``: ``given`` (checked), else ``default``, else the
    usual guess (C-ordered z, y, x, with a channel axis first or last for 4-D arrays)."""
    ndim = len(stored_shape)
    if given is not None:
        axes = given.strip().lower()
        if sorted(axes) != sorted(set(axes)) or not set(axes) <= set(XYZ + SINGLETON_AXES) or not set(XYZ) <= set(axes):
            raise SourceError(
                f"--axes {given!r} is not an axis order: use each of x, y, z once (and c for a channel axis), "
                f"e.g. zyx or czyx"
            )
        if len(axes) != ndim:
            raise SourceError(
                f"--axes {given} names {len(axes)} axes but {description} has {ndim} (shape {tuple(stored_shape)}): "
                f"give one letter per axis"
            )
        return axes
    if default is not None and len(default) == ndim:
        return default
    if ndim == 3:
        return "zyx"
    if ndim == 4:  # the channel axis: the end with fewer entries (a singleton one, usually)
        return "zyxc" if stored_shape[-1] < stored_shape[0] else "czyx"
    if ndim < 3:
        raise SourceError(
            f"{description} is {ndim}-D (shape {tuple(stored_shape)}): a volume needs 3 axes; for one image per "
            f"slice, give the folder of slices"
        )
    raise SourceError(
        f"{description} is {ndim}-D (shape {tuple(stored_shape)}): say which axes are x, y, z (and c) with --axes, "
        f"e.g. --axes czyx"
    )


def axes_from_names(names) -> str | None:
    """Axes letters from dimension names ("x", "channel", "time", ...); None when some name is unknown."""
    letters = {"x": "x", "y": "y", "z": "z", "c": "c", "channel": "c", "channels": "c", "t": "t", "time": "t"}
    found = [letters.get(str(name).strip().lower()) if name is not None else None for name in names]
    if None in found or len(set(found)) != len(found) or not set(XYZ) <= set(found):
        return None
    return "".join(found)


# -- handles: opened once per process, never pickled -------------------------------------------------

_handles: OrderedDict = OrderedDict()
_handles_pid = os.getpid()
_handles_lock = threading.Lock()
_MAX_HANDLES = 32


def cached_handle(key: tuple, opener: Callable[[], object]):
    """The handle ``opener()`` made for ``key`` in this process (files, arrays, volumes): a Dask worker
    opens each source once, however many boxes it reads. A forked child starts afresh."""
    global _handles_pid
    with _handles_lock:
        if os.getpid() != _handles_pid:
            _handles.clear()  # the parent's handles (HDF5 files above all) are not safe to share
            _handles_pid = os.getpid()
        handle = _handles.get(key)
        if handle is not None:
            _handles.move_to_end(key)
            return handle
        handle = opener()
        _handles[key] = handle
        while len(_handles) > _MAX_HANDLES:
            _, old = _handles.popitem(last=False)
            close = getattr(old, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing an evicted handle is best effort
                    pass
        return handle


def local_path(spec: str) -> Path | None:
    """The local path ``spec`` names (bare or ``file://``), or None for a remote one."""
    if spec.startswith("file://"):
        return Path(spec[len("file://") :]).expanduser()
    if "://" in spec:
        return None
    return Path(spec).expanduser()


def split_container(path: Path) -> tuple[Path | None, str | None]:
    """(file, key inside it) for a path into a container file: ``data.h5:/volumes/raw`` or
    ``data.h5/volumes/raw``; (None, None) when no part of ``path`` is a file."""
    text = str(path)
    if ":" in text:
        head, tail = text.split(":", 1)
        if Path(head).is_file():
            return Path(head), tail or None
    for parent in path.parents:
        if parent.is_file():
            return parent, "/" + path.relative_to(parent).as_posix()
        if parent.exists():
            break
    return None, None
