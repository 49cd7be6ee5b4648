"""``axonlink synapses import | export | remove``, ``axonlink partners`` and ``axonlink connectivity``:
synapse tables and who talks to whom, from the shell (logic in :mod:`segmentation.connectivity`)."""

from __future__ import annotations

import json
import sys
import time

from .cli_common import UserError, actor, dataset_registry, user_error


def add_parsers(sub, common) -> None:
    synapses = sub.add_parser("synapses", help="synapse tables: import and export CSV/Parquet, remove")
    synapses_sub = synapses.add_subparsers(title="synapses commands")
    load = synapses_sub.add_parser(
        "import",
        parents=[common],
        help="add synapses from CSV or Parquet (CAVE's column names)",
        description="Columns: pre_pt_position and post_pt_position (split _x/_y/_z, or [x, y, z]), optional "
        "ctr_pt_position, size, id, pre_pt_supervoxel_id and post_pt_supervoxel_id (used when given, after "
        "checking the graph has them; else each point is looked up in the segmentation, each chunk read once). "
        "Rows that cannot be added are reported; the others are added in one transaction.",
    )
    load.add_argument("dataset")
    load.add_argument("file", help="a .csv or .parquet file")
    load.add_argument("--format", choices=("csv", "parquet"), help="default: by the file's extension")
    load.add_argument("--resolution", help="nm per unit of the file's positions, X,Y,Z (default: the dataset's voxels)")
    load.add_argument("--user", help="who the synapses are from (default: cli:<login>)")
    load.set_defaults(handler=cmd_synapses_import)
    dump = synapses_sub.add_parser(
        "export", parents=[common], help="synapses in force (at --at) with their roots then, CAVE's columns"
    )
    dump.add_argument("dataset")
    dump.add_argument("--at", help="a moment (ISO 8601 or Unix seconds; default now)")
    dump.add_argument("-o", "--output", help="a .csv or .parquet file (default: CSV on stdout)")
    dump.add_argument("--format", choices=("csv", "parquet"), help="default: by the output's extension")
    dump.set_defaults(handler=cmd_synapses_export)
    drop = synapses_sub.add_parser("remove", parents=[common], help="take synapses out of force (history kept)")
    drop.add_argument("dataset")
    drop.add_argument("ids", nargs="+", type=int)
    drop.set_defaults(handler=cmd_synapses_remove)

    who = sub.add_parser("partners", parents=[common], help="a neuron's input and output partners")
    who.add_argument("dataset")
    who.add_argument("root_id", type=int)
    who.add_argument("--at", help="a moment (default now)")
    who.add_argument("--limit", type=int, default=20, help="partners listed per side (default 20)")
    who.add_argument("--json", action="store_true", help="print JSON")
    who.set_defaults(handler=cmd_partners)

    between = sub.add_parser(
        "connectivity", parents=[common], help="synapse counts between cell types (or neurons), as a table"
    )
    between.add_argument("dataset")
    between.add_argument("--pre", required=True, help="cell types (or root ids with --roots), comma-separated")
    between.add_argument("--post", required=True, help="cell types (or root ids with --roots), comma-separated")
    between.add_argument("--roots", action="store_true", help="--pre and --post are root ids")
    between.add_argument("--at", help="a moment (default now)")
    between.add_argument("--json", action="store_true")
    between.set_defaults(handler=cmd_connectivity)


def _open(settings, name: str):
    """(dataset, graph, Synapses) for a dataset with a graph; UserError otherwise."""
    from segmentation.connectivity import Synapses
    from segmentation.connectivity.synapses import FOLDER
    from segmentation.datasets import DatasetNotFound, NoSegmentation
    from segmentation.graph.registry import Graphs

    try:
        dataset = dataset_registry(settings).get(name)
        dataset.segmentation_layer("synapses join neurons, and an image-only dataset has none")
    except (DatasetNotFound, NoSegmentation) as error:
        raise user_error(error) from None
    graphs = Graphs(settings.database_url)
    graph = graphs.find(name)
    if graph is None:
        raise UserError(f"dataset {name!r} has no graph: run `axonlink ingest-graph {name}` first")
    graph.sync()
    return dataset, graph, Synapses(settings.database_url, graphs, settings.home / FOLDER)


