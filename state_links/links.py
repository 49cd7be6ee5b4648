"""Links that stay right after proofreading: anchors, "as it was" / "as it is now", exact-voxel states.

A root id names one version of a neuron; an edit retires it. So when a state is
stored, each selected segment of a segmentation layer this server serves is
anchored to one of its supervoxels (which never change). Opening the state
"as it was" pins those layers to the moment it was stored; "as it is now"
replaces each anchored root by the root holding its anchor supervoxel today.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from frontend_config import default_state, pin_synapses
from segmentation.datasets import Dataset, DatasetNotFound, Datasets
from segmentation.errors import Invalid
from segmentation.graph import Graph, GraphError
from segmentation.graph.points import (
    OnBackground,
    PointOutsideVolume,
    inside_volume,
    supervoxel_at_voxel,
    voxel_of_supervoxel,
)
from segmentation.graph.registry import Graphs

from .sources import DATASET, IsOurs, first_target, layers, references, source_urls
from .store import Anchor

MODES = ("was", "now")
DEFAULT_MODE = "was"  # a link shows what its sender saw unless asked for today's version
MAX_VOXEL_SEARCHES = 50  # anchors beyond this keep their supervoxel only (one small read each)
_GRAPHENE_TOOLS = ("grapheneMergeSegments", "grapheneMulticutSegments")
_MAX_ID = 2**64


class LinkError(Invalid):
    """A link that cannot be made (a voxel outside the volume, on background …): a 4xx."""


@dataclass(frozen=True)
class OurSource:
    """A layer source that points at this server's live segmentation of ``dataset``."""

    index: int  # position in the layer's source list
    url: str
    dataset: str
    at: str | None  # "@<moment>" part, if the sender pinned one
    graphene: bool = False  # a graphene:// source (always "now": the stock client sends no timestamp)
    layer: str | None = None  # /data/<dataset>/<layer>


def our_sources(layer: dict, is_ours: IsOurs) -> list[OurSource]:
    """The layer's sources that show a dataset's live segmentation here (``@supervoxels`` does not)."""
    found = []
    for i, url in source_urls(layer):
        target = first_target(url, is_ours)
        if target is None or target.kind != DATASET:
            continue
        if target.route == "data" and target.view != "supervoxels":
            found.append(OurSource(i, url, target.name, target.view, layer=target.layer))
        elif target.route == "graphene":
            found.append(OurSource(i, url, target.name, None, graphene=True))
    return found


def layer_dataset(layer: dict, is_ours: IsOurs) -> str | None:
    """The one dataset of ours the layer's own sources name; None when they name none, or several
    (then no graph can be said to be the layer's, and the layer is not anchored)."""
    named = references(layer.get("source"), is_ours).datasets
    return named[0] if len(named) == 1 else None


def graphene_source(base_url: str, dataset: str) -> str:
    """The graphene:// source of a dataset's graph on this server (what the viewer proofreads with)."""
    return f"graphene://{base_url}/segmentation/table/{dataset}"


def pinned_source(base_url: str, dataset: str, moment: str, layer: str = "segmentation") -> str:
    """The dataset's segmentation as root ids of a past moment (graphene cannot time travel)."""
    return f"precomputed://{base_url}/data/{dataset}@{moment}/{layer}"


def _segments(layer: dict) -> list[tuple[str, int]]:
    """(prefix, id) of each listed segment; Neuroglancer writes hidden ones as ``"!123"``."""
    listed = layer.get("segments")
    out = []
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            continue
        text = str(item)
        prefix = "!" if text.startswith("!") else ""
        digits = text[len(prefix) :]
        if digits.isascii() and digits.isdigit() and 0 < len(digits) <= 20 and 0 < int(digits) < _MAX_ID:
            out.append((prefix, int(digits)))
    return out


def _position_voxel(state: dict, dataset: Dataset) -> np.ndarray | None:
    """The state's ``position`` in voxels of the dataset (dimensions may be in other units)."""
    position, dims = state.get("position"), state.get("dimensions") or {}
    if not isinstance(position, list) or len(position) < 3:
        return None
    try:
        scale = [
            float(dims[axis][0]) / (r * 1e-9) if axis in dims else 1.0
            for axis, r in zip("xyz", dataset.voxel_resolution)
        ]
        return np.floor(np.asarray(position[:3], dtype=float) * scale).astype(int)
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def find_anchors(
    state: dict, is_ours: IsOurs, graphs: Graphs, datasets: Datasets | None = None, allowed=None
) -> list[Anchor]:
    """Anchors of every selected root in this server's segmentation layers.

    Each layer is anchored in the graph of the one dataset its own sources name, and each anchor
    remembers its layer by position and name: "as it is now" resolves it for that layer only.
    ``allowed``: datasets the caller was checked for; no other graph is read.
    """
    datasets = datasets or Datasets(graphs.database_url)
    anchors: list[Anchor] = []
    for index, name, layer in layers(state):
        if layer.get("type") != "segmentation" or not our_sources(layer, is_ours):
            continue
        dataset_name = layer_dataset(layer, is_ours)
        if dataset_name is None or (allowed is not None and dataset_name not in allowed):
            continue
        graph = graphs.find(dataset_name)
        if graph is None:
            continue
        try:
            dataset = datasets.get(dataset_name)
        except DatasetNotFound:
            continue
        anchors += _layer_anchors(state, index, name, layer, dataset, graph, len(anchors))
    return anchors


