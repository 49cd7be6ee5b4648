"""What will and will not work with a segmentation, from its info and a few chunks, in seconds.

:func:`check_layer` reads a layer's ``info`` and a bounded sample of mip-0 chunks (at most
``max_chunks``, stopping at ``time_limit`` seconds) and returns :class:`Finding` s, one per
topic, each ``ok``, ``warning`` or ``problem`` with a one-line reason. :func:`check_dataset`
adds what only a registered dataset has: whether its layers agree with the segmentation and
whether it already has a graph. ``axonlink check`` prints them; ``ingest-graph`` runs the same
check first and stops at a problem, before the region graph reads any chunk.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from .chunk_grid import ChunkGrid
from .graph.ids import LAYER_SHIFT, SUPERVOXEL_LAYER
from .storage import CorruptStoredData, open_layer_store

OK, WARNING, PROBLEM = "ok", "warning", "problem"
LABEL_TYPES = ("uint8", "uint16", "uint32", "uint64")
SERVED_LIVE = ("raw", "compressed_segmentation")  # what the graph can relabel on the fly
SHARDING_TYPE = "neuroglancer_uint64_sharded_v1"
MIN_RESOLUTION_NM, MAX_RESOLUTION_NM = 0.1, 100_000.0
MAX_SAMPLE_CHUNKS = 16
SAMPLE_SECONDS = 20.0
SHOWN = 5


@dataclass(frozen=True)
class Finding:
    level: str  # ok, warning or problem
    topic: str
    reason: str

    def line(self) -> str:
        return f"{self.level:8} {self.topic}: {self.reason}"


def has_problem(findings) -> bool:
    return any(f.level == PROBLEM for f in findings)


def as_json(target: str, findings) -> str:
    return json.dumps(
        {
            "target": target,
            "ok": not has_problem(findings),
            "problems": sum(f.level == PROBLEM for f in findings),
            "warnings": sum(f.level == WARNING for f in findings),
            "findings": [asdict(f) for f in findings],
        },
        indent=2,
    )


def _info(url: str) -> dict:
    from .datasets import read_info

    return read_info(url)


def check_layer(
    url: str, *, max_chunks: int = MAX_SAMPLE_CHUNKS, time_limit: float = SAMPLE_SECONDS, sample: bool = True
) -> list[Finding]:
    """Findings about the segmentation layer at ``url`` (its info, then a sample of mip-0 chunks)."""
    from .datasets import DatasetError

    try:
        info = _info(url)
    except DatasetError as error:
        return [Finding(PROBLEM, "info", str(error))]
    findings: list[Finding] = []
    add = findings.append
    layer_type = info.get("type")
    if layer_type not in (None, "segmentation"):
        add(Finding(PROBLEM, "type", f"an {layer_type} layer, not a segmentation"))
    data_type = str(info.get("data_type"))
    if data_type in LABEL_TYPES:
        add(Finding(OK, "data type", f"{data_type} labels"))
    else:
        add(Finding(PROBLEM, "data type", f"{data_type} is not a label type (uint8, uint16, uint32 or uint64)"))
    if int(info.get("num_channels", 1)) != 1:
        add(Finding(PROBLEM, "channels", f"{info.get('num_channels')} channels; a segmentation has one"))
    scales = info.get("scales") or []
    findings += _scale_findings(scales)
    if (
        sample
        and scales
        and data_type in LABEL_TYPES
        and not any(f.topic == "grid" and f.level == PROBLEM for f in findings)
    ):
        labels, sampled = _sample_labels(url, info, max_chunks, time_limit, findings)
        findings += _label_findings(labels, sampled)
        findings.append(_mesh_finding(url, info, labels))
    else:
        findings.append(_mesh_finding(url, info, {}))
    return findings


def _scale_findings(scales: list[dict]) -> list[Finding]:
    found: list[Finding] = []
    encodings, sharded, unusable = [], [], []
    base = scales[0]
    for mip, scale in enumerate(scales):
        key = scale.get("key", f"scale {mip}")
        encoding = scale.get("encoding")
        encodings.append(f"{key}: {encoding}")
        if encoding not in SERVED_LIVE:
            unusable.append(f"{key} ({encoding})")
        sharding = scale.get("sharding")
        if sharding:
            if sharding.get("@type") != SHARDING_TYPE:
                found.append(Finding(PROBLEM, "sharding", f"{key} uses {sharding.get('@type')!r}, not {SHARDING_TYPE}"))
            else:
                sharded.append(key)
        try:
            ChunkGrid.from_scale(scale)
        except CorruptStoredData as error:
            found.append(Finding(PROBLEM, "grid", error.reason))
            continue
        res = np.array(scale.get("resolution", [0, 0, 0]), dtype=float)
        if mip == 0:
            if (res <= 0).any() or not np.isfinite(res).all():
                found.append(Finding(PROBLEM, "voxel size", f"resolution {res.tolist()} is not positive"))
            elif (res < MIN_RESOLUTION_NM).any() or (res > MAX_RESOLUTION_NM).any():
                found.append(
                    Finding(
                        WARNING,
                        "voxel size",
                        f"resolution {res.tolist()} nm is outside "
                        f"{MIN_RESOLUTION_NM} nm .. {MAX_RESOLUTION_NM / 1000:g} µm: is the unit nm?",
                    )
                )
            else:
                found.append(Finding(OK, "voxel size", f"{' x '.join(f'{r:g}' for r in res)} nm"))
        elif (res > 0).all():
            lo0, hi0 = _bounds_nm(base)
            lo, hi = _bounds_nm(scale)
            if (np.abs(lo - lo0) > res).any() or (np.abs(hi - hi0) > res).any():
                found.append(
                    Finding(
                        WARNING,
                        "grid",
                        f"{key} covers {lo.tolist()}..{hi.tolist()} nm, mip 0 covers {lo0.tolist()}..{hi0.tolist()} nm",
                    )
                )
    if not any(f.topic == "grid" for f in found):
        found.append(Finding(OK, "grid", f"{len(scales)} scale(s); voxel offsets, sizes and chunk sizes agree"))
    if unusable:
        found.append(
            Finding(
                PROBLEM,
                "encoding",
                f"{', '.join(unusable)} cannot be served live through the "
                f"graph (only {' and '.join(SERVED_LIVE)} can): re-encode the scale",
            )
        )
    else:
        found.append(Finding(OK, "encoding", "; ".join(encodings) + " (served live through the graph)"))
    found.append(Finding(OK, "sharding", f"sharded: {', '.join(sharded)}" if sharded else "unsharded"))
    return found


def _bounds_nm(scale: dict) -> tuple[np.ndarray, np.ndarray]:
    res = np.array(scale["resolution"], dtype=float)
    lo = np.array(scale.get("voxel_offset", [0, 0, 0]), dtype=float)
    return lo * res, (lo + np.array(scale["size"], dtype=float)) * res


def sample_gridpoints(grid: ChunkGrid, max_chunks: int) -> list[tuple[int, int, int]]:
    """Up to ``max_chunks`` chunks spread over the grid (the first, the last and evenly between)."""
    shape = grid.shape
    total = shape[0] * shape[1] * shape[2]
    picks = np.unique(np.linspace(0, total - 1, num=min(max_chunks, total)).round().astype(np.int64))
    return [tuple(int(v) for v in np.unravel_index(int(i), shape)) for i in picks]


def _sample_labels(url, info, max_chunks, time_limit, findings) -> tuple[dict[int, str], int]:
    """{label: the chunk it was first seen in} over a sample of mip-0 chunks; read ones counted."""
    from cloudvolume import CloudVolume

    scale = info["scales"][0]
    grid = ChunkGrid.from_scale(scale)
    started = time.monotonic()
    labels: dict[int, str] = {}
    read, missing, failed = 0, 0, []
    try:
        volume = CloudVolume(url, mip=0, progress=False, fill_missing=False, info=info)
    except Exception as error:  # noqa: BLE001 - any reader failure is reported, not raised
        findings.append(Finding(PROBLEM, "chunks", f"CloudVolume cannot open the layer: {error}"))
        return labels, 0
    points = sample_gridpoints(grid, max_chunks)
    for point in points:
        if time.monotonic() - started > time_limit:
            findings.append(
                Finding(
                    WARNING, "chunks", f"stopped sampling after {time_limit:g} s ({read} of {len(points)} chunks read)"
                )
            )
            break
        lo = [o + p * c for o, p, c in zip(grid.offset, point, grid.chunk)]
        hi = [min(l + c, o + s) for l, c, o, s in zip(lo, grid.chunk, grid.offset, grid.size)]
        name = f"{lo[0]}-{hi[0]}_{lo[1]}-{hi[1]}_{lo[2]}-{hi[2]}"
        try:
            block = np.asarray(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
        except Exception as error:  # noqa: BLE001
            if type(error).__name__ == "EmptyVolumeException":
                missing += 1
            else:
                failed.append(f"{name} ({type(error).__name__}: {str(error)[:120]})")
            continue
        read += 1
        for value in np.unique(block).tolist():
            if value and value not in labels:
                labels[int(value)] = name
    if failed:
        findings.append(
            Finding(PROBLEM, "chunks", f"{len(failed)} sampled chunk(s) cannot be read: " + "; ".join(failed[:3]))
        )
    elif read:
        findings.append(
            Finding(
                OK,
                "chunks",
                f"read {read} of {grid.shape[0] * grid.shape[1] * grid.shape[2]} "
                f"mip-0 chunks in {time.monotonic() - started:.1f} s"
                + (f"; {missing} sampled chunk(s) missing (empty)" if missing else ""),
            )
        )
    elif missing:
        findings.append(Finding(WARNING, "chunks", f"none of the {missing} sampled chunk(s) exists (empty volume?)"))
    return labels, read


def _label_findings(labels: dict[int, str], sampled: int) -> list[Finding]:
    if not sampled:
        return []
    if not labels:
        return [Finding(WARNING, "labels", "the sampled chunks hold only background (0)")]
    values = np.array(sorted(labels), dtype=np.uint64)
    layers = values >> np.uint64(LAYER_SHIFT)
    found = []
    bad = values[(layers != 0) & (layers != SUPERVOXEL_LAYER)]
    if len(bad):
        found.append(
            Finding(
                PROBLEM,
                "labels",
                "label(s) of 2**56 or more that are not layer-1 ids, which the id "
                "layout cannot hold: " + ", ".join(f"{int(v)} (in {labels[int(v)]})" for v in bad[:SHOWN]),
            )
        )
    plain, layered = values[layers == 0], values[layers == SUPERVOXEL_LAYER]
    if len(plain) and len(layered):
        found.append(
            Finding(
                PROBLEM,
                "labels",
                f"plain ids ({', '.join(str(int(v)) for v in plain[:3])}) and "
                f"layered layer-1 ids ({', '.join(str(int(v)) for v in layered[:3])}) are mixed; "
                "a volume must use one or the other",
            )
        )
    if not found:
        kind = "layer-1 supervoxel ids" if len(layered) else "plain ids"
        found.append(
            Finding(
                OK,
                "labels",
                f"{len(values)} label(s) in the sample, {kind}, largest "
                f"{int(values[-1]) & ((1 << LAYER_SHIFT) - 1)} (< 2**56)",
            )
        )
    return found


def _mesh_finding(url: str, info: dict, labels: dict[int, str]) -> Finding:
    mesh = info.get("mesh")
    if not mesh:
        return Finding(WARNING, "meshes", "no 'mesh' in the info: neurons will have no 3D view")
    store = open_layer_store(url)
    try:
        mesh_info = store.get(f"{mesh}/info")
        mesh_info = json.loads(mesh_info.decoded()) if mesh_info is not None else {}
    except (ValueError, CorruptStoredData):
        return Finding(WARNING, "meshes", f"{mesh}/info cannot be read")
    if mesh_info.get("sharding"):
        return Finding(OK, "meshes", f"sharded meshes at {mesh!r} (manifests not sampled)")
    if not labels:
        return Finding(OK, "meshes", f"meshes at {mesh!r} (no label sampled to look for)")
    probe = sorted(labels)[:SHOWN]
    have = [label for label in probe if store.get(f"{mesh}/{label}:0") is not None]
    if probe and not have:
        return Finding(
            WARNING,
            "meshes",
            f"meshes at {mesh!r}, but none of the sampled labels ({', '.join(map(str, probe))}) has a manifest",
        )
    return Finding(OK, "meshes", f"meshes at {mesh!r}: {len(have)} of {len(probe)} sampled label(s) have one")


def check_dataset(database_url: str, name: str, verify_graph_base: bool = False, **sample) -> list[Finding]:
    """:func:`check_layer` of the dataset's segmentation, then its layers' agreement and its graph. An
    image-only dataset gets a warning that it has no segmentation, and its layers' agreement with its image.

    ``verify_graph_base`` (``axonlink check``) also reads the whole graph base against its checksums;
    ``ingest-graph`` leaves it out: a damaged base must not stop ``--replace``, which mends it."""
    from .datasets import DatasetError, Datasets
    from .graph.ingest import has_graph

    dataset = Datasets(database_url).get(name)
    if dataset.has_segmentation:
        reference = dataset.segmentation_layer()
        findings = check_layer(reference.url, **sample)
    else:  # image-only: its layers are checked against its image; there is nothing to ingest
        reference = dataset.first_layer("image") or dataset.layers[0]
        findings = [
            Finding(
                WARNING,
                "segmentation",
                f"dataset {name!r} has no segmentation layer: its image is served and viewed, but it has no "
                "neurons, graph, meshes or cell-type tags (import it with --segmentation to proofread)",
            )
        ]
    try:
        base = _info(reference.url)["scales"][0]
    except DatasetError as error:
        base = None
        if not dataset.has_segmentation:
            findings.append(Finding(PROBLEM, "layers", f"layer {reference.name!r}: {error}"))
    differ, what = [], "segmentation" if dataset.has_segmentation else "image"
    for layer in dataset.layers:
        if layer.name == reference.name or base is None:
            continue
        try:
            scale = _info(layer.url)["scales"][0]
        except DatasetError as error:
            findings.append(Finding(PROBLEM, "layers", f"layer {layer.name!r}: {error}"))
            continue
        lo0, hi0 = _bounds_nm(base)
        lo, hi = _bounds_nm(scale)
        tolerance = np.maximum(np.array(base["resolution"], float), np.array(scale["resolution"], float))
        reasons = []
        if (np.abs(lo - lo0) > tolerance).any() or (np.abs(hi - hi0) > tolerance).any():
            reasons.append(f"bounds {lo.tolist()}..{hi.tolist()} nm vs {lo0.tolist()}..{hi0.tolist()} nm")
        if [float(r) for r in scale["resolution"]] != [float(r) for r in base["resolution"]]:
            reasons.append(f"mip-0 resolution {scale['resolution']} vs {base['resolution']}")
        if reasons:
            level = PROBLEM if layer.supervoxels else WARNING
            differ.append(layer.name)
            findings.append(
                Finding(level, "layers", f"layer {layer.name!r} differs from the {what}: " + "; ".join(reasons))
            )
    if base is not None and not differ:
        findings.append(
            Finding(OK, "layers", f"all {len(dataset.layers)} layer(s) share the {what}'s mip-0 bounds and resolution")
        )
    if not dataset.has_segmentation:
        findings.append(Finding(OK, "graph", f"dataset {name!r} has no graph (no segmentation to build one from)"))
    elif has_graph(database_url, name):
        findings.append(Finding(OK, "graph", f"dataset {name!r} already has a graph (ingest-graph needs --replace)"))
        if verify_graph_base:
            findings.append(_graph_base_finding(database_url, name))
    else:
        findings.append(Finding(OK, "graph", f"dataset {name!r} has no graph yet (run ingest-graph)"))
    return findings


def _graph_base_finding(database_url: str, name: str) -> Finding:
    """Every file of the graph's base against its manifest's SHA-256 (a full read of the base)."""
    from .graph.base import BaseError
    from .graph.ingest import graph_base_url
    from .graph.store import open_base

    url = graph_base_url(database_url, name)
    if url is None:
        return Finding(
            WARNING, "graph", "the graph is still stored as rows; it gets a base when a server first opens it"
        )
    try:
        base = open_base(url)
        base.verify()
    except BaseError as error:
        return Finding(PROBLEM, "graph", str(error))
    return Finding(
        OK, "graph", f"graph base {url}: {base.supervoxel_count} supervoxels, every file's checksum verified"
    )
