"""Links that stay right after proofreading: anchors, "as it was" / "as it is now", exact-voxel states.

A root id names one version of a neuron; an edit retires it. So when a state is
stored, each selected segment of a segmentation layer this server serves is
anchored to one of its supervoxels (which never change). Opening the state
"as it was" pins those layers to the moment it was stored; "as it is now"
replaces each anchored root by the root holding its anchor supervoxel today.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from frontend_config import default_state
from segmentation.datasets import Dataset, Datasets, DatasetNotFound
from segmentation.graph import Graph, GraphError
from segmentation.graph.points import (
    OnBackground, PointOutsideVolume, supervoxel_at_voxel, voxel_of_supervoxel,
)

from .store import Anchor

MODES = ("was", "now")
DEFAULT_MODE = "was"  # a link shows what its sender saw unless asked for today's version
MAX_VOXEL_SEARCHES = 50  # anchors beyond this keep their supervoxel only (one small read each)

_PRECOMPUTED = re.compile(
    r"^precomputed://(?P<base>https?://[^/]+)/data/(?P<name>[^/@]+)(?:@(?P<at>[^/]+))?/(?P<layer>[^/?#]+)/?$"
)
_GRAPHENE = re.compile(r"^graphene://(?P<base>https?://[^/]+)/segmentation/table/(?P<name>[^/?#]+)/?$")
_GRAPHENE_TOOLS = ("grapheneMergeSegments", "grapheneMulticutSegments")
_LOOPBACK = re.compile(r"^(https?://)(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$")


class LinkError(ValueError):
    """A link that cannot be made (a voxel outside the volume, on background …): a 4xx."""


@dataclass(frozen=True)
class OurSource:
    """A layer source that points at this server's live segmentation of ``dataset``."""

    index: int  # position in the layer's source list
    url: str
    dataset: str
    at: str | None  # "@<moment>" part, if the sender pinned one
    graphene: bool = False  # a graphene:// source (always "now": the stock client sends no timestamp)


def _same_server(base: str, ours: str) -> bool:
    if base.rstrip("/") == ours.rstrip("/"):
        return True
    a, b = _LOOPBACK.match(base), _LOOPBACK.match(ours.rstrip("/"))
    return bool(a and b and a.group(1) == b.group(1) and a.group(3) == b.group(3))


def _source_urls(layer: dict) -> list[str]:
    source = layer.get("source")
    items = source if isinstance(source, list) else [source]
    return [item.get("url") if isinstance(item, dict) else item for item in items]


def our_sources(layer: dict, base_url: str) -> list[OurSource]:
    found = []
    for i, url in enumerate(_source_urls(layer)):
        match = _PRECOMPUTED.match(url) if isinstance(url, str) else None
        if match and _same_server(match["base"], base_url) and match["at"] != "supervoxels":
            found.append(OurSource(i, url, match["name"], match["at"]))
        match = _GRAPHENE.match(url) if isinstance(url, str) else None
        if match and _same_server(match["base"], base_url):
            found.append(OurSource(i, url, match["name"], None, graphene=True))
    return found


def graphene_source(base_url: str, dataset: str) -> str:
    """The graphene:// source of a dataset's graph on this server (what the viewer proofreads with)."""
    return f"graphene://{base_url}/segmentation/table/{dataset}"


def pinned_source(base_url: str, dataset: str, moment: str) -> str:
    """The dataset's segmentation as root ids of a past moment (graphene cannot time travel)."""
    return f"precomputed://{base_url}/data/{dataset}@{moment}/segmentation"


def _segments(layer: dict) -> list[tuple[str, int]]:
    """(prefix, id) of each listed segment; Neuroglancer writes hidden ones as ``"!123"``."""
    out = []
    for item in layer.get("segments") or []:
        text = str(item)
        prefix = "!" if text.startswith("!") else ""
        try:
            out.append((prefix, int(text[len(prefix):])))
        except ValueError:
            continue
    return out


