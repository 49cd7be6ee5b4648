"""Viewer configuration as data: default state, layer templates, shader presets.

The JSON and GLSL files beside this module are the configuration; this module
only fills them in for a dataset (sources, dimensions, centre).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


@cache
def _json(name: str) -> dict:
    return json.loads((HERE / name).read_text())


@cache
def shader(name: str) -> str:
    """A shader preset from ``shaders/<name>.glsl``."""
    path = HERE / "shaders" / f"{name}.glsl"
    if not path.is_file():
        raise KeyError(f"no shader preset {name!r}")
    return path.read_text()


def layer_templates() -> dict:
    return copy.deepcopy(_json("layer_templates.json"))


def layer_state(layer, base_url: str, dataset_ref: str) -> dict:
    """A Neuroglancer layer for ``layer`` (a segmentation.datasets.Layer) from its kind's template."""
    state = {"type": layer.kind, "source": f"precomputed://{base_url}/data/{dataset_ref}/{layer.name}"}
    state.update(layer_templates()[layer.kind])
    preset = state.pop("shaderPreset", None)
    if preset:
        state["shader"] = shader(preset)
    state["name"] = layer.name
    return state


GRAPH_LAYER = "segmentation"  # the layer a dataset's graph is built from (segmentation.datasets.GRAPH_LAYER)
SYNAPSE_LAYER = "synapses"  # the annotation layer of a dataset's synapses


def synapse_source(base_url: str, dataset_ref: str) -> str:
    """The synapses of ``dataset_ref`` (``NAME`` or ``NAME@<moment>``) as a Neuroglancer source."""
    return f"precomputed://{base_url}/annotations/{dataset_ref}/synapses"


def synapse_layer(base_url: str, dataset_ref: str, segmentation_layer: str) -> dict:
    """An annotation layer of the synapses of ``dataset_ref`` (``NAME`` or ``NAME@<moment>``), the live
    precomputed annotation source the server answers at ``/annotations/<dataset_ref>/synapses``.

    Both ends are linked to ``segmentation_layer`` and filtered by it: the layer shows the synapses
    of the selected neurons only, and nothing while none is (``ignoreNullSegmentFilter`` off; the
    source's spatial index is empty, see ``segmentation.connectivity.annotations.info``). Each synapse
    is a line from its pre point (red) to its post point (blue).
    """
    state = {
        "type": "annotation",
        "source": synapse_source(base_url, dataset_ref),
        **layer_templates()["synapses"],
        "name": SYNAPSE_LAYER,
    }
    state["linkedSegmentationLayer"] = {
        relationship: segmentation_layer for relationship in state["filterBySegmentation"]
    }
    return state


def pin_synapses(state: dict, base_url: str, dataset: str, moment: str, segmentation_layer: str | None = None) -> None:
    """Point the synapse layer of ``state`` (if it has one) at ``dataset`` as of ``moment`` (the text
    after ``@`` in a dataset reference), and link it to ``segmentation_layer`` when given (the pinned
    segmentation layer, when a caller renames it). In place."""
    for layer in state.get("layers", []):
        if layer.get("type") == "annotation" and layer.get("name") == SYNAPSE_LAYER:
            layer["source"] = synapse_source(base_url, f"{dataset}@{moment}")
            if segmentation_layer is not None:
                layer["linkedSegmentationLayer"] = dict.fromkeys(layer["linkedSegmentationLayer"], segmentation_layer)


def default_state(dataset, base_url: str, graphene: bool = False, synapses: bool = False) -> dict:
    """The state that opens ``dataset`` centred and framed, with its layers.

    Shown: the first image layer, segmentation layers that are not the graph's (a ground
    truth, bodies: served as stored) and, on top of them and selected, the graph's
    segmentation; listed but hidden (one click away): further image layers; left out: other
    layouts of the graph's own supervoxels (they would show the same roots twice). ``graphene``: the
    dataset has a graph, so its segmentation is the graphene:// source the stock viewer
    proofreads with (merge and multicut tools bound to shift+M and shift+C). ``synapses``: the
    dataset has synapses, so a ``synapses`` annotation layer (:func:`synapse_layer`) linked to the
    graph's segmentation comes just before it (the proofread layer stays last and selected; Neuroglancer
    draws annotations over every volume layer whatever their order). An image-only dataset (no
    segmentation layer) gets the same state without a proofread segmentation, nor synapses.
    """
    template = copy.deepcopy(_json("default_state.json"))
    template.pop("layerKinds", None)
    images = [layer for layer in dataset.layers if layer.kind == "image"]
    graph = [layer for layer in dataset.layers if layer.name == GRAPH_LAYER]
    others = [layer for layer in dataset.layers if layer.kind == "segmentation" and not layer.supervoxels]
    shown = {layer.name for layer in images[:1] + others + graph}
    order = images + others + graph  # later layers draw on top: the proofread one last
    layers = []
    for layer in order:
        state_of_layer = layer_state(layer, base_url, dataset.name)
        if layer.name not in shown:
            state_of_layer["visible"] = False
        layers.append(state_of_layer)
    state = {
        "dimensions": {axis: [r * 1e-9, "m"] for axis, r in zip("xyz", dataset.voxel_resolution)},
        "position": dataset.center_voxel,
        **template,
        **framing(dataset),
        "layers": layers,
    }
    segmentation = next((s for s, layer in zip(layers, order) if layer in graph), None)
    if graphene and segmentation is not None:
        segmentation["source"] = f"graphene://{base_url}/segmentation/table/{dataset.name}"
        segmentation.update(copy.deepcopy(layer_templates()["graphene"]))
    if synapses and segmentation is not None:
        layers.insert(layers.index(segmentation), synapse_layer(base_url, dataset.name, segmentation["name"]))
    if state["layers"]:
        selected = segmentation or state["layers"][-1]
        state["selectedLayer"] = {"layer": selected["name"], "visible": False}
    state["title"] = f"{dataset.name} — axonlink"
    return state


def framing(dataset, viewport_pixels: int = 800) -> dict:
    """Zoom levels that frame the whole volume, whatever its size and voxel size.

    Neuroglancer's ``crossSectionScale`` and ``projectionScale`` are in canonical voxels (the
    finest of the state's dimensions): the cross-section scale is canonical voxels per screen
    pixel, the projection scale the height of the 3D view. A fixed value left small volumes a
    speck among grey planes and large ones a blur.
    """
    resolution = [float(r) for r in dataset.voxel_resolution]
    canonical = min(resolution)
    widest = max(float(s) * r for s, r in zip(dataset.volume_size, resolution)) / canonical
    return {
        "crossSectionScale": round(max(widest / viewport_pixels, 1e-3), 4),
        "projectionScale": round(1.5 * widest, 1),
    }
