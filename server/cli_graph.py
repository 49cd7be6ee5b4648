"""``axonlink undo | redo | compact``: take back a proofreading edit from the shell (as a new, audited
operation); fold a graph's operation log into a new base."""

from __future__ import annotations

import json

from .cli_common import actor, dataset_registry, user_error


def add_parsers(sub, common) -> None:
    undo = sub.add_parser(
        "undo",
        parents=[common],
        help="undo an edit of a dataset's graph (default: the last one)",
        description="Undo is itself an operation: the edit stays in the history, and redo can bring it back.",
    )
    undo.add_argument("dataset")
    undo.add_argument("--operation", type=int, help="the operation id (default: the newest merge or split)")
    undo.add_argument("--user", help="with no --operation: the newest edit of this user")
    undo.set_defaults(handler=cmd_undo)
    redo = sub.add_parser("redo", parents=[common], help="redo an undone edit")
    redo.add_argument("dataset")
    redo.add_argument("operation", type=int)
    redo.set_defaults(handler=cmd_redo)
    compact = sub.add_parser(
        "compact",
        parents=[common],
        help="fold a dataset's graph edits into a new base (servers go on answering and editing)",
        description="Writes a new memory-mapped base holding the graph as of its newest operation, with the "
        "history for time travel, and switches every process to it at its next read. The operation log is kept.",
    )
    compact.add_argument("dataset")
    compact.set_defaults(handler=cmd_compact)


def _graph(settings, dataset):
    from segmentation.datasets import DatasetNotFound, NoSegmentation
    from segmentation.graph import Graph

    registry = dataset_registry(settings)
    try:
        registry.get(dataset).segmentation_layer("an image-only dataset has no graph")
    except NoSegmentation as error:
        raise user_error(error) from None
    except DatasetNotFound:
        pass  # Graph.open words it
    try:
        return Graph.open(settings.database_url, dataset)
    except LookupError as error:
        raise user_error(error) from None


def cmd_undo(args, settings):
    from segmentation.graph import GraphError

    graph = _graph(settings, args.dataset)
    operation = args.operation
    if operation is None:
        edits = [op for op in graph.user_operations(args.user, include_undo=False)]
        if not edits:
            raise user_error(f"no edit to undo in {args.dataset}" + (f" by {args.user}" if args.user else ""))
        operation = edits[-1]["id"]
    who = actor()
    try:
        result = graph.undo(operation, who["by"], origin=who["origin"])
    except GraphError as error:
        raise user_error(error) from None
    print(
        json.dumps(
            {
                "undone": operation,
                "operation_id": result.operation_id,
                "new_root_ids": [str(r) for r in result.new_root_ids],
                "old_root_ids": [str(r) for r in result.old_root_ids],
            }
        )
    )


def cmd_redo(args, settings):
    from segmentation.graph import GraphError

    graph = _graph(settings, args.dataset)
    who = actor()
    try:
        result = graph.redo(args.operation, who["by"], origin=who["origin"])
    except GraphError as error:
        raise user_error(error) from None
    print(
        json.dumps(
            {
                "redone": args.operation,
                "operation_id": result.operation_id,
                "new_root_ids": [str(r) for r in result.new_root_ids],
            }
        )
    )


def cmd_compact(args, settings):
    from segmentation.graph.compaction import compact

    _graph(settings, args.dataset)  # the database is migrated and the graph exists
    who = actor()
    print(json.dumps(compact(settings.database_url, args.dataset, **who)))