def _layer_anchors(state, index, name, layer, dataset, graph, already: int) -> list[Anchor]:
    seg_url = dataset.segmentation_layer().url
    at_position = _supervoxel_at(dataset, _position_voxel(state, dataset))
    anchors = []
    with graph.caught_up():  # one catch-up with the log for all the layer's segments
        try:
            under_view = (at_position, graph.root(at_position[0])) if at_position else None
        except GraphError:
            under_view = None
        for root in dict.fromkeys(root for _, root in _segments(layer)):  # "123" and "!123" are one segment
            anchor = _anchor(
                graph, root, under_view, seg_url, already + len(anchors) < MAX_VOXEL_SEARCHES, name, index, dataset.name
            )
            if anchor is not None:
                anchors.append(anchor)
    return anchors


def _anchor(graph, root, under_view, seg_url, search_voxel: bool, name, index, dataset) -> Anchor | None:
    """The anchor of one selected root: the supervoxel under the view's position if it is on it, else its largest.

    ``under_view``: ((supervoxel, voxel) at the view's position, its root) or None."""
    try:
        if under_view and under_view[1] == root:
            sv, voxel = under_view[0]
        else:
            sv, box = graph.representative(root)
            voxel = voxel_of_supervoxel(seg_url, sv, box) if box and search_voxel else None
    except GraphError:
        return None  # not a root of this graph (a supervoxel id, or another volume's)
    return Anchor(name[:256], root, dataset, sv, voxel, index)


def _supervoxel_at(dataset: Dataset, voxel) -> tuple[int, tuple[int, int, int]] | None:
    """(supervoxel, voxel) at a voxel of the view, or None off the volume or on background."""
    if voxel is None:
        return None
    try:
        return supervoxel_at_voxel(dataset, voxel), tuple(int(v) for v in voxel)
    except (PointOutsideVolume, OnBackground):
        return None


def as_was(state: dict, created_at: datetime, base_url: str, is_ours: IsOurs) -> dict:
    """The state with this server's segmentation sources pinned to ``created_at`` (unless already pinned)."""
    state = copy.deepcopy(state)
    moment = f"{created_at.timestamp():.6f}"
    for _, _, layer in _segmentation_layers(state):
        for source in our_sources(layer, is_ours):
            if source.graphene:  # the viewer cannot ask a graphene source for the past: pin a precomputed one
                _set_source(layer, source.index, pinned_source(base_url, source.dataset, moment), whole=True)
                _drop_graphene_tools(layer)
            elif source.at is None:
                plain, pinned = f"/data/{source.dataset}/", f"/data/{source.dataset}@{moment}/"
                url = (
                    source.url.replace(plain, pinned, 1)
                    if plain in source.url
                    else pinned_source(base_url, source.dataset, moment, source.layer or "segmentation")
                )
                _set_source(layer, source.index, url)
    return state


def _drop_graphene_tools(layer: dict) -> None:
    bindings = layer.get("toolBindings")
    if isinstance(bindings, dict):
        layer["toolBindings"] = {k: v for k, v in bindings.items() if v not in _GRAPHENE_TOOLS}
        if not layer["toolBindings"]:
            del layer["toolBindings"]


