"""N5 datasets through tensorstore's ``n5`` driver (local, gs://, s3://, http(s)://).

N5 lists a dataset's ``dimensions`` fastest-varying first, and for EM volumes that is x, y, z (as
BigDataViewer, Paintera and Neuroglancer read them). tensorstore keeps that order: N5 dimension i
is tensorstore dimension i (it does not reverse them into C order), so the default axes are x, y, z,
unless an ``axes`` attribute names them. The voxel size is ``resolution`` (with ``units``, nm by
default) or ``pixelResolution`` (``{"dimensions": [...], "unit": "um"}``), on the dataset or on the
multiscale group above it. A group holding ``s0``, ``s1``… is read at ``s0``, its finest scale.
"""

from __future__ import annotations

from ..volume import SourceError, axes_from_names
from ._tensorstore import TensorstoreSource, local_children, parent_url, read_json, store_url
from .units import nm_per


class N5Source(TensorstoreSource):
    format = "n5"


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> N5Source:
    url = store_url(spec, dataset_path)
    attrs = read_json(url, "attributes.json")
    if attrs is None:
        raise SourceError(
            f"nothing at {url.rstrip('/')}: no N5 dataset or group there (no attributes.json); check the path"
        )
    group_attrs: dict = {}
    if "dimensions" not in attrs:  # a group: its finest scale, s0, when it has one
        scale = read_json(url + "s0/", "attributes.json")
        if scale is None or "dimensions" not in scale:
            datasets = local_children(url, ("attributes.json",))
            listed = f" (it holds {', '.join(datasets)})" if datasets else ""
            raise SourceError(
                f"{url.rstrip('/')} is an N5 group{listed}: give the dataset inside it with --dataset-path"
            )
        group_attrs, attrs, url = attrs, scale, url + "s0/"
    else:
        parent = parent_url(url)
        if parent is not None and url.rstrip("/").rsplit("/", 1)[1] == "s0":
            group_attrs = read_json(parent, "attributes.json") or {}
    description = f"N5 {url.rstrip('/')}"
    names = attrs.get("axes") or group_attrs.get("axes")
    default_axes = axes_from_names(names) if isinstance(names, list) else None
    ndim = len(attrs["dimensions"])
    return N5Source(
        "n5",
        url,
        axes=axes,
        default_axes=default_axes or ("xyz" if ndim == 3 else "xyzc" if ndim == 4 else None),
        description=description,
        stored_voxel_size=_voxel_size(attrs, ndim) or _voxel_size(group_attrs, ndim),
    )


def _voxel_size(attrs: dict, ndim: int) -> list[float] | None:
    """nm per voxel along each stored axis, from the attributes tools write; None when they say none."""
    resolution, units = attrs.get("resolution"), attrs.get("units")
    if isinstance(resolution, list):
        units = units if isinstance(units, list) else [units or "nm"] * len(resolution)
    pixel = attrs.get("pixelResolution")
    if resolution is None and isinstance(pixel, dict):
        resolution, units = pixel.get("dimensions"), [pixel.get("unit") or "nm"] * len(pixel.get("dimensions") or [])
    elif resolution is None and isinstance(pixel, list):
        resolution, units = pixel, [attrs.get("unit") or "nm"] * len(pixel)
    if not isinstance(resolution, list) or len(resolution) != ndim or len(units) != ndim:
        return None
    try:
        values = [float(r) * nm_per(u) if nm_per(u) is not None else None for r, u in zip(resolution, units)]
    except (TypeError, ValueError):
        return None
    if any(v is None or v <= 0 for v in values):
        return None
    return values
