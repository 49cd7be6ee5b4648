"""``axonlink check NAME|URL``: what will and will not work with a segmentation, in seconds."""

from __future__ import annotations

import sys

from .cli_common import dataset_registry, user_error


def add_parsers(sub, common) -> None:
    check = sub.add_parser(
        "check",
        parents=[common],
        help="check a segmentation (a dataset or a layer URL) before ingesting it",
        description="Read a segmentation's info and a small sample of mip-0 chunks and say, one line per "
        "finding (ok / warning / problem), what will and will not work: label type, encodings, sharding, "
        "meshes, label range and id layout, voxel size, grid; for a registered dataset also whether its "
        "layers agree and whether it already has a graph. Exit status 1 when something is a problem. "
        "A target with '/' or '://' is a layer path (./name for a local directory), else a dataset name.",
    )
    check.add_argument("target", metavar="NAME|URL")
    check.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    check.add_argument("--chunks", type=int, default=None, metavar="N", help="mip-0 chunks to sample (default 16)")
    check.add_argument(
        "--time-limit", type=float, default=None, metavar="SECONDS", help="stop sampling after this long (default 20)"
    )
    check.set_defaults(handler=cmd_check)


def is_layer_path(target: str) -> bool:
    return "://" in target or "/" in target


def sample_options(args) -> dict:
    from segmentation.check import MAX_SAMPLE_CHUNKS, SAMPLE_SECONDS

    chunks = MAX_SAMPLE_CHUNKS if getattr(args, "chunks", None) is None else args.chunks
    seconds = SAMPLE_SECONDS if getattr(args, "time_limit", None) is None else args.time_limit
    if not 0 <= chunks <= 1024:
        raise user_error("--chunks must be between 0 and 1024")
    return {"max_chunks": chunks, "time_limit": seconds}


def cmd_check(args, settings):
    from segmentation.check import as_json, check_dataset, check_layer, has_problem
    from segmentation.datasets import DatasetNotFound
    from segmentation.storage import normalize_layer_url

    options = sample_options(args)
    if is_layer_path(args.target):
        target = normalize_layer_url(args.target)
        findings = check_layer(target, **options)
    else:
        target = args.target
        dataset_registry(settings)  # the schema, up to date
        try:
            findings = check_dataset(settings.database_url, target, verify_graph_base=True, **options)
        except DatasetNotFound as error:
            raise user_error(f"{error} (a layer path needs a '/', e.g. ./{target})") from None
    if args.json:
        print(as_json(target, findings))
    else:
        print(f"checked {target}")
        for finding in findings:
            print(finding.line())
    sys.stdout.flush()
    return 1 if has_problem(findings) else 0