def _position_voxel(state: dict, dataset: Dataset) -> np.ndarray | None:
    """The state's ``position`` in voxels of the dataset (dimensions may be in other units)."""
    position, dims = state.get("position"), state.get("dimensions") or {}
    if not isinstance(position, list) or len(position) < 3:
        return None
    try:
        scale = [float(dims[axis][0]) / (r * 1e-9) if axis in dims else 1.0
                 for axis, r in zip("xyz", dataset.voxel_resolution)]
        return np.floor(np.asarray(position[:3], dtype=float) * scale).astype(int)
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def find_anchors(state: dict, base_url: str, database_url: str,
                 datasets: Datasets | None = None) -> tuple[list[Anchor], str | None]:
    """Anchors of every selected root in this server's segmentation layers, and the first dataset seen."""
    datasets = datasets or Datasets(database_url)
    anchors: list[Anchor] = []
    first_dataset = None
    for layer in state.get("layers") or []:
        if not isinstance(layer, dict) or layer.get("type") != "segmentation":
            continue
        for source in our_sources(layer, base_url):
            first_dataset = first_dataset or source.dataset
            graph = Graph.find(database_url, source.dataset)
            if graph is None:
                continue
            try:
                dataset = datasets.get(source.dataset)
            except DatasetNotFound:
                continue
            anchors += _layer_anchors(state, layer, source, dataset, graph, len(anchors))
    return anchors, first_dataset


def _layer_anchors(state, layer, source, dataset, graph, already: int) -> list[Anchor]:
    seg_url = dataset.layer("segmentation").url
    at_position = _supervoxel_at(dataset, _position_voxel(state, dataset))
    anchors = []
    for _, root in _segments(layer):
        try:
            if at_position and graph.root(at_position[0]) == root:
                sv, voxel = at_position
            else:
                sv, box = graph.representative(root)
                searches_left = already + len(anchors) < MAX_VOXEL_SEARCHES
                voxel = voxel_of_supervoxel(seg_url, sv, box) if box and searches_left else None
        except GraphError:
            continue  # not a root of this graph (a supervoxel id, or another volume's)
        anchors.append(Anchor(str(layer.get("name", "")), root, source.dataset, sv, voxel))
    return anchors


def _supervoxel_at(dataset: Dataset, voxel) -> tuple[int, tuple[int, int, int]] | None:
    """(supervoxel, voxel) at a voxel of the view, or None off the volume or on background."""
    if voxel is None:
        return None
    try:
        return supervoxel_at_voxel(dataset, voxel), tuple(int(v) for v in voxel)
    except (PointOutsideVolume, OnBackground):
        return None


def as_was(state: dict, created_at: datetime, base_url: str) -> dict:
    """The state with this server's segmentation sources pinned to ``created_at`` (unless already pinned)."""
    state = copy.deepcopy(state)
    moment = f"{created_at.timestamp():.6f}"
    for layer in _segmentation_layers(state):
        for source in our_sources(layer, base_url):
            if source.graphene:  # the viewer cannot ask a graphene source for the past: pin a precomputed one
                _set_source(layer, source.index, pinned_source(base_url, source.dataset, moment), whole=True)
                _drop_graphene_tools(layer)
            elif source.at is None:
                _set_source(layer, source.index, source.url.replace(
                    f"/data/{source.dataset}/", f"/data/{source.dataset}@{moment}/", 1))
    return state


def _drop_graphene_tools(layer: dict) -> None:
    bindings = layer.get("toolBindings")
    if isinstance(bindings, dict):
        layer["toolBindings"] = {k: v for k, v in bindings.items() if v not in _GRAPHENE_TOOLS}
        if not layer["toolBindings"]:
            del layer["toolBindings"]


