"""Bulk point → supervoxel lookup (``supervoxels_at_voxels``), as a synapse import asks it.

Layers are shaped like real data: uint32 and uint64 labels near the top of their type, raw and
compressed_segmentation, odd chunk sizes with a voxel_offset, a sharded scale, background, and
a volume whose size is no multiple of its chunk. Every answer is checked against the numpy array
the layer was written from, and every chunk holding points must be read exactly once, whole.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from segmentation.datasets import Datasets, NoSegmentation
from segmentation.graph.points import (
    INSIDE,
    OUTSIDE,
    _volume,
    chunks_touched,
    supervoxel_at_voxel,
    supervoxels_at_voxels,
)
from tests.helpers import SQLITE_ONLY, write_volume
from tests.layers import blank_image, sharding, write_layer

pytestmark = SQLITE_ONLY

SHAPE = (61, 50, 23)  # no multiple of any chunk below
ODD = dict(chunk=(13, 17, 7), offset=(5, 3, 2))
SV_BIT = np.uint64(1 << 56)
TOP = {"uint32": 2**32 - 1000, "uint64": 2**56 - 1000}


def real_labels(dtype: str, seed: int = 1, layered: bool = False) -> np.ndarray:
    """Blocky segments (6×5×3 voxel pieces of ~40 labels near the top of ``dtype``) with background holes."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 40, size=[-(-s // f) for s, f in zip(SHAPE, (6, 5, 3))])
    fine = coarse.repeat(6, 0).repeat(5, 1).repeat(3, 2)[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    labels = (fine + TOP[dtype]).astype(dtype)
    labels[rng.random(SHAPE) < 0.15] = 0  # speckled background
    labels[:, :, :4] = 0  # and a background slab
    if layered:
        labels = np.where(labels == 0, 0, labels.astype(np.uint64) | SV_BIT)
    return labels


def expected_supervoxels(labels: np.ndarray) -> np.ndarray:
    """Plain labels → layer-1 ids, layered ids and background kept (independent of the module's code)."""
    labels = labels.astype(np.uint64)
    layered = (labels >> np.uint64(56)) == 1
    return np.where(layered | (labels == 0), labels, labels | SV_BIT)


def write(path, labels, layout: str, encoding: str) -> tuple[str, np.ndarray]:
    """A layer of ``labels`` in ``layout``; returns (url, voxel_offset)."""
    if layout == "aligned":
        url = write_volume(
            path, labels, layer_type="segmentation", encoding=encoding, chunk=(16, 16, 8), mips=1, compress=True
        )
        return url, np.zeros(3, dtype=np.int64)
    shard = sharding(preshift_bits=1, minishard_bits=1, shard_bits=2) if layout == "sharded" else None
    url = write_layer(path, [labels], encoding=encoding, shard=shard, **ODD)
    return url, np.asarray(ODD["offset"])


@pytest.fixture
def registry(database_url) -> Datasets:
    from segmentation import db

    db.upgrade(database_url)
    return Datasets(database_url)


def points_for(offset, rng, count=2000) -> tuple[np.ndarray, np.ndarray]:
    """(points, expected status): ``count`` random voxels inside, the corners (the last voxel among them),
    and points just outside each face and far outside."""
    lower, upper = offset, offset + np.asarray(SHAPE)
    inside = rng.integers(lower, upper, size=(count, 3))
    corners = np.array(
        [[lo if bit == "0" else hi - 1 for lo, hi, bit in zip(lower, upper, f"{i:03b}")] for i in range(8)]
    )
    outside = [lower - 1, upper, [lower[0], lower[1], upper[2]], [upper[0] - 1, lower[1] - 1, lower[2]]]
    outside += [[-(2**40), 0, 0], [2**40, 2**40, 2**40], [lower[0], lower[1], -1]]
    points = np.concatenate([inside, corners, np.asarray(outside, dtype=np.int64)])
    status = np.array([INSIDE] * (count + 8) + [OUTSIDE] * len(outside), dtype=np.uint8)
    order = rng.permutation(len(points))  # outside points mixed in, not at the end
    return points[order], status[order]


class ReadLog:
    """Wraps the cached CloudVolume's ``download`` (what ``volume[...]`` calls) and records each box read."""

    def __init__(self, monkeypatch, url):
        volume, _ = _volume(url)
        self.boxes = []
        original = volume.download

        def download(bbox, *args, **kwargs):
            self.boxes.append((tuple(int(v) for v in bbox.minpt), tuple(int(v) for v in bbox.maxpt)))
            return original(bbox, *args, **kwargs)

        monkeypatch.setattr(volume, "download", download)


def chunk_boxes(points, offset, chunk) -> set:
    """The chunk boxes (clamped to the volume) holding the points inside the volume."""
    lower, upper = np.asarray(offset), np.asarray(offset) + np.asarray(SHAPE)
    points = points[np.all((points >= lower) & (points < upper), axis=1)]
    cells = {tuple(c) for c in ((points - lower) // np.asarray(chunk)).tolist()}
    boxes = set()
    for cell in cells:
        lo = lower + np.asarray(cell) * chunk
        boxes.add((tuple(lo.tolist()), tuple(np.minimum(lo + chunk, upper).tolist())))
    return boxes


@pytest.mark.parametrize("layout", ["aligned", "odd", "sharded"])
@pytest.mark.parametrize("encoding", ["raw", "compressed_segmentation"])
@pytest.mark.parametrize("dtype", ["uint32", "uint64"])
def test_bulk_lookup_matches_brute_force_and_reads_each_chunk_once(
    registry, tmp_path, monkeypatch, layout, encoding, dtype
):
    labels = real_labels(dtype)
    url, offset = write(tmp_path / "seg", labels, layout, encoding)
    dataset = registry.add("bulk", segmentation=url)
    assert dataset.voxel_offset == offset.tolist()
    points, want_status = points_for(offset, np.random.default_rng(5))
    log = ReadLog(monkeypatch, url)

    supervoxels, status = supervoxels_at_voxels(dataset, points)

    assert supervoxels.dtype == np.uint64 and status.dtype == np.uint8
    assert supervoxels.shape == status.shape == (len(points),)
    np.testing.assert_array_equal(status, want_status)
    truth = expected_supervoxels(labels)
    inside = status == INSIDE
    local = points[inside] - offset
    np.testing.assert_array_equal(supervoxels[inside], truth[local[:, 0], local[:, 1], local[:, 2]])
    assert not supervoxels[~inside].any()
    assert (supervoxels[inside] == 0).sum() > 100  # background points are answered (0), not refused
    last = np.all(points == offset + np.asarray(SHAPE) - 1, axis=1)
    assert last.sum() == 1 and status[last] == INSIDE
    assert supervoxels[last] == truth[-1, -1, -1]

    chunk = (16, 16, 8) if layout == "aligned" else ODD["chunk"]
    wanted = chunk_boxes(points, offset, chunk)
    assert len(log.boxes) == len(wanted) == chunks_touched(dataset, points)  # each chunk once …
    assert set(log.boxes) == wanted  # … and exactly its box


def test_layered_ids_are_kept_and_agree_with_the_single_point_lookup(registry, tmp_path):
    labels = real_labels("uint64", seed=3, layered=True)
    url, offset = write(tmp_path / "seg", labels, "odd", "compressed_segmentation")
    dataset = registry.add("layered", segmentation=url)
    points, _ = points_for(offset, np.random.default_rng(8), count=300)
    supervoxels, status = supervoxels_at_voxels(dataset, points)
    inside = status == INSIDE
    local = points[inside] - offset
    np.testing.assert_array_equal(supervoxels[inside], labels[local[:, 0], local[:, 1], local[:, 2]])
    for point, sv in list(zip(points[inside], supervoxels[inside]))[:40]:
        if sv:
            assert supervoxel_at_voxel(dataset, point) == int(sv)


def test_a_missing_chunk_is_background(registry, tmp_path):
    labels = real_labels("uint32")
    labels[13:26, 17:34, 7:14] = 77  # the whole chunk (1, 1, 1) of the odd grid (offset (5, 3, 2))
    url, offset = write(tmp_path / "seg", labels, "odd", "raw")
    key = tmp_path / "seg" / "8_8_40"
    name = "18-31_20-37_9-16"
    files = [path for path in key.iterdir() if path.name.split(".")[0] == name]
    assert len(files) == 1
    files[0].unlink()
    dataset = registry.add("holes", segmentation=url)
    points = np.array([[18, 20, 9], [30, 36, 15], [25, 25, 12], [17, 20, 9]])
    supervoxels, status = supervoxels_at_voxels(dataset, points)
    assert status.tolist() == [INSIDE] * 4
    assert supervoxels[:3].tolist() == [0, 0, 0]
    assert supervoxels[3] == expected_supervoxels(labels)[12, 17, 7]


def test_budget_is_checked_once_per_chunk_and_can_stop_the_work(registry, tmp_path, monkeypatch):
    from segmentation import budget
    from segmentation.budget import OverBudget, time_budget

    labels = real_labels("uint64")
    url, offset = write(tmp_path / "seg", labels, "odd", "raw")
    dataset = registry.add("budget", segmentation=url)
    points, _ = points_for(offset, np.random.default_rng(2), count=500)

    class Counting:
        checks = 0

        def check(self):
            self.checks += 1

    counting = Counting()
    log = ReadLog(monkeypatch, url)
    supervoxels_at_voxels(dataset, points, budget=counting)
    assert counting.checks == len(log.boxes) == chunks_touched(dataset, points) > 1

    supervoxels_at_voxels(dataset, points, budget=budget)  # the module itself: no budget set, no effect
    with time_budget(0.001):
        time.sleep(0.01)
        reads = len(log.boxes)
        with pytest.raises(OverBudget):
            supervoxels_at_voxels(dataset, points, budget=budget)
        assert len(log.boxes) == reads  # stopped before the first read


def test_no_points_image_only_datasets_and_bad_shapes(registry, tmp_path, monkeypatch):
    labels = real_labels("uint32")
    url, offset = write(tmp_path / "seg", labels, "odd", "raw")
    dataset = registry.add("edge", segmentation=url)
    log = ReadLog(monkeypatch, url)
    for empty in ([], np.zeros((0, 3), dtype=np.int64)):
        supervoxels, status = supervoxels_at_voxels(dataset, empty)
        assert supervoxels.shape == status.shape == (0,) and supervoxels.dtype == np.uint64
        assert status.dtype == np.uint8
    assert chunks_touched(dataset, []) == 0
    supervoxels, status = supervoxels_at_voxels(dataset, [[0, 0, 0], [10**30, 0, 0]])  # all outside: no read
    assert status.tolist() == [OUTSIDE, OUTSIDE] and supervoxels.tolist() == [0, 0]
    uint64_points = np.array([[2**63 + 5, 10, 10], [10, 10, 10]], dtype=np.uint64)  # no wrap to negative
    supervoxels, status = supervoxels_at_voxels(dataset, uint64_points)
    assert status.tolist() == [OUTSIDE, INSIDE]
    assert supervoxels[1] == expected_supervoxels(labels)[5, 7, 8]
    float_points = np.array([[np.nan, 10, 10], [np.inf, 10, 10], [10.7, 10.2, 10.9]])
    supervoxels, status = supervoxels_at_voxels(dataset, float_points)
    assert status.tolist() == [OUTSIDE, OUTSIDE, INSIDE]
    assert supervoxels[2] == expected_supervoxels(labels)[5, 7, 8]
    assert len(log.boxes) == 2
    for bad in ([1, 2, 3], [[1, 2]], [["a", "b", "c"]]):
        with pytest.raises(ValueError):
            supervoxels_at_voxels(dataset, bad)

    image = blank_image(tmp_path / "image", (20, 20, 5), chunk=(10, 10, 5), offset=(0, 0, 0))
    image_only = registry.add("pictures", image=image)
    with pytest.raises(NoSegmentation):
        supervoxels_at_voxels(image_only, [[1, 1, 1]])