def _moment(text):
    from segmentation.timestamps import InvalidTimestamp, parse_timestamp

    try:
        return parse_timestamp(text) if text else None
    except InvalidTimestamp as error:
        raise user_error(error) from None


def cmd_synapses_import(args, settings):
    from segmentation.connectivity import SynapseError, SynapseFileError, read_table

    dataset, _, synapses = _open(settings, args.dataset)
    scale = (1.0, 1.0, 1.0)
    if args.resolution:
        try:
            values = [float(v) for v in args.resolution.split(",")]
            assert len(values) == 3 and all(v > 0 for v in values)
        except (ValueError, AssertionError):
            raise UserError(f"--resolution takes X,Y,Z in nm, not {args.resolution!r}") from None
        scale = tuple(v / float(r) for v, r in zip(values, dataset.voxel_resolution))
    started = time.perf_counter()
    try:
        incoming = read_table(args.file, args.format, scale)
        print(
            f"read {len(incoming) + incoming.rejected_count:,} row(s) in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        who = actor()
        report = synapses.add(dataset, incoming, args.user or who["by"], origin=who["origin"])
    except (SynapseError, SynapseFileError, OSError) as error:
        raise user_error(error) from None
    print(
        f"added {report.added:,} synapse(s)"
        + (f" (ids {report.first_id}–{report.last_id})" if report.added else "")
        + f"; rejected {report.rejected_count:,} row(s) in {time.perf_counter() - started:.1f} s"
    )
    for row, reason in report.rejected[:50]:
        print(f"  row {row}: {reason}")
    if report.rejected_count > 50:
        print(f"  … and {report.rejected_count - 50:,} more")
    return 1 if report.rejected_count and not report.added else 0


def cmd_synapses_export(args, settings):
    from segmentation.connectivity import cave as synapse_table
    from segmentation.connectivity import write_table

    _, graph, synapses = _open(settings, args.dataset)
    at = _moment(args.at)
    held = synapses.of(args.dataset, graph)
    columns = synapse_table.table_columns(synapse_table.rows_in_force(held, at), graph, at)
    fmt = args.format or ("parquet" if (args.output or "").lower().endswith((".parquet", ".pq")) else "csv")
    if args.output:
        write_table(columns, args.output, fmt)
    else:
        if fmt != "csv":
            raise UserError("Parquet goes to a file: give -o FILE.parquet")
        write_table(columns, sys.stdout.buffer, "csv")


def cmd_synapses_remove(args, settings):
    _, _, synapses = _open(settings, args.dataset)
    who = actor()
    print(json.dumps({"removed": synapses.remove(args.dataset, args.ids, who["by"], origin=who["origin"])}))


def cmd_partners(args, settings):
    from segmentation.celltypes.tags import CellTags
    from segmentation.connectivity.celltyped import types_of
    from segmentation.connectivity.queries import ConnectivityError, partners

    _, graph, synapses = _open(settings, args.dataset)
    at = _moment(args.at)
    try:
        found = partners(synapses.of(args.dataset, graph), graph, args.root_id, at)
    except ConnectivityError as error:
        raise user_error(error) from None
    tags = CellTags(settings.database_url, synapses.graphs)
    answer = {}
    for name, side in found.items():
        roots = side.roots[: args.limit]
        typed = types_of(tags, args.dataset, roots, at)
        answer[name] = [
            {"root_id": str(int(r)), "synapses": int(c), "cell_types": typed.get(int(r), [])}
            for r, c in zip(roots, side.counts[: args.limit])
        ]
        answer[f"{name}_total"] = int(side.counts.sum())
    if args.json:
        print(json.dumps(answer, indent=1))
        return
    for name in ("inputs", "outputs"):
        print(f"{name}: {answer[name + '_total']} synapse(s)")
        for partner in answer[name]:
            print(f"  {partner['root_id']:>20}  {partner['synapses']:>6}  {', '.join(partner['cell_types'])}")


def cmd_connectivity(args, settings):
    import numpy as np

    from segmentation.celltypes.tags import CellTags
    from segmentation.celltypes.vocabulary import UnknownTerm, Vocabulary
    from segmentation.connectivity.celltyped import neurons_of_types
    from segmentation.connectivity.queries import ConnectivityError, check_roots, matrix

    dataset, graph, synapses = _open(settings, args.dataset)
    at = _moment(args.at)
    tags = CellTags(settings.database_url, synapses.graphs)
    vocabulary = Vocabulary.for_dataset(settings.home, args.dataset, base=dataset.vocabulary)
    sides = {}
    try:
        for name, text in (("pre", args.pre), ("post", args.post)):
            labels = [t.strip() for t in text.split(",") if t.strip()]
            if args.roots:
                roots = np.array([int(t) for t in labels], dtype=np.uint64)
                check_roots(graph, roots.tolist(), at)
                sides[name] = (labels, roots, np.arange(len(labels)))
            else:
                sides[name] = (labels, *neurons_of_types(tags, args.dataset, labels, vocabulary, at))
        found = matrix(
            synapses.of(args.dataset, graph),
            graph,
            sides["pre"][1:],
            sides["post"][1:],
            len(sides["pre"][0]),
            len(sides["post"][0]),
            at,
        )
    except (UnknownTerm, ConnectivityError, ValueError) as error:
        raise user_error(error) from None
    if args.json:
        print(json.dumps({"pre": sides["pre"][0], "post": sides["post"][0], "counts": found.counts.tolist()}))
        return
    width = max(len(label) for label in sides["pre"][0] + sides["post"][0]) + 2
    print("pre \\ post".ljust(width) + "".join(label.rjust(width) for label in sides["post"][0]))
    for label, row in zip(sides["pre"][0], found.counts.tolist()):
        print(label.ljust(width) + "".join(str(v).rjust(width) for v in row))


def search_phrase(args, settings, names: list[str]) -> bool:
    """Answer ``axonlink search 'inputs to TYPE'`` (or ``outputs of``): the partners of every neuron
    of the type, grouped by their types, per dataset with synapses; False for any other query."""
    from segmentation.celltypes.query import QueryError
    from segmentation.celltypes.tags import CellTags
    from segmentation.celltypes.vocabulary import UnknownTerm, Vocabulary
    from segmentation.connectivity import Synapses
    from segmentation.connectivity.by_type import parse_phrase, partners_by_type
    from segmentation.connectivity.synapses import FOLDER
    from segmentation.graph.registry import Graphs

    try:
        phrase = parse_phrase(args.query)
    except QueryError as error:
        raise user_error(error) from None
    if phrase is None:
        return False
    graphs = Graphs(settings.database_url)
    synapses = Synapses(settings.database_url, graphs, settings.home / FOLDER)
    tags = CellTags(settings.database_url, graphs)
    registry = dataset_registry(settings)
    asked = [n for n in names if not phrase.datasets or n in phrase.datasets]
    for name in asked:
        if not synapses.has_table(name):
            continue
        vocabulary = Vocabulary.for_dataset(settings.home, name, base=registry.get(name).vocabulary)
        try:
            answer = partners_by_type(synapses, tags, vocabulary, name, phrase)
        except UnknownTerm as error:
            raise user_error(error) from None
        onto = "onto" if phrase.direction == "inputs" else "from"
        print(f"{name}: {answer.synapses} synapse(s) {onto} {answer.neurons} {phrase.term} neuron(s)")
        for group in answer.groups[: max(1, args.limit)]:
            print(f"  {group.label:40} {group.neurons:>8} neuron(s) {group.synapses:>10} synapse(s)")
    return True
