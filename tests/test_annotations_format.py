"""Synapse annotations in Neuroglancer's precomputed annotation format, byte for byte.

Two independent checks of :mod:`segmentation.connectivity.annotations`: the files Neuroglancer's own
Python ``AnnotationWriter`` writes for the same synapses (same coordinate space, property and
relationships) equal our answers, and a small numpy decoder written from the spec, with the
length checks of Neuroglancer's TypeScript reader (``parseAnnotations``, ``parseSingleAnnotation``
in ``src/datasource/precomputed/backend.ts``), reads back what we encoded — ids above 2**53 and
empty lists included.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.connectivity import annotations as ann
from segmentation.errors import Invalid

RECORD = np.dtype([("pre", "<f4", (3,)), ("post", "<f4", (3,)), ("size", "<f4")])
BIG = 2**53 + 1  # not representable as a float64: ids must never pass through floats

# id, pre xyz, post xyz, size, pre segment, post segment (0: background)
SYNAPSES = [
    (1, (10, 20, 30), (12, 21, 30), 5.5, 7, 9),
    (BIG, (0.5, 1.5, 2.5), (3, 4, 5), 1.0, 2**63 + 5, 7),
    (2**64 - 1, (100, 200, 3), (101, 199, 4), float("nan"), 7, 2**64 - 2),
    (4, (1, 2, 3), (4, 5, 6), 0.0, 0, 9),
]


def columns(rows):
    return (
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 3),
        np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, 3),
        np.array([r[3] for r in rows], dtype=np.float64),
        [r[4] for r in rows],
        [r[5] for r in rows],
    )


# --- an independent decoder, from the spec ----------------------------------------------------


def decode_multiple(data: bytes):
    assert len(data) >= 8
    count = int(np.frombuffer(data, "<u8", 1)[0])
    assert len(data) == 8 + count * (RECORD.itemsize + 8)  # what parseAnnotations insists on
    records = np.frombuffer(data, RECORD, count, offset=8)
    ids = np.frombuffer(data, "<u8", count, offset=8 + count * RECORD.itemsize)
    return records, [int(i) for i in ids]


def decode_by_id(data: bytes):
    record = np.frombuffer(data, RECORD, 1)[0]
    offset = RECORD.itemsize
    related = []
    for _ in ann.RELATIONSHIPS:
        n = int(np.frombuffer(data, "<u4", 1, offset)[0])
        offset += 4
        related.append([int(i) for i in np.frombuffer(data, "<u8", n, offset)])
        offset += 8 * n
    assert offset == len(data)  # parseSingleAnnotation refuses trailing bytes
    return record, related


def assert_same_floats(actual, expected):
    np.testing.assert_array_equal(np.asarray(actual, np.float32), np.asarray(expected, np.float32))


# --- Neuroglancer's writer ------------------------------------------------------------------------


def write_with_neuroglancer(tmp_path, rows, info):
    wa = pytest.importorskip("neuroglancer.write_annotations")
    import neuroglancer

    dims = info["dimensions"]
    space = neuroglancer.CoordinateSpace(
        names=list(dims), units=[u for _, u in dims.values()], scales=[s for s, _ in dims.values()]
    )
    writer = wa.AnnotationWriter(
        coordinate_space=space,
        annotation_type="line",
        relationships=ann.RELATIONSHIPS,
        properties=[neuroglancer.AnnotationPropertySpec(**p) for p in info["properties"]],
    )
    for sid, pre, post, size, pre_seg, post_seg in rows:
        writer.add_line(
            pre,
            post,
            id=sid,
            size=size,
            pre_synaptic_cell=[pre_seg] if pre_seg else [],
            post_synaptic_cell=[post_seg] if post_seg else [],
        )
    writer.write(tmp_path)
    return json.loads((tmp_path / "info").read_text())


@pytest.fixture
def info():
    return ann.info((0, 0, 0), (1024, 1024, 200), (8, 8, 40))


def test_info_is_what_neuroglancer_reads(info):
    assert json.loads(json.dumps(info)) == info  # plain JSON
    assert info["@type"] == "neuroglancer_annotations_v1"
    assert info["dimensions"] == {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]}
    assert info["annotation_type"] == "LINE"
    assert info["properties"][0]["id"] == "size" and info["properties"][0]["type"] == "float32"
    assert info["relationships"] == [
        {"id": "pre_synaptic_cell", "key": "rel_pre"},
        {"id": "post_synaptic_cell", "key": "rel_post"},
    ]
    assert info["by_id"] == {"key": "by_id"}
    (level,) = info["spatial"]
    assert level["key"] == "spatial0" and level["grid_shape"] == [1, 1, 1]
    assert level["chunk_size"] == [1024.0, 1024.0, 200.0]  # grid_shape * chunk_size == upper - lower
    assert isinstance(level["limit"], int) and level["limit"] >= 1  # verifyPositiveInt
    assert "sharding" not in level and "sharding" not in info["by_id"]
    assert ann.info((0, 0, 0), (1, 1, 1), (4, 4, 4), spatial_chunk_limit=50)["spatial"][0]["limit"] == 50


def test_same_bytes_as_neuroglancers_writer(tmp_path, info):
    theirs = write_with_neuroglancer(tmp_path, SYNAPSES, info)
    # Same structure; only the sub-paths differ (Neuroglancer reads them from the info) and the
    # type's case (Neuroglancer upper-cases it: verifyEnumString).
    assert theirs["dimensions"] == info["dimensions"]
    assert theirs["annotation_type"].upper() == info["annotation_type"]
    assert theirs["properties"] == [
        {"id": p["id"], "type": p["type"], "description": p["description"]} for p in info["properties"]
    ]
    assert [r["id"] for r in theirs["relationships"]] == [r["id"] for r in info["relationships"]]
    assert theirs["spatial"][0]["grid_shape"] == info["spatial"][0]["grid_shape"]

    for sid, pre, post, size, pre_seg, post_seg in SYNAPSES:
        ours = ann.encode_by_id(sid, pre, post, size, pre_seg, post_seg)
        assert ours == (tmp_path / "by_id" / str(sid)).read_bytes()

    ids, pre, post, sizes, pre_segs, post_segs = columns(SYNAPSES)
    for rel, segs in zip(ann.RELATIONSHIPS, (pre_segs, post_segs)):
        for seg in {s for s in segs if s}:
            pick = [i for i, s in enumerate(segs) if s == seg]
            ours = ann.encode_multiple([ids[i] for i in pick], pre[pick], post[pick], sizes[pick])
            assert ours == (tmp_path / f"rel_{rel}" / str(seg)).read_bytes(), (rel, seg)
    # The spatial cell uses the same list encoding (we serve it empty; see test_empty_list).
    assert ann.encode_multiple(ids, pre, post, sizes) == (tmp_path / "spatial0" / "0_0_0").read_bytes()


def test_list_round_trips_with_big_ids():
    ids, pre, post, sizes, pre_segs, post_segs = columns(SYNAPSES)
    data = ann.encode_multiple(ids, pre, post, sizes, pre_segs, post_segs)
    records, got_ids = decode_multiple(data)
    assert got_ids == [1, BIG, 2**64 - 1, 4]
    assert_same_floats(records["pre"], pre)
    assert_same_floats(records["post"], post)
    assert_same_floats(records["size"], sizes)  # NaN stays NaN (assert_array_equal matches NaNs)
    # Relationships are not part of a list: passing the segments changes nothing.
    assert data == ann.encode_multiple(ids, pre, post, sizes)
    # numpy columns as the synapse snapshot holds them (uint64/int64 ids, int32 voxels, float32 sizes)
    assert data == ann.encode_multiple(np.array(ids, np.uint64), pre, post, sizes.astype(np.float32))
    whole = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    assert ann.encode_multiple(np.array([5, 6], np.int64), whole, whole, np.ones(2, np.float32)) == (
        ann.encode_multiple([5, 6], whole.astype(float), whole.astype(float), [1.0, 1.0])
    )


def test_by_id_round_trips_related_segments():
    record, related = decode_by_id(ann.encode_by_id(BIG, (1, 2, 3), (4, 5, 6), 2.5, 2**64 - 1, BIG))
    assert_same_floats(record["pre"], (1, 2, 3))
    assert_same_floats(record["post"], (4, 5, 6))
    assert record["size"] == np.float32(2.5)
    assert related == [[2**64 - 1], [BIG]]
    # background (0) or unknown (None): a relationship with no segment
    _, related = decode_by_id(ann.encode_by_id(3, (1, 2, 3), (4, 5, 6), 1.0, 0, None))
    assert related == [[], []]
    assert len(ann.encode_by_id(3, (1, 2, 3), (4, 5, 6), 1.0, 7, 8)) == 28 + 2 * (4 + 8)


def test_empty_list():
    data = ann.encode_multiple([], [], [], [])
    assert data == ann.EMPTY_CHUNK == b"\0" * 8  # count 0, then nothing: parseAnnotations accepts it
    records, ids = decode_multiple(data)
    assert len(records) == 0 and ids == []
    empty = np.zeros((0, 3))
    assert ann.encode_multiple(np.zeros(0, np.uint64), empty, empty, np.zeros(0), [], []) == data


@pytest.mark.parametrize(
    "bad",
    [
        dict(ids=[-1]),
        dict(ids=[2**64]),
        dict(ids=[1.0]),
        dict(ids=[True]),
        dict(pre_xyz=[[1, 2]]),
        dict(post_xyz=[[np.nan, 0, 0]]),
        dict(sizes=[1.0, 2.0]),
        dict(pre_segments=[1, 2]),
        dict(post_segments=[-3]),
    ],
)
def test_refuses_bad_columns(bad):
    good = dict(ids=[1], pre_xyz=[[1, 2, 3]], post_xyz=[[4, 5, 6]], sizes=[1.0])
    with pytest.raises(Invalid):
        ann.encode_multiple(**{**good, **bad})


def test_refuses_bad_info_and_by_id():
    with pytest.raises(Invalid):
        ann.info((0, 0, 0), (0, 10, 10), (8, 8, 8))
    with pytest.raises(Invalid):
        ann.info((0, 0, 0), (10, 10, 10), (8, 0, 8))
    with pytest.raises(Invalid):
        ann.info((0, 0, 0), (10, 10, 10), (8, 8, 8), spatial_chunk_limit=0)
    with pytest.raises(Invalid):
        ann.encode_by_id(-1, (1, 2, 3), (4, 5, 6), 1.0, 1, 2)
    with pytest.raises(Invalid):
        ann.encode_by_id(1, (1, 2, 3), (4, 5, 6), 1.0, 2**64, 2)
