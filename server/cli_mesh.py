"""``axonlink mesh NAME``: give a dataset 3D — mesh its supervoxel segmentation, one fragment per
root per chunk, resumable (a rerun with the same settings goes on where a stopped one ended)."""

from __future__ import annotations

import json

from .cli_common import dataset_registry, user_error


def add_parsers(sub, common) -> None:
    mesh = sub.add_parser(
        "mesh",
        parents=[common],
        help="mesh a dataset's segmentation for 3D in the proofreading view (zmesh, chunk by chunk)",
        description="Meshes the supervoxel segmentation chunk by chunk with the graph's roots of now: one "
        "Draco fragment per root per chunk, so a neuron loads in as many requests as chunks it spans. Edits "
        "need no remeshing: a merge lists both roots' fragments; a split's cut chunks are meshed when first shown.",
    )
    mesh.add_argument("dataset")
    mesh.add_argument("--chunk", help="voxels per mesh chunk as X,Y,Z (default: whole storage chunks, ≥ 128,128,64)")
    mesh.add_argument("--workers", type=int, default=1, help="processes meshing chunks in parallel")
    mesh.add_argument("--max-error", type=float, default=40.0, help="simplification: nm the surface may move")
    mesh.add_argument(
        "--reduction", type=int, default=10, help="simplification: aim for this many times fewer triangles"
    )
    mesh.add_argument("--restart", action="store_true", help="start a new run instead of resuming an unfinished one")
    mesh.set_defaults(handler=cmd_mesh)


def _triple(text: str | None):
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(v <= 0 or v > 4096 for v in values):
        raise user_error(f"--chunk takes three positive voxel counts up to 4096 as X,Y,Z, not {text!r}")
    return values


def cmd_mesh(args, settings):
    from segmentation.datasets import DatasetNotFound, NoSegmentation
    from segmentation.meshing import MeshingError, mesh_dataset
    from segmentation.meshing.surfaces import SurfaceParams

    if not 1 <= args.workers <= 256:
        raise user_error("--workers takes 1 to 256 processes")
    if not 0 < args.max_error <= 1e6 or not 1 <= args.reduction <= 1000:
        raise user_error("--max-error takes nm above 0; --reduction 1 to 1000")
    params = SurfaceParams(reduction_factor=args.reduction, max_error_nm=args.max_error)
    chunk = _triple(args.chunk)
    try:  # (the database upgraded to the newest schema too)
        dataset_registry(settings).get(args.dataset).segmentation_layer("there are no labels to mesh")
    except (DatasetNotFound, NoSegmentation) as error:
        raise user_error(error) from None
    try:
        summary = mesh_dataset(
            settings.database_url,
            settings.home,
            args.dataset,
            chunk=chunk,
            params=params,
            workers=args.workers,
            restart=args.restart,
            progress=True,
        )
    except (MeshingError, DatasetNotFound) as error:
        raise user_error(error) from None
    print(json.dumps(summary))
