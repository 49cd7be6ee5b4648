"""Zarr arrays, v2 and v3, and OME-Zarr images, read with tensorstore (local, gs://, s3://, http(s)://).

A path may name an array, or an OME-Zarr group: then its first multiscale's first dataset (the finest
scale) is read, its axes are taken from the metadata, and its voxel size is its scale
``coordinateTransformations`` times the multiscale's own, in the axes' units, as nanometres (None
when a spatial axis has no length unit). A plain array's axes come from its v3 ``dimension_names``
when they are x, y, z (and c); otherwise z, y, x, the C order numpy and zarr write.
"""

from __future__ import annotations

import math

from ..volume import SourceError, axes_from_names
from ._tensorstore import TensorstoreSource, local_children, parent_url, read_json, store_url
from .units import nm_per


class ZarrSource(TensorstoreSource):
    format = "zarr"


def open(spec: str, *, dataset_path: str | None = None, axes: str | None = None) -> ZarrSource:
    url = store_url(spec, dataset_path)
    version, node, attrs = _node(url)
    if node is None:
        raise SourceError(
            f"nothing at {url.rstrip('/')}: no Zarr array or group there (no zarr.json or .zarray); check the path"
        )
    multiscale, scale_path = None, None
    if node == "group":
        multiscale = _multiscales(attrs)
        if multiscale is None:
            arrays = local_children(url, ("zarr.json", ".zarray"))
            listed = f" (it holds {', '.join(arrays)})" if arrays else ""
            raise SourceError(
                f"{url.rstrip('/')} is a Zarr group without OME-Zarr multiscales{listed}: give the array inside it "
                f"with --dataset-path"
            )
        datasets = multiscale.get("datasets") or []
        if not datasets or not isinstance(datasets[0], dict) or "path" not in datasets[0]:
            raise SourceError(
                f"{url.rstrip('/')}: its OME-Zarr multiscales list no datasets; the metadata is incomplete"
            )
        scale_path = str(datasets[0]["path"])
        group_url, url = url, url + scale_path.strip("/") + "/"
        version, node, _ = _node(url)
        if node != "array":
            raise SourceError(f"{group_url.rstrip('/')}: its finest scale {scale_path!r} is not a Zarr array")
    else:  # an array: perhaps one scale of an OME-Zarr image (its group says so)
        parent = parent_url(url)
        if parent is not None:
            _, parent_node, parent_attrs = _node(parent)
            found = _multiscales(parent_attrs) if parent_node == "group" else None
            name = url.rstrip("/").rsplit("/", 1)[1]
            for dataset in (found or {}).get("datasets") or []:
                if isinstance(dataset, dict) and str(dataset.get("path", "")).strip("/") == name:
                    multiscale, scale_path = found, name
    driver = "zarr3" if version == 3 else "zarr"
    kind = "OME-Zarr" if multiscale is not None else f"Zarr v{version}"
    description = f"{kind} {url.rstrip('/')}"
    default_axes, voxel_size, offset = None, None, None
    if multiscale is not None:
        default_axes, voxel_size, offset = _ome_geometry(multiscale, scale_path, description)
    elif version == 3 and attrs.get("_dimension_names"):
        default_axes = axes_from_names(attrs["_dimension_names"])
    return ZarrSource(
        driver,
        url,
        axes=axes,
        default_axes=default_axes,
        description=description,
        stored_voxel_size=voxel_size,
        stored_offset=offset,
    )


def _node(url: str) -> tuple[int | None, str | None, dict]:
    """(Zarr version, "array" or "group", attributes) of what is at ``url``; (None, None, {}) when nothing."""
    v3 = read_json(url, "zarr.json")
    if v3 is not None:
        attrs = dict(v3.get("attributes") or {})
        if v3.get("dimension_names"):
            attrs["_dimension_names"] = v3["dimension_names"]
        return 3, v3.get("node_type"), attrs
    attrs = read_json(url, ".zattrs") or {}
    if read_json(url, ".zarray") is not None:
        return 2, "array", attrs
    if read_json(url, ".zgroup") is not None or attrs:
        return 2, "group", attrs
    return None, None, {}


def _multiscales(attrs: dict) -> dict | None:
    """The first OME-Zarr multiscale (0.5 keeps it under ``ome``)."""
    found = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
    return found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else None


def _ome_geometry(multiscale: dict, scale_path: str, description: str):
    """(axes, voxel size in nm per stored axis or None, voxel offset per stored axis or None) of one scale."""
    names = multiscale.get("axes")
    if names is None:  # OME-Zarr 0.1 and 0.2: always t, c, z, y, x
        names = ["t", "c", "z", "y", "x"]
    entries = [a if isinstance(a, dict) else {"name": a} for a in names]
    axes = axes_from_names([e.get("name") for e in entries])
    if axes is None:
        listed = ", ".join(str(e.get("name")) for e in entries)
        raise SourceError(f"{description}: its axes ({listed}) are not x, y, z (and c, t); give the order with --axes")
    dataset = next(d for d in multiscale["datasets"] if str(d.get("path", "")).strip("/") == scale_path.strip("/"))
    scale, translation = [1.0] * len(axes), [0.0] * len(axes)
    has_translation = False
    for transforms in (dataset.get("coordinateTransformations"), multiscale.get("coordinateTransformations")):
        for transform in transforms or []:  # applied in order: the dataset's, then the multiscale's
            values = transform.get("scale") or transform.get("translation")
            if not isinstance(values, list) or len(values) != len(axes):
                continue
            if transform.get("type") == "scale":
                scale = [s * float(v) for s, v in zip(scale, values)]
                translation = [t * float(v) for t, v in zip(translation, values)]
            elif transform.get("type") == "translation":
                translation = [t + float(v) for t, v in zip(translation, values)]
                has_translation = True
    factors = [nm_per(e.get("unit")) for e in entries]
    spatial = [i for i, a in enumerate(axes) if a in "xyz"]
    if any(factors[i] is None or scale[i] <= 0 for i in spatial):
        return axes, None, None
    voxel_size = [scale[i] * factors[i] if i in spatial else 1.0 for i in range(len(axes))]
    offset = None
    if has_translation:
        voxels = [translation[i] / scale[i] if i in spatial else 0.0 for i in range(len(axes))]
        if all(math.isclose(v, round(v), abs_tol=1e-3) for v in voxels):
            offset = [round(v) for v in voxels]
    return axes, voxel_size, offset
