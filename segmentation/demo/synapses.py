"""Synapses the demo ships with: a few hundred, where neurites of different neurons touch.

Deterministic (a fixed seed over the built volume): every face within a section (along x or y)
between voxels of supervoxels of different ground-truth neurons is a candidate contact, so each
synapse lies in one section as EM shows it; at most one site is kept per block of
the volume (so synapses spread along the contacts rather than pile up on the largest), and a
seeded shuffle picks :data:`COUNT` of them. Each synapse's pre point is one voxel inside one
neuron, its post point one voxel inside the other (back from the contact face, where that voxel
still belongs to the same neuron), its centre the contact itself. Which side is presynaptic is
fixed per pair of neurons (so a pair's synapses point one way, as a real connection does), and
sizes (voxels, as a detector reports a cleft's) are drawn from a log-normal around ~110.
"""

from __future__ import annotations

import numpy as np

from .phantom import SHAPE

COUNT = 400
SEED = 20
PLANE_AXES = (0, 1)  # faces within a section (x, y): each synapse is seen whole in one section
BLOCK = (32, 32, 8)  # at most one synapse per block of voxels (256 x 256 x 320 nm)
SIZE_RANGE = (20, 2000)


def neuron_volume(labels: np.ndarray, supervoxel_to_neuron: dict) -> np.ndarray:
    """The ground-truth neuron (uint16, 0 = background) of every voxel of the supervoxel ``labels``."""
    lut = np.zeros(max((int(k) for k in supervoxel_to_neuron), default=0) + 1, dtype=np.uint16)
    for supervoxel, neuron in supervoxel_to_neuron.items():
        lut[int(supervoxel)] = int(neuron)
    if labels.size and int(labels.max()) >= len(lut):
        raise ValueError("the volume holds a supervoxel the ground truth does not list")
    return lut[labels]


def contact_synapses(labels: np.ndarray, supervoxel_to_neuron: dict, count: int = COUNT, seed: int = SEED) -> dict:
    """Synapses at contacts between different neurons, as arrays: ``pre_xyz``, ``post_xyz``,
    ``ctr_xyz`` (int64 (N, 3) voxels), ``size`` (float32), ``pre_neuron``/``post_neuron`` (int64)."""
    neurons = neuron_volume(labels, supervoxel_to_neuron)
    shape = np.array(neurons.shape)
    sites, axes = [], []  # the lower voxel of each face, and the axis it faces along
    for axis in PLANE_AXES:
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        a, b = neurons[tuple(lower)], neurons[tuple(upper)]
        touching = a != b
        touching &= a != 0
        touching &= b != 0
        flat = np.flatnonzero(touching)
        sites.append(np.stack(np.unravel_index(flat, touching.shape), axis=1))
        axes.append(np.full(len(flat), axis, np.int64))
    sites, axes = np.concatenate(sites).astype(np.int64), np.concatenate(axes)
    rng = np.random.default_rng(seed)
    if not len(sites):
        return _empty()
    order = rng.permutation(len(sites))
    sites, axes = sites[order], axes[order]
    blocks = sites // np.asarray(BLOCK)
    grid = -(-shape // np.asarray(BLOCK))
    _, first = np.unique(np.ravel_multi_index(blocks.T, grid), return_index=True)
    chosen = np.sort(first)[:count]  # the shuffled order decides which blocks and which face in each
    sites, axes = sites[chosen], axes[chosen]
    step = np.eye(3, dtype=np.int64)[axes]
    low, high = sites, sites + step  # the two voxels of each face
    low_neuron = neurons[tuple(low.T)].astype(np.int64)
    high_neuron = neurons[tuple(high.T)].astype(np.int64)
    low_in = _one_voxel_in(neurons, low, -step, low_neuron)
    high_in = _one_voxel_in(neurons, high, step, high_neuron)
    # one direction per pair of neurons: the lower-numbered one is presynaptic when their sum is even
    pair_low = np.minimum(low_neuron, high_neuron)
    low_is_pre = (low_neuron == pair_low) == ((low_neuron + high_neuron) % 2 == 0)
    pre_xyz = np.where(low_is_pre[:, None], low_in, high_in)
    post_xyz = np.where(low_is_pre[:, None], high_in, low_in)
    size = np.clip(np.round(rng.lognormal(np.log(110), 0.7, len(sites))), *SIZE_RANGE).astype(np.float32)
    return {
        "pre_xyz": pre_xyz,
        "post_xyz": post_xyz,
        "ctr_xyz": low.copy(),
        "size": size,
        "pre_neuron": np.where(low_is_pre, low_neuron, high_neuron),
        "post_neuron": np.where(low_is_pre, high_neuron, low_neuron),
    }


def _one_voxel_in(neurons: np.ndarray, voxels: np.ndarray, outward: np.ndarray, neuron: np.ndarray) -> np.ndarray:
    """``voxels`` moved one voxel along ``outward`` (away from the contact), where that stays in the
    volume and in the same neuron; else the voxel itself (which is in it)."""
    moved = voxels + outward
    inside = ((moved >= 0) & (moved < np.array(neurons.shape))).all(axis=1)
    clipped = np.where(inside[:, None], moved, voxels)
    keep = inside & (neurons[tuple(clipped.T)] == neuron)
    return np.where(keep[:, None], moved, voxels)


def _empty() -> dict:
    none = np.zeros((0, 3), np.int64)
    return {
        "pre_xyz": none,
        "post_xyz": none,
        "ctr_xyz": none,
        "size": np.zeros(0, np.float32),
        "pre_neuron": np.zeros(0, np.int64),
        "post_neuron": np.zeros(0, np.int64),
    }


def demo_incoming(segmentation_url: str, truth: dict, count: int = COUNT, seed: int = SEED):
    """The demo's synapses as :class:`~segmentation.connectivity.Incoming` rows, from the built
    segmentation at ``segmentation_url`` (a CloudVolume path; read whole, once: 32 M voxels) and
    ``truth`` (``ground_truth.json``). Their supervoxels are given, so adding them reads no chunk again."""
    from cloudvolume import CloudVolume

    from ..connectivity import Incoming
    from ..graph.ids import supervoxel_ids

    volume = CloudVolume(segmentation_url, mip=0, progress=False, fill_missing=False)
    labels = np.asarray(volume[:, :, :])[..., 0]
    if labels.shape != SHAPE:
        raise ValueError(f"the demo segmentation is {labels.shape}, not {SHAPE}")
    found = contact_synapses(labels, truth["supervoxel_to_neuron"], count, seed)
    n = len(found["size"])
    return Incoming(
        row=np.arange(1, n + 1, dtype=np.int64),
        pre_xyz=found["pre_xyz"],
        post_xyz=found["post_xyz"],
        ctr_xyz=found["ctr_xyz"],
        size=found["size"],
        ids=None,
        pre_sv=supervoxel_ids(labels[tuple(found["pre_xyz"].T)]),
        post_sv=supervoxel_ids(labels[tuple(found["post_xyz"].T)]),
    )
