"""Viewer configuration as data: default state, layer templates, shader presets.

The JSON and GLSL files beside this module are the configuration; this module
only fills them in for a dataset (sources, dimensions, centre).
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent


@lru_cache(maxsize=None)
def _json(name: str) -> dict:
    return json.loads((HERE / name).read_text())


@lru_cache(maxsize=None)
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


def default_state(dataset, base_url: str, graphene: bool = False) -> dict:
    """The state that opens ``dataset`` centred, with its image and segmentation layers.

    ``graphene``: the dataset has a graph, so its segmentation is the graphene:// source the stock
    viewer proofreads with (merge and multicut tools bound to shift+M and shift+C).
    """
    template = copy.deepcopy(_json("default_state.json"))
    wanted = template.pop("layerKinds")
    layers = [dataset.first_layer(kind) for kind in wanted]
    state = {
        "dimensions": {axis: [r * 1e-9, "m"] for axis, r in zip("xyz", dataset.voxel_resolution)},
        "position": dataset.center_voxel,
        **template,
        "layers": [layer_state(layer, base_url, dataset.name) for layer in layers if layer is not None],
    }
    segmentation = next((l for l in state["layers"] if l["type"] == "segmentation"), None)
    if graphene and segmentation is not None:
        segmentation["source"] = f"graphene://{base_url}/segmentation/table/{dataset.name}"
        segmentation.update(copy.deepcopy(layer_templates()["graphene"]))
    if state["layers"]:
        state["selectedLayer"] = {"layer": state["layers"][-1]["name"], "visible": False}
    state["title"] = f"{dataset.name} — axonlink"
    return state
