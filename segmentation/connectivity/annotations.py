"""Synapses as a Neuroglancer precomputed annotation source, encoded per request.

Why live: a synapse belongs to a neuron through its supervoxels, and proofreading edits (merges,
splits) change which neuron a supervoxel belongs to. A precomputed annotation directory written
once would file each synapse under the segment ids of the moment it was written and go stale at
the first edit. Here nothing is written to disk: the server computes each answer from the current
(or the asked moment's) supervoxel → root mapping, so a neuron's synapses follow every edit.

What the server answers, under an annotation base URL ``<base>`` (Neuroglancer is given
``precomputed://<base>``; every id below is base-10 uint64, every binary answer
``application/octet-stream``):

``<base>/info``
    :func:`info` as JSON.
``<base>/rel_pre/<segment id>`` and ``<base>/rel_post/<segment id>``
    :func:`encode_multiple` of the synapses whose pre (resp. post) side lies in that segment (the
    related object id index, unsharded). A segment without synapses: ``encode_multiple`` of empty
    arrays (count 0) — Neuroglancer also takes a 404 as "none".
``<base>/by_id/<annotation id>``
    :func:`encode_by_id` of that one synapse (the annotation id index, unsharded; asked when a
    synapse is hovered or selected, so it names both cells).
``<base>/spatial0/0_0_0``
    Always :data:`EMPTY_CHUNK` (count 0). See :func:`info` for why the spatial index is empty.

Byte layouts (Neuroglancer's ``src/datasource/precomputed/annotations.md``, checked against the
reader in ``src/datasource/precomputed/backend.ts``: ``parseAnnotations`` and
``parseSingleAnnotation``): one annotation is its LINE geometry, the pre point then the post point
(3 + 3 float32le, voxels of the ``dimensions`` given in :func:`info`), then the ``size`` property
(float32le); that is 28 bytes, already a multiple of 4, so there is no padding. The by-id answer
is that record followed, for each relationship in :data:`RELATIONSHIPS` order, by a uint32le count
and that many uint64le segment ids; Neuroglancer requires the answer to end exactly there. A list
answer (relationship index or spatial cell) is a uint64le count, the records, then the uint64le
annotation ids — with no relationships at all (the format keeps full related ids only in by-id).

Positions are written as given: a voxel index ``i`` is the voxel's corner in Neuroglancer's
coordinates; add 0.5 before calling to draw at voxel centres.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import Invalid

RELATIONSHIPS = ("pre_synaptic_cell", "post_synaptic_cell")
RELATIONSHIP_KEYS = ("rel_pre", "rel_post")  # the sub-paths of RELATIONSHIPS, same order
BY_ID_KEY = "by_id"
SPATIAL_KEY = "spatial0"
SPATIAL_CHUNK_NAME = "0_0_0"  # the one cell of the one spatial level (grid_shape [1, 1, 1])
ANNOTATION_TYPE = "LINE"
PROPERTIES = (
    {
        "id": "size",
        "type": "float32",
        "description": "Synapse size as given in the synapse table (NaN where none was given)",
    },
)
DEFAULT_SPATIAL_CHUNK_LIMIT = 1

# One annotation, geometry then properties: 28 bytes, a multiple of 4 (the format's alignment).
_RECORD = np.dtype([("pre", "<f4", (3,)), ("post", "<f4", (3,)), ("size", "<f4")])
assert _RECORD.itemsize % 4 == 0

EMPTY_CHUNK = np.zeros(1, "<u8").tobytes()  # a list of zero annotations: just the uint64 count


def info(
    lower_bound_voxels, upper_bound_voxels, resolution_nm, *, spatial_chunk_limit=DEFAULT_SPATIAL_CHUNK_LIMIT
) -> dict:
    """The ``info`` JSON of the synapse annotation source of a volume.

    ``lower_bound_voxels``/``upper_bound_voxels``: the volume's box in voxels (x, y, z; upper
    exclusive), e.g. ``voxel_offset`` and ``voxel_offset + size`` of its finest scale;
    ``resolution_nm``: that scale's voxel size, written in metres as Neuroglancer's dimensions are.

    The spatial index is one level of one cell covering the whole volume, and the server answers
    that cell with no annotations. Neuroglancer reads the spatial index whenever it is not
    filtering by segment — including when the annotation layer filters by a linked segmentation
    layer in which no segment is selected (``ignoreNullSegmentFilter``, on by default) — and a
    cell holding every synapse of a large dataset (millions) must never be sent, nor computed per
    request. With the cell empty, nothing is drawn until a segment is selected; then Neuroglancer
    asks ``rel_pre/<id>`` and ``rel_post/<id>`` for each selected segment instead. ``limit`` (the
    most annotations a cell holds, which Neuroglancer divides by to subsample) must be a positive
    integer; 1 is honest for an empty cell and never subsamples. A server that does put
    annotations in the cell (a tiny dataset) passes their number as ``spatial_chunk_limit``.
    """
    lower = _vector(lower_bound_voxels, "lower_bound_voxels")
    upper = _vector(upper_bound_voxels, "upper_bound_voxels")
    resolution = _vector(resolution_nm, "resolution_nm")
    if not all(u > lo for lo, u in zip(lower, upper)):
        raise Invalid(f"upper bound {upper} must exceed lower bound {lower} in every dimension")
    if not all(r > 0 for r in resolution):
        raise Invalid(f"resolution {resolution} must be positive")
    if (
        isinstance(spatial_chunk_limit, bool)
        or not isinstance(spatial_chunk_limit, int | np.integer)
        or spatial_chunk_limit < 1
    ):
        raise Invalid(f"spatial_chunk_limit must be a positive integer, not {spatial_chunk_limit!r}")
    return {
        "@type": "neuroglancer_annotations_v1",
        # nm → m by division, so 40 nm is 4e-08 exactly as written, not 4.0000000000000004e-08
        "dimensions": {name: [r / 1e9, "m"] for name, r in zip("xyz", resolution)},
        "lower_bound": lower,
        "upper_bound": upper,
        "annotation_type": ANNOTATION_TYPE,
        "properties": [dict(p) for p in PROPERTIES],
        "relationships": [{"id": rel, "key": key} for rel, key in zip(RELATIONSHIPS, RELATIONSHIP_KEYS)],
        "by_id": {"key": BY_ID_KEY},
        "spatial": [
            {
                "key": SPATIAL_KEY,
                "grid_shape": [1, 1, 1],
                "chunk_size": [u - lo for lo, u in zip(lower, upper)],
                "limit": int(spatial_chunk_limit),
            }
        ],
    }


def encode_by_id(annotation_id, pre_xyz, post_xyz, size, pre_segment, post_segment) -> bytes:
    """One synapse as the annotation id index answers it (``by_id/<annotation_id>``).

    The annotation id is the request's key and is not part of the bytes; it is only checked to be
    a uint64. ``pre_segment``/``post_segment``: the segment (root) id on each side; 0 (background)
    or None writes that relationship with no segment.
    """
    _uint64s([annotation_id], "annotation_id")
    record = _records(1, [pre_xyz], [post_xyz], [size])
    parts = [record.tobytes()]
    for name, segment in (("pre_segment", pre_segment), ("post_segment", post_segment)):
        related = _uint64s([] if segment is None else [segment], name)
        related = related[related != 0]
        parts.append(np.array([len(related)], "<u4").tobytes())
        parts.append(related.astype("<u8").tobytes())
    return b"".join(parts)


def encode_multiple(ids, pre_xyz, post_xyz, sizes, pre_segments=None, post_segments=None) -> bytes:
    """Synapses as a list answer: a relationship index entry (``rel_pre/<id>``, ``rel_post/<id>``) or
    a spatial cell. ``ids``: uint64 annotation ids (N); ``pre_xyz``/``post_xyz``: (N, 3) voxels;
    ``sizes``: (N,). Empty arrays give :data:`EMPTY_CHUNK`, which Neuroglancer accepts.

    ``pre_segments``/``post_segments`` are optional and not encoded — the list encoding carries no
    relationships (a selected synapse's cells come from ``by_id``); when given they are only checked
    to be N uint64 ids, so callers can pass the same columns as to :func:`encode_by_id`.
    """
    ids = _uint64s(ids, "ids")
    n = len(ids)
    for name, segments in (("pre_segments", pre_segments), ("post_segments", post_segments)):
        if segments is not None and (count := len(_uint64s(segments, name))) != n:
            raise Invalid(f"{name} has {count} ids, expected {n}")
    records = _records(n, pre_xyz, post_xyz, sizes)
    return b"".join((np.array([n], "<u8").tobytes(), records.tobytes(), ids.astype("<u8").tobytes()))


def _records(n: int, pre_xyz, post_xyz, sizes) -> np.ndarray:
    records = np.empty(n, _RECORD)
    records["pre"] = _points(pre_xyz, n, "pre_xyz")
    records["post"] = _points(post_xyz, n, "post_xyz")
    try:
        size = np.asarray(sizes, dtype=np.float64).reshape(-1)  # NaN allowed: "no size given"
    except (TypeError, ValueError) as e:
        raise Invalid(f"sizes must be numbers: {e}") from None
    if len(size) != n:
        raise Invalid(f"sizes has {len(size)} values, expected {n}")
    records["size"] = size
    return records


def _points(values, n: int, name: str) -> np.ndarray:
    try:
        points = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{name} must be numbers: {e}") from None
    if points.size == 0 and n == 0:
        return points.reshape(0, 3)
    if points.shape != (n, 3):
        raise Invalid(f"{name} has shape {points.shape}, expected ({n}, 3)")
    points = points.astype(np.float32)
    if not np.isfinite(points).all():
        raise Invalid(f"{name} must be finite float32 positions")
    return points


def _uint64s(values, name: str) -> np.ndarray:
    """``values`` as a 1-D uint64 array, refusing negatives, floats, bools and anything above 2**64 - 1.

    A list of Python ints is never given to ``np.asarray`` to guess a dtype: ints on both sides of
    2**63 make it float64, which silently rounds ids above 2**53.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "ui":
        array = values.reshape(-1)
        if array.dtype.kind == "i" and (array < 0).any():
            raise Invalid(f"{name} must be uint64 ids, not negative")
        return array.astype(np.uint64)
    items = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
        raise Invalid(f"{name} must be integer uint64 ids")
    if not all(0 <= int(v) < 2**64 for v in items):
        raise Invalid(f"{name} must be uint64 ids (0 to 2**64 - 1)")
    return np.array([int(v) for v in items], np.uint64)


def _vector(values, name: str) -> list[float]:
    try:
        vector = [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise Invalid(f"{name} must be 3 numbers: {e}") from None
    if len(vector) != 3 or not all(math.isfinite(v) for v in vector):
        raise Invalid(f"{name} must be 3 finite numbers (x, y, z), not {values!r}")
    return vector
