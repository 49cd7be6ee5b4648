"""``axonlink demo``'s dataset: build the phantom once and write it as precomputed layers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cc3d
import fastremap
import numpy as np
import zmesh
from tqdm import tqdm

from ..precomputed import downsamples, write_layer, write_legacy_meshes
from .phantom import RESOLUTION, make_phantom

DEMO_LAYERS = ("image", "segmentation", "segmentation_sharded")
FORMAT_VERSION = "2"
MARKER = ".demo-complete"
CHUNK = (64, 64, 32)
MIPS = 4


def demo_is_built(dest) -> bool:
    marker = Path(dest) / MARKER
    return marker.is_file() and marker.read_text().strip() == FORMAT_VERSION


def build_demo(dest: str | os.PathLike, *, progress: bool = True, seed: int = 0) -> Path:
    """Write the demo under ``dest``: image, segmentation (+ meshes), sharded copy, ground truth."""
    dest = Path(dest).resolve()
    if dest.exists():
        for name in (*DEMO_LAYERS, MARKER, "ground_truth.json"):
            target = dest / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=6, desc="demo dataset", unit="step", disable=not progress)

    steps.set_postfix_str("neurites and supervoxels")
    phantom = make_phantom(seed)
    steps.update()

    steps.set_postfix_str("image layer (jpeg)")
    write_layer(dest / "image", downsamples(phantom.image, "image", MIPS - 1), "image", "jpeg", RESOLUTION, CHUNK)
    steps.update()

    steps.set_postfix_str("segmentation layer")
    labels = downsamples(phantom.labels, "segmentation", MIPS - 1)
    seg_url = write_layer(
        dest / "segmentation", labels, "segmentation", "compressed_segmentation", RESOLUTION, CHUNK, mesh="mesh"
    )
    steps.update()

    steps.set_postfix_str("sharded segmentation")
    write_layer(
        dest / "segmentation_sharded",
        labels,
        "segmentation",
        "compressed_segmentation",
        RESOLUTION,
        CHUNK,
        sharded=True,
    )
    steps.update()

    steps.set_postfix_str("meshes")
    write_legacy_meshes(seg_url, mesh_supervoxels(labels))
    steps.update()

    steps.set_postfix_str("ground truth")
    truth = ground_truth(phantom, seed)
    truth["false_merges"] = false_merges(phantom.labels, phantom.supervoxel_to_neuron)
    (dest / "ground_truth.json").write_text(json.dumps(truth))
    (dest / MARKER).write_text(FORMAT_VERSION)
    steps.update()
    steps.close()
    return dest


def mesh_supervoxels(levels: list[np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A simplified surface mesh (vertices in nm) per supervoxel.

    Meshed from mip 1 (16 nm) to keep the build quick; supervoxels too small to
    survive downsampling are meshed from their own mip-0 box.
    """
    resolution = np.asarray(RESOLUTION) * np.array([2, 2, 1])
    meshes = _mesh(levels[1], resolution, offset=np.zeros(3))
    full = levels[0]
    missing = set(int(s) for s in fastremap.unique(full) if s) - set(meshes)
    if missing:
        boxes = cc3d.statistics(full)["bounding_boxes"]
        for segid in sorted(missing):
            box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in boxes[segid])
            crop = np.where(full[box] == segid, full[box], 0)
            offset = np.array([b.start for b in box]) * np.asarray(RESOLUTION)
            meshes.update(_mesh(crop, np.asarray(RESOLUTION), offset))
    return meshes


def _mesh(labels, resolution, offset):
    mesher = zmesh.Mesher(tuple(float(r) for r in resolution))
    mesher.mesh(labels)
    meshes = {}
    for segid in mesher.ids():
        mesh = mesher.get(segid, normals=False, reduction_factor=10, max_error=40)
        meshes[int(segid)] = (mesh.vertices + offset, mesh.faces)
    mesher.clear()
    return meshes


def false_merges(labels: np.ndarray, supervoxel_to_neuron: dict[int, int], count: int = 6) -> list[list[int]]:
    """Touching supervoxels of different neurons with the largest contacts: the demo's deliberate errors.

    The demo's graph starts with these edges active, as an automatic agglomeration
    would wrongly join them; proofreaders split them apart.
    """
    contacts = cc3d.contacts(labels, connectivity=6, surface_area=True, anisotropy=RESOLUTION)
    wrong = sorted(
        (
            (area, min(a, b), max(a, b))
            for (a, b), area in contacts.items()
            if a and b and supervoxel_to_neuron[int(a)] != supervoxel_to_neuron[int(b)]
        ),
        reverse=True,
    )
    chosen, used = [], set()
    for _, a, b in wrong:
        if a in used or b in used:
            continue
        chosen.append([int(a), int(b)])
        used.update((a, b))
        if len(chosen) == count:
            break
    return sorted(chosen)


def ground_truth(phantom, seed: int) -> dict:
    """The true neuron of every supervoxel, and each neuron's skeleton, for tests and proofreading."""
    neurons = {}
    for neurite in phantom.neurites:
        neurons[str(neurite.neuron_id)] = {
            "skeleton_voxels": [
                np.round(points / np.asarray(RESOLUTION)).astype(int)[::10].tolist() for points in neurite.points_nm
            ],
            "radius_nm": [round(float(r), 1) for r in neurite.radii_nm],
        }
    return {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "resolution_nm": list(RESOLUTION),
        "supervoxel_to_neuron": {str(k): v for k, v in sorted(phantom.supervoxel_to_neuron.items())},
        "neurons": neurons,
    }