def as_now(state: dict, anchors: list[Anchor], graphs: Graphs, is_ours: IsOurs) -> dict:
    """The state with each anchored root replaced by the root that holds its anchor today, sources unpinned.

    An anchor is used only for the layer it came from (position and name; anchors stored before
    positions were kept: name) and only when that layer's own dataset is the anchor's — a second
    layer of the same name showing another dataset is left as stored.
    """
    state = copy.deepcopy(state)
    by_layer: dict[tuple[int, str], dict[int, Anchor]] = {}
    for anchor in anchors:
        by_layer.setdefault(anchor.layer_key, {})[anchor.segment_id] = anchor
    for index, name, layer in _segmentation_layers(state):
        for source in our_sources(layer, is_ours):
            if source.at is not None:
                _set_source(layer, source.index, source.url.replace(f"@{source.at}/", "/", 1))
        dataset = layer_dataset(layer, is_ours)
        mine = {
            root: anchor
            for key in ((-1, name[:256]), (index, name[:256]))
            for root, anchor in by_layer.get(key, {}).items()
            if anchor.dataset == dataset
        }
        graph = graphs.find(dataset) if mine else None
        if graph is not None:
            _replace_segments(layer, mine, graph)
    return state


def _replace_segments(layer: dict, anchors: dict[int, Anchor], graph: Graph) -> None:
    now = {}
    with graph.caught_up():
        for root, anchor in anchors.items():
            try:
                now[root] = int(graph.root(anchor.sv_id))
            except GraphError:
                continue
    segments, seen = [], set()
    for prefix, root in _segments(layer):
        new = now.get(root, root)
        if new not in seen:
            seen.add(new)
            segments.append(f"{prefix}{new}")
    layer["segments"] = segments
    colors = layer.get("segmentColors")
    if isinstance(colors, dict):
        layer["segmentColors"] = {
            str(now.get(int(k), int(k))) if k.isascii() and k.isdigit() else k: v for k, v in colors.items()
        }


def _segmentation_layers(state: dict) -> list[tuple[int, str, dict]]:
    return [(i, name, layer) for i, name, layer in layers(state) if layer.get("type") == "segmentation"]


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


def changed_since(anchors: list[Anchor], graphs: Graphs) -> bool:
    """Whether any anchored neuron has been edited since (its anchor's root, in its own dataset's graph, differs)."""
    by_dataset: dict[str, list[Anchor]] = {}
    for anchor in anchors:
        by_dataset.setdefault(anchor.dataset, []).append(anchor)
    for dataset, mine in by_dataset.items():
        graph = graphs.find(dataset)
        if graph is None:
            continue
        with graph.caught_up():
            for anchor in mine:
                try:
                    if int(graph.root(anchor.sv_id)) != anchor.segment_id:
                        return True
                except GraphError:
                    continue
    return False


def voxel_state(
    dataset: Dataset,
    voxel,
    base_url: str,
    graphs: Graphs,
    at: datetime | None = None,
    zoom: float | None = None,
    synapses: bool = False,
) -> tuple[dict, Anchor | None]:
    """A state centred on ``voxel`` (full-resolution voxels) with the neuron there selected, and its anchor.

    An image-only dataset has no neuron to select: its state is the image centred on the voxel, with
    no anchor (an image is the same at every moment, so ``at`` changes nothing)."""
    if not dataset.has_segmentation:
        try:
            voxel = inside_volume(dataset, voxel)
        except PointOutsideVolume as error:
            raise LinkError(str(error)) from None
        return _centred(default_state(dataset, base_url), dataset, voxel, zoom), None
    graph = graphs.find(dataset.name)
    if graph is None:
        raise LinkError(f"dataset {dataset.name!r} has no graph: run `axonlink ingest-graph {dataset.name}`")
    try:
        sv = supervoxel_at_voxel(dataset, voxel)
    except (PointOutsideVolume, OnBackground) as error:
        raise LinkError(str(error)) from None
    voxel = np.asarray(voxel, dtype=np.int64)
    root = int(graph.root(sv, at))
    state = _centred(default_state(dataset, base_url, graphene=True, synapses=synapses), dataset, voxel, zoom)
    index, segmentation = next((i, layer) for i, layer in enumerate(state["layers"]) if layer["type"] == "segmentation")
    segmentation["segments"] = [str(root)]
    segmentation["selectedAlpha"] = max(segmentation.get("selectedAlpha", 0.5), 0.5)
    if at is not None:
        segmentation["source"] = pinned_source(base_url, dataset.name, f"{at.timestamp():.6f}")
        _drop_graphene_tools(segmentation)
        if synapses:  # the synapses in force then, of the neuron as it was
            pin_synapses(state, base_url, dataset.name, f"{at.timestamp():.6f}")
    return state, Anchor(segmentation["name"], root, dataset.name, sv, tuple(int(v) for v in voxel), index)


def _centred(state: dict, dataset: Dataset, voxel: np.ndarray, zoom: float | None) -> dict:
    state["position"] = [float(v) + 0.5 for v in voxel]
    if zoom is not None:
        state["crossSectionScale"] = float(zoom)
    state["title"] = f"{dataset.name} {voxel.tolist()} — axonlink"
    return state