def as_now(state: dict, anchors: list[Anchor], base_url: str, database_url: str) -> dict:
    """The state with each anchored root replaced by the root that holds its anchor today, sources unpinned."""
    state = copy.deepcopy(state)
    by_layer: dict[str, dict[int, Anchor]] = {}
    for anchor in anchors:
        by_layer.setdefault(anchor.layer, {})[anchor.segment_id] = anchor
    for layer in _segmentation_layers(state):
        sources = our_sources(layer, base_url)
        for source in sources:
            if source.at is not None:
                _set_source(layer, source.index, source.url.replace(f"@{source.at}/", "/", 1))
        layer_anchors = by_layer.get(str(layer.get("name", "")), {})
        if not sources or not layer_anchors:
            continue
        graph = Graph.find(database_url, sources[0].dataset)
        if graph is None:
            continue
        _replace_segments(layer, layer_anchors, graph)
    return state


def _replace_segments(layer: dict, anchors: dict[int, Anchor], graph: Graph) -> None:
    now = {root: int(graph.root(a.sv_id)) for root, a in anchors.items()}
    segments, seen = [], set()
    for prefix, root in _segments(layer):
        new = now.get(root, root)
        if new not in seen:
            seen.add(new)
            segments.append(f"{prefix}{new}")
    layer["segments"] = segments
    colors = layer.get("segmentColors")
    if isinstance(colors, dict):
        layer["segmentColors"] = {str(now.get(int(k), int(k))) if k.isdigit() else k: v for k, v in colors.items()}


def _segmentation_layers(state: dict):
    return [layer for layer in state.get("layers") or []
            if isinstance(layer, dict) and layer.get("type") == "segmentation"]


def _set_source(layer: dict, index: int, url: str, whole: bool = False) -> None:
    """Point a layer's ``index``-th source at ``url``; ``whole`` drops the source's other settings too."""
    source = layer.get("source")
    if isinstance(source, list):
        item = source[index]
        if isinstance(item, dict) and not whole:
            item["url"] = url
        else:
            source[index] = url
    elif isinstance(source, dict) and not whole:
        source["url"] = url
    else:
        layer["source"] = url


def changed_since(anchors: list[Anchor], database_url: str) -> bool:
    """Whether any anchored neuron has been edited since (its anchor's root differs)."""
    for anchor in anchors:
        graph = Graph.find(database_url, anchor.dataset)
        if graph is not None and int(graph.root(anchor.sv_id)) != anchor.segment_id:
            return True
    return False


def voxel_state(dataset: Dataset, voxel, base_url: str, database_url: str, at: datetime | None = None,
                zoom: float | None = None) -> tuple[dict, Anchor]:
    """A state centred on ``voxel`` (full-resolution voxels) with the neuron there selected, and its anchor."""
    graph = Graph.find(database_url, dataset.name)
    if graph is None:
        raise LinkError(f"dataset {dataset.name!r} has no graph: run `axonlink ingest-graph {dataset.name}`")
    try:
        sv = supervoxel_at_voxel(dataset, voxel)
    except (PointOutsideVolume, OnBackground) as error:
        raise LinkError(str(error)) from None
    voxel = np.asarray(voxel, dtype=np.int64)
    root = int(graph.root(sv, at))
    state = default_state(dataset, base_url, graphene=True)
    state["position"] = [float(v) + 0.5 for v in voxel]
    if zoom is not None:
        state["crossSectionScale"] = float(zoom)
    segmentation = next(layer for layer in state["layers"] if layer["type"] == "segmentation")
    segmentation["segments"] = [str(root)]
    segmentation["selectedAlpha"] = max(segmentation.get("selectedAlpha", 0.5), 0.5)
    if at is not None:
        segmentation["source"] = pinned_source(base_url, dataset.name, f"{at.timestamp():.6f}")
        _drop_graphene_tools(segmentation)
    state["title"] = f"{dataset.name} {voxel.tolist()} — axonlink"
    return state, Anchor(segmentation["name"], root, dataset.name, sv, tuple(int(v) for v in voxel))
