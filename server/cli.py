"""The ``axonlink`` command: demo, serve, add-dataset, ingest-graph, tags, search, datasets, db;
users, tokens, grant, visibility and audit live in :mod:`server.cli_access`, undo and redo in
:mod:`server.cli_graph`, check in :mod:`server.cli_check`, import in :mod:`server.cli_import`, synapses, partners and
connectivity in :mod:`server.cli_synapses`, what they all
use in :mod:`server.cli_common`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from segmentation.config import DEFAULT_HOST, DEFAULT_PORT, Settings

from . import cli_access, cli_check, cli_graph, cli_import, cli_mesh, cli_synapses
from .cli_common import UserError, actor, confirm_by_name, dataset_registry


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.load(
            home=args.home,
            database_url=args.database_url,
            allowed_hosts=getattr(args, "allowed_host", None) or None,
            public_url=getattr(args, "public_url", None),
            trusted_proxies=getattr(args, "trusted_proxy", None) or None,
            accel_redirect=getattr(args, "accel_redirect", None),
        )
        os.environ["AXONLINK_HOME"] = str(settings.home)  # for what finds the home on its own (graph copies)
        return args.handler(args, settings) or 0
    except ValueError as error:  # a setting that cannot be (from a flag or the environment)
        print(f"axonlink: error: {error}", file=sys.stderr)
        return 2
    except UserError as error:
        print(f"axonlink: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="data directory (env AXONLINK_HOME, default ./axonlink-data)")
    common.add_argument(
        "--database-url",
        help="SQLAlchemy URL (env AXONLINK_DATABASE_URL, default sqlite:///<home>/axonlink.sqlite)",
    )
    network = argparse.ArgumentParser(add_help=False)
    network.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    network.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    network.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request (method, route, dataset, user, status, ms, bytes, "
        "request id); without it only failed requests are logged (AXONLINK_ACCESS_LOG=1)",
    )
    network.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="level of axonlink's log (default info; AXONLINK_LOG_LEVEL)",
    )
    network.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text (key=value) or one JSON object per line (default text; AXONLINK_LOG_FORMAT)",
    )
    network.add_argument("--workers", type=int, default=None, help="server processes (default: CPU count, at most 4)")
    network.add_argument("--threads", type=int, default=None, help="request threads per process (default 32)")
    network.add_argument(
        "--header-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close a connection whose request head takes longer (default 10)",
    )
    network.add_argument(
        "--body-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close a connection whose request body takes longer, plus 1 s per 64 KiB (default 30)",
    )
    network.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a host name clients use to reach this server (repeat for several; loopback names "
        "and the public URL's host are always allowed; env AXONLINK_ALLOWED_HOSTS)",
    )
    network.add_argument(
        "--accel-redirect",
        metavar="PREFIX",
        help="nginx's internal location serving local files (e.g. /_axonlink_files, with 'alias /'): "
        "stored chunks and fragments asked through a --trusted-proxy are handed to it by "
        "X-Accel-Redirect after the access check (env AXONLINK_ACCEL_REDIRECT; docs/deploy.md)",
    )
    network.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDRESS",
        help="a front server (e.g. 127.0.0.1 for nginx on this machine) whose X-Forwarded-For "
        "names the client, for rate limits and the audit log (env AXONLINK_TRUSTED_PROXIES)",
    )
    network.add_argument(
        "--public-url",
        metavar="URL",
        help="how clients reach this server, e.g. https://em.example.org; links and redirects "
        "are built from it (env AXONLINK_PUBLIC_URL)",
    )

    parser = argparse.ArgumentParser(
        prog="axonlink", description="Connectomics on one machine: serve volumes to Neuroglancer."
    )
    sub = parser.add_subparsers(title="commands")

    demo = sub.add_parser(
        "demo",
        parents=[common, network],
        help="build the demo dataset if missing, then serve it",
        description="Build the synthetic demo dataset (once) under <home>/demo, register it, serve the viewer.",
    )
    demo.add_argument("--no-serve", action="store_true", help="build and register only")
    demo.set_defaults(handler=cmd_demo)

    serve = sub.add_parser(
        "serve",
        parents=[common, network],
        help="serve the viewer, volumes and API",
        description="Upgrade the database schema, then serve HTTP until interrupted.",
    )
    serve.set_defaults(handler=cmd_serve)

    add = sub.add_parser(
        "add-dataset",
        parents=[common],
        help="register a dataset (a segmentation, an image, more layers)",
        description="Register precomputed layers at any CloudVolume path (file://, gs://, s3://, http(s)://). "
        "With --image and no --segmentation the dataset is image-only (viewed, not proofread).",
    )
    add.add_argument("name")
    add.add_argument(
        "--segmentation",
        help="the supervoxel segmentation (the graph is built from it), e.g. gs://bucket/seg; without it, "
        "--image makes an image-only dataset",
    )
    add.add_argument("--image", help="image layer path, e.g. gs://bucket/em (optional with --segmentation)")
    add.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="another layer, served as stored (a ground truth, bodies, a second channel)",
    )
    add.add_argument(
        "--supervoxel-layer",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="another layout of the same supervoxels (e.g. a sharded copy), served through the graph",
    )
    add.add_argument(
        "--vocabulary",
        choices=["mouse-cortex", "fly"],
        help="the cell-type vocabulary its tags start from (default: mouse-cortex)",
    )
    add.add_argument("--description", default="")
    add.add_argument("--license", default="")
    add.add_argument("--citation", default="", help="citation or DOI to show with the data")
    add.add_argument(
        "--private", action="store_true", help="only users granted a role see it (`axonlink grant NAME DATASET viewer`)"
    )
    add.set_defaults(handler=cmd_add_dataset)

    remove = sub.add_parser(
        "remove-dataset",
        parents=[common],
        help="remove a dataset with its graph, history, tags and anchors",
        description="Remove a registered dataset and everything axonlink keeps about it (graph, edit history, "
        "cell-type tags, link anchors, grants); its files are not touched. Asks for the name unless --yes.",
    )
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask")
    remove.set_defaults(handler=cmd_remove_dataset)

    graph = sub.add_parser(
        "ingest-graph",
        parents=[common],
        help="build a dataset's supervoxel graph from its segmentation",
        description="Check the segmentation (as `axonlink check` does; a problem stops here), then build the "
        "supervoxel adjacency graph chunk by chunk and store it as the dataset's versioned graph. Every "
        "supervoxel starts as its own neuron unless --agglomeration joins them: label pairs, or a "
        "supervoxel -> body table whose bodies become the neurons.",
    )
    graph.add_argument("name")
    graph.add_argument(
        "--no-mesh",
        dest="mesh",
        action="store_false",
        help="do not mesh the segmentation afterwards (`axonlink mesh NAME` does it later; a layer with "
        "legacy meshes is never meshed again: they are reused)",
    )
    graph.add_argument(
        "--agglomeration",
        metavar="FILE",
        help="pairs (two label columns) or a supervoxel->body table: CSV (header optional), "
        "whitespace-separated text ('#' comments) or .npy (N x 2)",
    )
    graph.add_argument(
        "--agglomeration-kind",
        choices=["auto", "pairs", "bodies"],
        default="auto",
        help="how to read FILE (default auto: a header naming a body/segment column, or a first "
        "column without repeats and a second with them, means bodies; else pairs)",
    )
    graph.add_argument(
        "--replace",
        action="store_true",
        help="the dataset has a graph: build a new one and swap it in (its edit history is "
        "dropped; the old graph stays if the new ingest fails). Asks for the name unless --yes",
    )
    graph.add_argument("--yes", action="store_true", help="with --replace: do not ask")
    graph.add_argument(
        "--chunks", type=int, default=None, metavar="N", help="mip-0 chunks the check samples first (default 16)"
    )
    graph.set_defaults(handler=cmd_ingest_graph)

    listing = sub.add_parser("datasets", parents=[common], help="list registered datasets as JSON")
    listing.set_defaults(handler=cmd_datasets)

    tags = sub.add_parser("tags", help="cell-type tags: import and export CSV")
    tags_sub = tags.add_subparsers(title="tags commands")
    tag_import = tags_sub.add_parser(
        "import",
        parents=[common],
        help="add tags from a CAVE-style CSV",
        description="Columns pt_position_x/_y/_z (or pt_position) in voxels, cell_type, optional note, "
        "confidence. Bad rows are reported and skipped; the others are all added.",
    )
    tag_import.add_argument("dataset")
    tag_import.add_argument("file", help="CSV file ('-' for standard input)")
    tag_import.add_argument("--user", default="cli", help="who the tags are from (default: cli)")
    tag_import.set_defaults(handler=cmd_tags_import)
    tag_export = tags_sub.add_parser("export", parents=[common], help="tags in force as CSV (CAVE's columns)")
    tag_export.add_argument("dataset")
    tag_export.add_argument("--at", help="a moment (ISO 8601 or Unix seconds); default now")
    tag_export.add_argument("-o", "--output", help="file to write (default: standard output)")
    tag_export.set_defaults(handler=cmd_tags_export)

    find = sub.add_parser(
        "search",
        parents=[common],
        help="neurons by cell type across datasets, as a table",
        description="Query language: a type term (its subtypes included), dataset:NAME, user:NAME, "
        "note:TEXT, t:MOMENT; AND (implicit), OR, NOT or -. Example: 'L2/3 pyramidal OR basket dataset:demo'.",
    )
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=50)
    find.set_defaults(handler=cmd_search)

    cli_access.add_parsers(sub, common)
    cli_graph.add_parsers(sub, common)
    cli_mesh.add_parsers(sub, common)
    cli_import.add_parsers(sub, common)
    cli_check.add_parsers(sub, common)
    cli_synapses.add_parsers(sub, common)

    database = sub.add_parser("db", help="database schema commands")
    db_sub = database.add_subparsers(title="db commands")
    upgrade = db_sub.add_parser("upgrade", parents=[common], help="apply schema migrations (Alembic)")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    current = db_sub.add_parser("current", parents=[common], help="print the schema revision")
    current.set_defaults(handler=cmd_db_current)
    return parser


def cmd_db_upgrade(args, settings):
    from segmentation import db

    db.upgrade(settings.database_url)
    print(f"database at revision {db.current_revision(settings.database_url)}")


def cmd_db_current(args, settings):
    from segmentation import db

    print(db.current_revision(settings.database_url) or "empty (run `axonlink db upgrade`)")


def _named_urls(items, flag: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, eq, url = item.partition("=")
        if not eq:
            raise UserError(f"{flag} wants NAME=URL, got {item!r}")
        found[name] = url
    return found


def cmd_add_dataset(args, settings):
    from segmentation.datasets import DatasetError

    if args.segmentation is None and args.image is None:
        raise UserError(
            "add-dataset needs --segmentation URL (the supervoxels a graph is built from), --image URL "
            "(an image-only dataset), or both"
        )
    try:
        dataset = dataset_registry(settings).add(
            args.name,
            image=args.image,
            segmentation=args.segmentation,
            extra_layers=_named_urls(args.layer, "--layer"),
            supervoxel_layers=_named_urls(args.supervoxel_layer, "--supervoxel-layer"),
            description=args.description,
            license=args.license,
            citation=args.citation,
            public=not args.private,
            vocabulary=args.vocabulary,
        )
    except (DatasetError, ValueError) as error:
        raise UserError(str(error)) from None
    print(json.dumps(dataset.to_json(), indent=2))


def cmd_remove_dataset(args, settings):
    from segmentation.datasets import DatasetNotFound

    registry = dataset_registry(settings)
    try:
        dataset = registry.get(args.name)
    except DatasetNotFound as error:
        raise UserError(str(error)) from None
    if not args.yes:
        confirm_by_name(
            args.name,
            f"Remove dataset {args.name!r} with its graph, edit history, tags and link anchors "
            f"(its files at {', '.join(layer.url for layer in dataset.layers)} stay)?",
            unconfirmed=f"removing {args.name!r} cannot be undone: confirm with --yes",
            declined="not removed",
        )
    removed = registry.remove(args.name, **actor())
    from segmentation.meshing import MeshStore

    removed["meshes"] = MeshStore(settings.home, args.name).remove()  # made here, from its volume
    shutil.rmtree(Path(settings.home) / "graphene" / args.name, ignore_errors=True)  # Draco copies of its meshes
    print(json.dumps({"removed": args.name, **removed}))


def cmd_ingest_graph(args, settings):
    from segmentation.check import PROBLEM, check_dataset, has_problem
    from segmentation.datasets import DatasetNotFound, NoSegmentation
    from segmentation.graph import GraphError, ingest_dataset
    from segmentation.graph.agglomeration import AgglomerationError, read_agglomeration
    from segmentation.graph.ingest import has_graph
    from segmentation.meshes import build_for_dataset

    from .cli_check import sample_options

    registry = dataset_registry(settings)
    try:
        registry.get(args.name).segmentation_layer(
            "nothing to build a graph from (it is image-only): import the image with its segmentation as a "
            "dataset to proofread (`axonlink import NAME --image SRC --segmentation SRC`)"
        )
    except (DatasetNotFound, NoSegmentation) as error:
        raise UserError(str(error)) from None
    # everything cheap first: no chunk is read until the graph, the file and the check all pass
    if has_graph(settings.database_url, args.name) and not args.replace:
        raise UserError(f"dataset {args.name} already has a graph (use --replace)")
    if args.replace and has_graph(settings.database_url, args.name) and not args.yes:
        confirm_by_name(
            args.name,
            f"Replace the graph of {args.name!r}? Its edits (merges, splits) are dropped and operation ids "
            "start again; tags and link anchors stay on their supervoxels.",
            unconfirmed=f"replacing the graph of {args.name!r} drops its edit history: confirm with --yes",
            declined="not replaced",
        )
    agglomeration = None
    if args.agglomeration:
        try:
            agglomeration = read_agglomeration(args.agglomeration, args.agglomeration_kind)
        except AgglomerationError as error:
            raise UserError(str(error)) from None
        print(f"agglomeration: {agglomeration.describe()}", file=sys.stderr)
    findings = check_dataset(settings.database_url, args.name, **sample_options(args))
    for finding in findings:
        if finding.level != "ok" and finding.topic != "graph":
            print(f"check: {finding.line()}", file=sys.stderr)
    if has_problem(findings):
        reasons = "; ".join(f"{f.topic}: {f.reason}" for f in findings if f.level == PROBLEM)
        raise UserError(f"{args.name} cannot be ingested: {reasons} (see `axonlink check {args.name}`)")
    try:
        summary = ingest_dataset(
            settings.database_url,
            args.name,
            agglomeration=agglomeration,
            progress=True,
            replace=args.replace,
            home=settings.home,
            **actor(),
        )
    except (DatasetNotFound, GraphError) as error:
        raise UserError(str(error)) from None
    if summary.get("replaced", {}).get("graph"):
        print(
            f"replaced the graph of {args.name}: its edit history is gone and operation ids start again; new "
            "root ids count on from the old ones (an old root id names no neuron of the new graph); cell-type "
            "tags and link anchors follow their supervoxels",
            file=sys.stderr,
        )
    summary["draco_fragments"] = build_for_dataset(settings.database_url, settings.home, args.name, progress=True)
    if args.mesh and not summary["draco_fragments"]:  # no legacy meshes to reuse: make them
        from segmentation.meshing import MeshingError, mesh_dataset

        try:
            summary["meshes"] = mesh_dataset(settings.database_url, settings.home, args.name, progress=True)
        except MeshingError as error:
            raise UserError(str(error)) from None
    print(json.dumps(summary))


def _vocabulary(settings, dataset):
    from segmentation.celltypes.vocabulary import Vocabulary
    from segmentation.datasets import DatasetNotFound

    try:
        base = dataset_registry(settings).get(dataset).vocabulary
    except DatasetNotFound:
        base = None
    return Vocabulary.for_dataset(settings.home, dataset, base=base)


def cmd_tags_import(args, settings):
    from tqdm import tqdm

    from segmentation.celltypes.csvio import CsvError, read_tag_rows
    from segmentation.celltypes.tags import CellTags, TagError
    from segmentation.datasets import DatasetNotFound, NoSegmentation

    try:
        dataset = dataset_registry(settings).get(args.dataset)
        dataset.segmentation_layer("cell-type tags name neurons, and an image-only dataset has none")
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8-sig").read()
        rows, rejected = read_tag_rows(text)
    except (DatasetNotFound, NoSegmentation, CsvError, OSError) as error:
        raise UserError(str(error)) from None
    tags, vocabulary, added = CellTags(settings.database_url), _vocabulary(settings, args.dataset), 0
    batch = 1000
    try:
        with tqdm(total=len(rows), desc="tags", unit="row") as bar:
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                done, refused = tags.add_many(dataset, [row for _, row in chunk], args.user, vocabulary)
                added += len(done)
                rejected += [(chunk[number - 1][0], reason) for number, reason in refused]
                bar.update(len(chunk))
    except TagError as error:
        raise UserError(str(error)) from None
    print(f"added {added} tag(s); rejected {len(rejected)} row(s)")
    for number, reason in sorted(rejected):
        print(f"  row {number}: {reason}")
    unknown = sorted({reason.split("'")[1] for _, reason in rejected if reason.startswith("unknown cell type '")})
    if unknown:
        from segmentation.celltypes.vocabulary import how_to_add

        print(how_to_add(unknown[0], args.dataset).replace(f"to add {unknown[0]!r}", "to add a cell type"))
    return 1 if rejected and not added else 0


def cmd_tags_export(args, settings):
    from segmentation.celltypes.csvio import write_tags
    from segmentation.celltypes.tags import CellTags
    from segmentation.datasets import DatasetNotFound
    from segmentation.timestamps import InvalidTimestamp, parse_timestamp

    try:
        dataset_registry(settings).get(args.dataset)
        at = parse_timestamp(args.at) if args.at else None
    except (DatasetNotFound, InvalidTimestamp) as error:
        raise UserError(str(error)) from None
    text = write_tags(CellTags(settings.database_url).of_dataset(args.dataset, at=at))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


def cmd_search(args, settings):
    from segmentation.celltypes.query import QueryError, parse
    from segmentation.celltypes.search import search
    from segmentation.celltypes.tags import CellTags
    from segmentation.celltypes.vocabulary import UnknownTerm

    names = [d.name for d in dataset_registry(settings).list()]
    from .cli_synapses import search_phrase

    if search_phrase(args, settings, names):  # "inputs to L2/3 pyramidal": partners grouped by type
        return
    try:
        found = search(
            CellTags(settings.database_url),
            parse(args.query),
            lambda name: _vocabulary(settings, name),
            names,
            per_page=max(1, args.limit),
        )
    except (QueryError, UnknownTerm) as error:
        raise UserError(str(error)) from None
    counts = ", ".join(f"{name}: {n}" for name, n in found.counts.items()) or "none"
    print(f"{found.total} neuron(s) ({counts})" + (f" as of {found.at.isoformat()}" if found.at else ""))
    if found.hits:
        print(f"{'dataset':12} {'root id':20} {'position':18} {'terms':40} link")
        for hit in found.hits:
            terms = ", ".join(hit.terms) + (" (conflict)" if hit.conflict else "")
            position = ",".join(str(v) for v in hit.position)
            print(f"{hit.dataset:12} {hit.root_id:<20} {position:18} {terms:40} {hit.link}")


def cmd_datasets(args, settings):
    print(json.dumps([d.to_json() for d in dataset_registry(settings).list()], indent=2))


def cmd_demo(args, settings):
    from segmentation.demo.install import DEMO_NAME, demo_proofreader_token, ensure_demo

    ensure_demo(settings)
    if not args.no_serve:
        token = demo_proofreader_token(settings)
        _serve(
            args,
            settings,
            extra=lambda url: [
                "  viewing needs no login; to proofread (merge, split, tag) as user 'proofreader':",
                f"    browser:    {url}/login#token={token}",
                f"    caveclient: CAVEclient('{DEMO_NAME}', server_address='{url}', auth_token='{token}')",
            ],
        )


def cmd_serve(args, settings):
    _serve(args, settings)


def _serve(args, settings, extra=None):
    import dataclasses

    from server import create_app, logs
    from server.hosts import canonical_host, is_loopback
    from server.runner import serve_forever

    try:
        logs.configure(args.log_level, args.log_format, access_log=args.access_log or None)
    except ValueError as error:  # a bad AXONLINK_LOG_LEVEL / AXONLINK_LOG_FORMAT
        raise UserError(str(error)) from None
    bind = canonical_host(args.host)
    if not is_loopback(bind) and bind not in settings.allowed_hosts:
        settings = dataclasses.replace(settings, allowed_hosts=settings.allowed_hosts + (bind,))
    app = create_app(settings)

    def ready(url):
        print(f"axonlink serving {settings.home} on {url}", flush=True)
        print(f"  viewer:   {url}/", flush=True)
        print(f"  datasets: {url}/datasets  (JSON: {url}/api/v1/datasets)", flush=True)
        for line in extra(url) if extra else []:
            print(line, flush=True)
        print("press Ctrl-C to stop", flush=True)

    try:
        serve_forever(
            app,
            args.host,
            args.port,
            workers=args.workers,
            threads=args.threads,
            on_ready=ready,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
        )
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
