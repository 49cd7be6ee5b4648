"""``axonlink import``: sources a lab has → precomputed layers with mips → a registered dataset with
its supervoxel graph and meshes. Each stage can be interrupted and run again.

Stages, in order: check the sources against each other (before anything is written); write each
layer's info; the pyramid passes of each layer on Dask (:mod:`.pyramid`, :mod:`.tasks`); register
the dataset; ingest the graph (with the agglomeration, if given); mesh. Finished work is known by
what it left: a marker per task under ``<destination>/.import/``, the dataset row, the graph, the
meshes' own resumable run. A second run with the same arguments continues where the first
stopped; with other arguments it is refused (the plan it would write differs).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume

from ..datasets import Datasets
from . import place as stored
from .cluster import dask_client, run_stage
from .pyramid import (
    CHUNK,
    MAX_TASK_VOXELS,
    ImportProblem,
    add_sharding,
    image_dtype,
    label_dtype,
    layer_info,
    mip_count,
    passes,
    sharded_passes,
    wants_shards,
)
from .sources import open_source
from .tasks import PyramidTask, run_task

PLAN_FILE = "plan.json"
PROGRESS_DIR = ".import"


@dataclass
class ImportRequest:
    name: str
    image: str
    segmentation: str | None = None
    agglomeration: str | None = None
    voxel_size: tuple[float, float, float] | None = None
    offset: tuple[int, int, int] | None = None
    axes: str | None = None
    dataset_path: str | None = None
    image_encoding: str = "auto"  # jpeg for 8-bit images, raw otherwise
    mesh: bool = True
    skeletons: bool = False  # kimimaro skeletons of every label, in the segmentation layer
    sharded: str = "auto"
    workers: int = 1
    scheduler: str | None = None
    destination: str | None = None  # default: <home>/volumes/<name>
    description: str = ""
    license: str = ""
    citation: str = ""
    public: bool = True
    chunk: tuple[int, int, int] = CHUNK
    background: int | None = None  # a label the segmentation uses for background (-1, 2**64-1 …): stored as 0


@dataclass
class _Layer:
    kind: str
    source: object  # VolumeSource
    dtype: np.dtype
    encoding: str
    info: dict
    url: str
    summary: dict = field(default_factory=dict)


def import_dataset(
    settings, request: ImportRequest, *, progress: bool = True, by: str = "cli", origin: str = ""
) -> dict:
    """Run (or continue) the import; returns the summary printed at the end."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    registry = Datasets(settings.database_url)
    destination = stored.Place(str(request.destination or settings.home / "volumes" / request.name))
    destination.check_reachable()
    layers = _plan_layers(request, destination)
    plan = _plan(request, layers)
    _claim(destination, plan, registry, request.name)
    timings["check"] = time.perf_counter() - started

    for layer in layers:
        if not stored.exists(destination.child(layer.kind, "info")):
            CloudVolume(layer.url, info=layer.info, progress=False).commit_info()
    processes: set[int] = set()
    with dask_client(request.workers, request.scheduler) as client:
        for layer in layers:
            _write_layer(client, layer, request, destination, plan["id"], timings, processes, progress)
        summary = _summary(request, destination, layers, processes)
        if request.skeletons:
            from .skeletons import skeletonize_layer

            stage_started = time.perf_counter()
            segmentation = next(layer for layer in layers if layer.kind == "segmentation")
            summary.update(skeletonize_layer(client, segmentation.url, destination.child(PROGRESS_DIR), progress))
            timings["skeletons"] = time.perf_counter() - stage_started
        stage_started = time.perf_counter()
        if not registry.exists(request.name):
            by_kind = {layer.kind: layer for layer in layers}
            registry.add(
                request.name,
                image=by_kind["image"].url,
                segmentation=by_kind["segmentation"].url if "segmentation" in by_kind else None,
                description=request.description,
                license=request.license,
                citation=request.citation,
                public=request.public,
            )
        timings["register"] = time.perf_counter() - stage_started
        if request.segmentation:  # an image-only dataset has no graph and nothing to mesh
            summary.update(
                _graph_and_meshes(settings, request, timings, client, progress=progress, by=by, origin=origin)
            )
    stored.put(destination.child(PROGRESS_DIR, "complete"), (json.dumps({"plan": plan["id"]}) + "\n").encode())
    timings["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    return summary


def _write_layer(
    client, layer: _Layer, request, destination: stored.Place, plan_id: str, timings, processes, progress
) -> None:
    """Every sweep of one layer's pyramid, its finished boxes (markers) skipped."""
    if "sharding" in layer.info["scales"][0]:
        sweeps = sharded_passes(layer.info)
    else:
        sweeps = passes(layer.info["scales"][0]["size"], request.chunk, len(layer.info["scales"]))
    for sweep in sweeps:
        label = f"{layer.kind} {sweep.label}"
        tasks, markers = _tasks(layer, sweep, destination, plan_id, request.background)
        finished = stored.names_in(markers)
        todo = [task for task in tasks if task.marker.rsplit("/", 1)[-1] not in finished]
        stage_started = time.perf_counter()
        results = run_stage(client, label, run_task, todo, sum(t.voxels for t in todo), progress=progress)
        timings[label] = time.perf_counter() - stage_started
        processes.update(r["process"] for r in results)
        layer.summary["voxels"] = layer.summary.get("voxels", 0) + sum(r["voxels"] for r in results)
        if layer.kind == "segmentation" and results:
            highest = max(r["highest_label"] for r in results)
            layer.summary["highest_label"] = max(layer.summary.get("highest_label", 0), highest)


def _summary(request, destination: stored.Place, layers: list[_Layer], processes: set[int]) -> dict:
    summary = {"dataset": request.name, "destination": str(destination), "layers": {}}
    summary["task_processes"] = sorted(processes)  # where this run's tasks ran (Dask worker processes)
    for layer in layers:
        summary["layers"][layer.kind] = {
            "url": layer.url,
            "size": layer.info["scales"][0]["size"],
            "data_type": layer.info["data_type"],
            "encoding": layer.info["scales"][0]["encoding"],
            "sharded": "sharding" in layer.info["scales"][0],
            "mips": len(layer.info["scales"]),
            "bytes_on_disk": destination.stored_bytes(layer.kind),  # None in an object store
            **layer.summary,  # voxels written by this run, the highest label seen
        }
    return summary


# ---- checks and the plan ----------------------------------------------------------------------


# what only a segmentation has: an image-only import refuses these, naming the fix
_NEED_SEGMENTATION = (
    ("agglomeration", "--agglomeration joins the segmentation's supervoxels"),
    ("skeletons", "--skeletons skeletonizes the segmentation's labels"),
    ("background", "--background names a label of the segmentation"),
)


def _plan_layers(request: ImportRequest, destination: stored.Place) -> list[_Layer]:
    if not request.segmentation:  # an image-only dataset: the image layer alone
        for flag, what in _NEED_SEGMENTATION:
            if getattr(request, flag) not in (None, False):
                raise ImportProblem(
                    f"{what}, and this import has none: give --segmentation SRC too, or leave out --{flag} "
                    "to import the image alone"
                )
    specs = (("image", request.image), ("segmentation", request.segmentation))
    sources = {
        kind: open_source(spec, dataset_path=request.dataset_path, axes=request.axes) for kind, spec in specs if spec
    }
    image, labels = sources["image"], sources.get("segmentation")
    if labels is not None and tuple(image.shape) != tuple(labels.shape):
        raise ImportProblem(
            f"the image is {_xyz(image.shape)} voxels and the segmentation {_xyz(labels.shape)}: they must cover "
            "the same voxels (check --axes, or crop one to the other)"
        )
    voxel_size = _voxel_size(request, *sources.values())
    offset = _offset(request, *sources.values())
    dtypes = {"image": image_dtype(image.dtype)}
    if labels is not None:
        dtypes["segmentation"] = label_dtype(labels.dtype)
    if request.background is not None:
        limits = np.iinfo(labels.dtype)
        if not limits.min <= request.background <= limits.max:
            raise ImportProblem(
                f"--background {request.background} is not a value {labels.dtype} labels can hold "
                f"({limits.min} to {limits.max})"
            )
    encodings = {
        "image": _image_encoding(request.image_encoding, dtypes["image"]),
        "segmentation": "compressed_segmentation",
    }
    if np.prod(request.chunk, dtype=np.int64) > MAX_TASK_VOXELS:
        raise ImportProblem(
            f"a chunk of {_xyz(request.chunk)} voxels is more than one task reads at once ({MAX_TASK_VOXELS:,} "
            "voxels): choose a smaller --chunk"
        )
    size = tuple(int(s) for s in image.shape)
    mips = mip_count(size, request.chunk)
    out = []
    for kind, source in sources.items():
        info = layer_info(kind, dtypes[kind], encodings[kind], voxel_size, offset, size, request.chunk, mips)
        if wants_shards(request.sharded, size, request.chunk):
            add_sharding(info)
        out.append(_Layer(kind, source, dtypes[kind], encodings[kind], info, destination.layer_url(kind)))
    return out


def _voxel_size(request: ImportRequest, *sources) -> tuple[float, float, float]:
    if request.voxel_size is not None:
        return tuple(float(v) for v in request.voxel_size)
    found = {tuple(round(float(v), 6) for v in s.voxel_size) for s in sources if s.voxel_size is not None}
    if len(found) > 1:
        described = " and ".join(f"{s.description}: {_xyz(s.voxel_size)} nm" for s in sources if s.voxel_size)
        raise ImportProblem(f"the sources disagree on the voxel size ({described}): give --voxel-size X,Y,Z (nm)")
    if not found:
        raise ImportProblem(
            f"{sources[0].description} does not say its voxel size: give --voxel-size X,Y,Z in nanometres "
            "(e.g. --voxel-size 8,8,40)"
        )
    return found.pop()


def _offset(request: ImportRequest, *sources) -> tuple[int, int, int]:
    if request.offset is not None:
        return tuple(int(v) for v in request.offset)
    found = {tuple(int(v) for v in s.voxel_offset) for s in sources if s.voxel_offset is not None}
    if len(found) > 1:
        raise ImportProblem("the sources disagree on the voxel offset: give --offset X,Y,Z")
    return found.pop() if found else (0, 0, 0)


def _image_encoding(given: str, dtype: np.dtype) -> str:
    if given == "auto":
        return "jpeg" if dtype == np.uint8 else "raw"
    if given == "jpeg" and dtype != np.uint8:
        raise ImportProblem(f"jpeg holds 8-bit images; this image is {dtype}: use --image-encoding raw")
    return given


def _plan(request: ImportRequest, layers: list[_Layer]) -> dict:
    described = {
        "name": request.name,
        "layers": {
            layer.kind: {"source": layer.source.description, "files": _fingerprint(spec), "info": layer.info}
            for layer, spec in zip(layers, (request.image, request.segmentation))
        },
        "agglomeration": request.agglomeration and os.path.abspath(request.agglomeration),
        "background": request.background,
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    return {"id": digest, **described}


def _fingerprint(spec: str) -> list | None:
    """Sizes and times of a local source (its top-level entries for a folder): a source changed
    between two runs makes another plan, so finished boxes of the old one are not kept."""
    path = Path(spec)
    if "://" in spec or not path.exists():
        return None
    entries = [path, *sorted(path.iterdir())[:10_000]] if path.is_dir() else [path]
    return [[entry.name, found.st_size, found.st_mtime_ns] for entry in entries for found in [entry.stat()]]


def _claim(destination: stored.Place, plan: dict, registry: Datasets, name: str) -> None:
    """Start the import at ``destination``, or continue the one this same plan left unfinished."""
    plan_file = destination.child(PROGRESS_DIR, PLAN_FILE)
    found = stored.get(plan_file)
    if found is not None:
        earlier = json.loads(found)
        if earlier.get("id") != plan["id"]:
            raise ImportProblem(
                f"{destination} holds an import with other sources or settings: run it again as it was, or "
                f"remove {destination} to start over"
            )
        if stored.exists(destination.child(PROGRESS_DIR, "complete")) and registry.exists(name):
            raise ImportProblem(f"dataset {name!r} is already imported (its files are in {destination})")
        return
    if registry.exists(name):
        raise ImportProblem(
            f"dataset {name!r} already exists: choose another name, or `axonlink remove-dataset {name}`"
        )
    if not destination.is_empty():
        raise ImportProblem(f"{destination} is not empty: give --to an empty or new folder (or place in a bucket)")
    stored.put(plan_file, (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode())


def _tasks(
    layer: _Layer, sweep, destination: stored.Place, plan_id: str, background: int | None
) -> tuple[list[PyramidTask], str]:
    """The sweep's tasks, and the folder their markers go to."""
    markers = destination.child(PROGRESS_DIR, layer.kind, f"from-mip-{sweep.read_mip}-to-{sweep.write_mips[-1]}")
    tasks = [
        PyramidTask(
            layer_url=layer.url,
            kind=layer.kind,
            dtype=layer.dtype.name,
            read_mip=sweep.read_mip,
            write_mips=sweep.write_mips,
            start=start,
            stop=stop,
            marker=f"{markers}/{'_'.join(map(str, index))}",
            plan=plan_id,
            source=layer.source if sweep.read_mip == 0 else None,
            background=background if layer.kind == "segmentation" else None,
        )
        for index, start, stop in sweep.boxes()
    ]
    return tasks, markers


# ---- after the volumes ------------------------------------------------------------------------


def _graph_and_meshes(
    settings, request: ImportRequest, timings: dict, client, *, progress: bool, by: str, origin: str
) -> dict:
    from ..graph import ingest_dataset
    from ..graph.agglomeration import read_agglomeration
    from ..graph.ingest import has_graph

    out: dict = {}
    stage_started = time.perf_counter()
    if not has_graph(settings.database_url, request.name):
        agglomeration = read_agglomeration(request.agglomeration) if request.agglomeration else None
        graph = ingest_dataset(
            settings.database_url,
            request.name,
            agglomeration=agglomeration,
            progress=progress,
            home=settings.home,
            by=by,
            origin=origin,
        )
        out["graph"] = graph
    timings["graph"] = time.perf_counter() - stage_started
    if request.mesh:
        from ..meshing import mesh_dataset

        stage_started = time.perf_counter()
        out["meshes"] = mesh_dataset(
            settings.database_url, settings.home, request.name, progress=progress, client=client
        )
        timings["meshes"] = time.perf_counter() - stage_started
    return out


def _xyz(values) -> str:
    return "×".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
