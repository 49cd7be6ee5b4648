"""A synthetic EM volume: branching neurites, over-segmented into supervoxels, and an EM-like image.

Everything is deterministic for a seed. Neurites are random smooth trees of
skeleton points; every voxel goes to its nearest skeleton point (one
Euclidean distance transform), so the tubes pack densely like real neuropil,
and each neurite is cut into pieces along its length, as automatic
segmentations over-segment. The image then draws dark membranes on every
boundary, textured cytoplasm, dark mitochondria, lighter extracellular space
and noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import fastremap
import numpy as np
from scipy import ndimage

SHAPE = (512, 512, 128)
RESOLUTION = (8, 8, 40)
STEP_NM = 40.0


@dataclass
class Neurite:
    neuron_id: int
    points_nm: list[np.ndarray] = field(default_factory=list)  # one (N, 3) array per branch
    radii_nm: list[float] = field(default_factory=list)
    pieces: list[np.ndarray] = field(default_factory=list)  # piece label of each point, per branch


@dataclass
class Phantom:
    labels: np.ndarray  # uint64 supervoxel ids, 0 = extracellular
    image: np.ndarray  # uint8
    supervoxel_to_neuron: dict[int, int]
    neurites: list[Neurite]


def _smooth_path(rng, start, direction, max_length, extent, wiggle=0.06):
    """A smooth random walk from ``start`` until it leaves the box or reaches ``max_length``."""
    direction = direction / np.linalg.norm(direction)
    heading = direction.copy()
    points = [np.asarray(start, dtype=float)]
    for _ in range(int(max_length / STEP_NM)):
        heading = heading + rng.normal(0, wiggle, 3) + 0.02 * direction
        heading /= np.linalg.norm(heading)
        nxt = points[-1] + heading * STEP_NM
        if np.any(nxt < 0) or np.any(nxt >= extent):
            break
        points.append(nxt)
    return np.array(points)


def _trunk_start(rng, extent):
    """A point on a random face of the box and a direction into it."""
    axis = rng.integers(0, 3)
    start = rng.uniform(0.1, 0.9, 3) * extent
    side = rng.integers(0, 2)
    start[axis] = 1.0 if side == 0 else extent[axis] - 1.0
    target = rng.uniform(0.05, 0.95, 3) * extent
    target[axis] = extent[axis] - start[axis]
    return start, target - start


def make_neurites(rng, count, extent) -> list[Neurite]:
    neurites = []
    for neuron_id in range(1, count + 1):
        neurite = Neurite(neuron_id)
        radius = rng.uniform(220, 480)
        start, direction = _trunk_start(rng, extent)
        trunk = _smooth_path(rng, start, direction, 12000, extent)
        if len(trunk) < 40:
            trunk = _smooth_path(rng, extent / 2, direction, 12000, extent)
        neurite.points_nm.append(trunk)
        neurite.radii_nm.append(radius)
        for _ in range(rng.integers(1, 4)):  # branches
            at = trunk[rng.integers(len(trunk) // 5, max(len(trunk) * 4 // 5, len(trunk) // 5 + 1))]
            heading = trunk[-1] - trunk[0]
            side = np.cross(heading, rng.normal(size=3))
            branch = _smooth_path(
                rng,
                at,
                side / np.linalg.norm(side) + 0.3 * heading / np.linalg.norm(heading),
                rng.uniform(1500, 4500),
                extent,
                wiggle=0.09,
            )
            if len(branch) > 10:
                neurite.points_nm.append(branch)
                neurite.radii_nm.append(radius * rng.uniform(0.45, 0.7))
        neurites.append(neurite)
    return neurites


def _cut_into_pieces(rng, neurites) -> tuple[dict[int, int], dict[int, float]]:
    """Give every skeleton point a piece label (~1-1.6 µm of arc each, new pieces at branches)."""
    piece_neuron, piece_radius, next_piece = {}, {}, 1
    for neurite in neurites:
        for points, radius in zip(neurite.points_nm, neurite.radii_nm):
            piece_length = rng.uniform(1000, 1600)
            arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
            local = (arc // piece_length).astype(np.int64)
            neurite.pieces.append(local + next_piece)
            for label in range(next_piece, next_piece + int(local.max()) + 1):
                piece_neuron[label] = neurite.neuron_id
                piece_radius[label] = radius
            next_piece += int(local.max()) + 1
    return piece_neuron, piece_radius


def make_labels(rng, neurites, shape=SHAPE, resolution=RESOLUTION):
    """Dense supervoxel labels from the skeletons; returns (labels, supervoxel -> neuron)."""
    piece_neuron, piece_radius = _cut_into_pieces(rng, neurites)
    res = np.asarray(resolution, dtype=float)
    seeds = np.zeros(shape, dtype=np.uint32)
    for neurite in neurites:
        for points, pieces in zip(neurite.points_nm, neurite.pieces):
            voxels = np.clip((points / res).astype(np.int64), 0, np.array(shape) - 1)
            seeds[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = pieces
    distance, nearest = ndimage.distance_transform_edt(
        seeds == 0, sampling=resolution, return_distances=True, return_indices=True
    )
    pieces = seeds[nearest[0], nearest[1], nearest[2]]
    del nearest
    radius_of = np.zeros(max(piece_radius) + 1, dtype=np.float32)
    for label, radius in piece_radius.items():
        radius_of[label] = radius
    pieces[distance > radius_of[pieces]] = 0
    del distance
    # A piece's territory can be cut in two by a crossing neurite: give each part its own id,
    # drop crumbs, and renumber supervoxels 1..N in a stable order.
    pieces = cc3d.dust(pieces, threshold=60, connectivity=6, in_place=True)
    components = cc3d.connected_components(pieces, connectivity=6, out_dtype=np.uint64)
    component_piece = fastremap.component_map(components, pieces)
    labels, mapping = fastremap.renumber(components, start=1, in_place=True)
    supervoxel_to_neuron = {
        int(new): piece_neuron[int(component_piece[old])] for old, new in mapping.items() if old != 0
    }
    return labels.astype(np.uint64), supervoxel_to_neuron


def make_image(rng, labels, neurites, resolution=RESOLUTION) -> np.ndarray:
    shape = labels.shape
    image = np.where(labels == 0, 212.0, 168.0).astype(np.float32)
    coarse = rng.normal(0, 1, (shape[0] // 8, shape[1] // 8, shape[2] // 4)).astype(np.float32)
    texture = ndimage.zoom(coarse, (8, 8, 4), order=1)[: shape[0], : shape[1], : shape[2]]
    image += 14 * texture
    membrane = np.zeros(shape, dtype=bool)
    for axis in (0, 1):  # membranes as seen in each section: in-plane boundaries
        differs = np.diff(labels, axis=axis) != 0
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        membrane[tuple(lower)] |= differs
        membrane[tuple(upper)] |= differs
    image[membrane] = 58
    res = np.asarray(resolution, dtype=float)
    for neurite in neurites:  # mitochondria: dark ellipsoids inside the trunk
        trunk, radius = neurite.points_nm[0], neurite.radii_nm[0]
        for _ in range(rng.integers(1, 4)):
            centre = trunk[rng.integers(0, len(trunk))]
            semi = np.array([0.35, 0.35, 1.2]) * radius
            lo = np.maximum(((centre - semi) / res).astype(int), 0)
            hi = np.minimum(((centre + semi) / res).astype(int) + 1, shape)
            if np.any(hi <= lo):
                continue
            grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
            inside = ((((grid + 0.5) * res - centre) / semi) ** 2).sum(-1) <= 1
            region = image[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            own = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] != 0
            region[inside & own] = 92 + 10 * rng.random()
    image = ndimage.gaussian_filter(image, sigma=(0.9, 0.9, 0))
    image += rng.normal(0, 9, shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_phantom(seed: int = 0, neuron_count: int = 48, shape=SHAPE, resolution=RESOLUTION) -> Phantom:
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape, dtype=float) * np.asarray(resolution, dtype=float)
    neurites = make_neurites(rng, neuron_count, extent)
    labels, supervoxel_to_neuron = make_labels(rng, neurites, shape, resolution)
    image = make_image(rng, labels, neurites, resolution)
    return Phantom(labels, image, supervoxel_to_neuron, neurites)
