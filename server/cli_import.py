"""``axonlink import NAME --image SRC [--segmentation SRC]``: bring a lab's volumes in, in one command.

Sources: HDF5, TIFF (a multi-page file or a folder of slices), PNG slices, Zarr / OME-Zarr, N5,
``.npy`` and any precomputed volume; output: precomputed layers with mips, the dataset registered,
its graph (from ``--agglomeration`` when given) and meshes. Without ``--segmentation`` the image
alone is imported (an image-only dataset: no graph, meshes or skeletons). Runs on Dask
(``--workers`` here, or ``--scheduler`` for a cluster); a second run with the same arguments
continues an interrupted one.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli_common import actor, user_error


def add_parsers(sub, common) -> None:
    command = sub.add_parser(
        "import",
        parents=[common],
        help="import volumes from HDF5, TIFF, PNG slices, Zarr/OME-Zarr, N5, npy or precomputed as a dataset",
        description="Writes precomputed image and segmentation layers with mips (on Dask), registers the dataset, "
        "builds its supervoxel graph and meshes. Without --segmentation only the image layer is written and "
        "registered (an image-only dataset). Re-run the same command to continue an interrupted import. "
        "Examples: axonlink import fib --image raw.h5 --segmentation labels.h5 --dataset-path /main "
        "--voxel-size 8,8,8; axonlink import cells --image em.ome.zarr --segmentation seg.zarr; "
        "axonlink import em --image stack.tif --voxel-size 4,4,40",
    )
    command.add_argument("name", help="the dataset's name")
    command.add_argument("--image", required=True, metavar="SRC", help="the image volume (a file, folder or URL)")
    command.add_argument(
        "--segmentation",
        metavar="SRC",
        help="the supervoxel labels (same voxels as the image); without it the image is imported alone",
    )
    command.add_argument(
        "--agglomeration",
        metavar="FILE",
        help="supervoxel pairs to join, or a supervoxel->body table (CSV or .npy, as Raveler/Neutu export): "
        "the graph starts with those bodies as its neurons",
    )
    command.add_argument(
        "--background",
        type=int,
        metavar="LABEL",
        help="a label the segmentation uses for background instead of 0 (e.g. -1 or 18446744073709551615): stored as 0",
    )
    command.add_argument("--voxel-size", metavar="X,Y,Z", help="nm per voxel (needed when the format has none)")
    command.add_argument("--offset", metavar="X,Y,Z", help="voxel offset of the volume (default: the source's or 0)")
    command.add_argument("--axes", help="order of the stored axes, e.g. zyx (numpy, HDF5, TIFF) or xyz")
    command.add_argument("--dataset-path", metavar="KEY", help="the dataset inside an HDF5/Zarr/N5 container")
    command.add_argument("--chunk", metavar="X,Y,Z", help="voxels per stored chunk (default 64,64,64)")
    command.add_argument(
        "--image-encoding", choices=("auto", "jpeg", "raw"), default="auto", help="auto: jpeg for 8-bit images"
    )
    command.add_argument("--mesh", action=argparse.BooleanOptionalAction, default=True)
    command.add_argument(
        "--skeletons",
        action="store_true",
        help="also skeletonize every label with kimimaro (Neuroglancer precomputed skeletons in the segmentation "
        "layer; a neuron's skeleton joins its supervoxels')",
    )
    command.add_argument("--sharded", choices=("auto", "yes", "no"), default="auto")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="Dask worker processes on this machine (default 2)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    command.add_argument("--to", metavar="DIR", help="where the layers are written (default <home>/volumes/NAME)")
    command.add_argument("--description", default="")
    command.add_argument("--license", default="")
    command.add_argument("--citation", default="")
    command.add_argument("--private", action="store_true", help="only users granted access see it")
    command.set_defaults(handler=cmd_import)


def triple(text: str | None, flag: str, kind=float):
    if text is None:
        return None
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or (kind is float and any(not 0 < v < 1e9 for v in values)):
        raise user_error(
            f"{flag} takes three {'positive numbers' if kind is float else 'integers'} as X,Y,Z, not {text!r}"
        )
    return values


def _chunk(text: str) -> tuple[int, int, int]:
    values = triple(text, "--chunk", int)
    if any(not 8 <= v <= 1024 for v in values):
        raise user_error(f"--chunk takes three sizes from 8 to 1024 voxels, not {text!r}")
    return values


def cmd_import(args, settings):
    from segmentation import db
    from segmentation.datasets import DatasetError
    from segmentation.errors import AxonlinkError
    from segmentation.graph import GraphError
    from segmentation.graph.agglomeration import AgglomerationError
    from segmentation.importing.pipeline import ImportRequest, import_dataset
    from segmentation.meshing import MeshingError

    if not 1 <= args.workers <= 256:
        raise user_error("--workers takes 1 to 256 processes")
    db.upgrade(settings.database_url)
    request = ImportRequest(
        name=args.name,
        image=args.image,
        segmentation=args.segmentation,
        agglomeration=args.agglomeration,
        voxel_size=triple(args.voxel_size, "--voxel-size"),
        offset=triple(args.offset, "--offset", int),
        axes=args.axes,
        dataset_path=args.dataset_path,
        image_encoding=args.image_encoding,
        mesh=args.mesh,
        skeletons=args.skeletons,
        sharded=args.sharded,
        workers=args.workers,
        scheduler=args.scheduler,
        destination=args.to,
        description=args.description,
        license=args.license,
        citation=args.citation,
        public=not args.private,
        background=args.background,
    )
    if args.chunk:
        request.chunk = _chunk(args.chunk)
    try:
        summary = import_dataset(settings, request, progress=True, **actor())
    except (AxonlinkError, DatasetError, GraphError, AgglomerationError, MeshingError) as error:
        raise user_error(error) from None
    print(json.dumps(summary, indent=1), file=sys.stdout)
