"""Bring volumes a lab already has into axonlink: read HDF5, TIFF (a stack or a folder of TIFF or PNG
slices), Zarr and OME-Zarr, N5, ``.npy`` and precomputed volumes a box at a time, in x, y, z.

``open_source(spec)`` detects the format and returns a :class:`VolumeSource`, cheap to pickle to the
workers that read it; every failure is a :class:`SourceError` with one line saying what and how to
fix it (:mod:`.reachability` tells the ways a remote source can be out of reach apart).
"""

from .sources import SourceError, VolumeSource, open_source

__all__ = ["SourceError", "VolumeSource", "open_source"]
