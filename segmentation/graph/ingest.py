"""Give a dataset its graph: supervoxels and adjacency from the volume, an initial agglomeration."""

from __future__ import annotations

import fastremap
import numpy as np
import sqlalchemy as sa

from ..datasets import Datasets
from ..db import engine_for
from ..models import GraphEdgeRow, GraphStateRow, GraphSupervoxelRow
from .agglomeration import Agglomeration, AgglomerationError
from .base import BaseError, GraphBase
from .graph import _dataset_id
from .ids import (
    LAYER_SHIFT,
    SUPERVOXEL_LAYER,
    LabelLayoutCheck,
    LabelLayoutError,
    supervoxel_ids,
)
from .index import GraphError
from .region_graph import region_graph
from .registry import forget_everywhere
from .store import discard_base, open_base, write_base


def as_supervoxel_ids(labels) -> np.ndarray:
    """Plain labels (1, 2, 3 ...) get the supervoxel layer; ids already in layer 1 are kept."""
    labels = np.asarray(labels, dtype=np.uint64)
    layers = labels >> np.uint64(LAYER_SHIFT)
    if np.all(layers == SUPERVOXEL_LAYER):
        return labels
    if np.all(layers == 0):
        return supervoxel_ids(labels)
    raise GraphError("labels mix plain ids and layered ids; a volume must use one or the other")


def ingest_dataset(
    database_url: str,
    dataset: str,
    agglomeration=None,
    progress: bool = True,
    *,
    replace: bool = False,
    by: str = "system",
    origin: str = "",
    home=None,
) -> dict:
    """Build and store the graph of ``dataset``'s segmentation.

    ``agglomeration`` is an :class:`~segmentation.graph.agglomeration.Agglomeration` (pairs or a
    body table, see :func:`~segmentation.graph.agglomeration.read_agglomeration`) or an (N, 2)
    array of label pairs whose edges start active (plain labels or supervoxel ids); without it
    every supervoxel starts as its own root. A dataset that has a graph is refused before any
    chunk is read, unless ``replace``: then the new graph is computed first and swapped in in one
    transaction (audited as ``by``), so a failed ingest leaves the old graph in place. The base is
    written to the graph store (:func:`~segmentation.graph.store.graph_store`; ``home``: the server's).
    """
    layer = Datasets(database_url).get(dataset).segmentation_layer("nothing to build a graph from")
    if not replace and has_graph(database_url, dataset):
        raise GraphError(f"dataset {dataset!r} already has a graph (use --replace)")
    if agglomeration is not None and not isinstance(agglomeration, Agglomeration):
        agglomeration = Agglomeration.from_pairs(agglomeration)
    try:
        plain_svs, a, b, area, boxes = region_graph(layer.url, progress=progress, check_labels=LabelLayoutCheck())
    except LabelLayoutError as error:
        raise GraphError(f"{layer.url}: {error}") from None
    supervoxels = as_supervoxel_ids(plain_svs)
    a, b = as_supervoxel_ids(a), as_supervoxel_ids(b)
    area = np.asarray(area, dtype=np.float64)
    active = np.zeros(len(a), dtype=bool)
    summary = {"supervoxels": len(supervoxels), "edges": len(a), "active_edges": 0}
    if agglomeration is not None and len(agglomeration.left):
        try:
            agglomeration.check_in_volume(supervoxels)
        except AgglomerationError as error:
            raise GraphError(str(error)) from None
        if agglomeration.kind == "pairs":
            active = _active_pairs(agglomeration, a, b)
        else:
            a, b, area, active, made = _active_bodies(agglomeration, supervoxels, a, b, area)
            summary.update(made)
        summary["agglomeration"] = agglomeration.describe()
    summary["active_edges"] = int(active.sum())
    replaced = store_graph(
        database_url,
        dataset,
        supervoxels,
        a,
        b,
        area,
        active,
        boxes=boxes,
        replace=replace,
        by=by,
        origin=origin,
        summary=summary,
        home=home,
    )
    if replace:
        summary["replaced"] = replaced
    return summary


def has_graph(database_url: str, dataset: str) -> bool:
    with engine_for(database_url).connect() as connection:
        dataset_id = _dataset_id(connection, dataset)
        return (
            connection.scalar(sa.select(GraphStateRow.dataset_id).where(GraphStateRow.dataset_id == dataset_id))
            is not None
        )


def graph_base_url(database_url: str, dataset: str) -> str | None:
    """The URL of the base the dataset's graph reads (None: no graph, or one still stored as rows)."""
    with engine_for(database_url).connect() as connection:
        dataset_id = _dataset_id(connection, dataset)
        return connection.scalar(sa.select(GraphStateRow.base_url).where(GraphStateRow.dataset_id == dataset_id))


def _active_pairs(agglomeration: Agglomeration, a, b) -> np.ndarray:
    """Edges named by the pairs start active; a pair that does not touch is refused (named)."""
    pa, pb = agglomeration.supervoxel_ids(agglomeration.left), agglomeration.supervoxel_ids(agglomeration.right)
    wanted = {(min(x, y), max(x, y)) for x, y in zip(pa.tolist(), pb.tolist())}
    active = np.array([(min(x, y), max(x, y)) in wanted for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
    if len(wanted) != int(active.sum()):
        present = {(min(x, y), max(x, y)) for x, y in zip(a[active].tolist(), b[active].tolist())}
        apart = np.array([(min(x, y), max(x, y)) not in present for x, y in zip(pa.tolist(), pb.tolist())])
        raise GraphError(
            f"{agglomeration.source}: {len(wanted) - len(present)} agglomeration pair(s) are not "
            f"touching supervoxels of the volume ({agglomeration.where(apart)}); a body table "
            "(supervoxel body) may join supervoxels that do not touch"
        )
    return active


def _active_bodies(agglomeration: Agglomeration, supervoxels, a, b, area):
    """Edges within a body start active, edges between bodies not; a body whose supervoxels do not
    all touch gets agglomeration-only edges (area 0, active) chaining its pieces, so that its root
    is exactly the body (and a split cuts those first: they are the cheapest edges)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(supervoxels)
    body = np.zeros(n, dtype=np.uint64)  # 0: its own neuron
    listed = agglomeration.supervoxel_ids(agglomeration.left)
    body[np.searchsorted(supervoxels, listed)] = agglomeration.right
    ia, ib = np.searchsorted(supervoxels, a), np.searchsorted(supervoxels, b)
    active = (body[ia] == body[ib]) & (body[ia] != 0)
    graph = coo_matrix((np.ones(int(active.sum())), (ia[active], ib[active])), shape=(n, n))
    _, piece = connected_components(graph, directed=False)
    in_body = np.flatnonzero(body != 0)
    # one representative (the smallest supervoxel) per (body, piece), ordered by body
    keys = np.stack([body[in_body], piece[in_body].astype(np.uint64)], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    reps = in_body[first]
    order = np.lexsort((supervoxels[reps], body[reps]))
    reps = reps[order]
    chain = body[reps][1:] == body[reps][:-1]
    extra_a, extra_b = supervoxels[reps[:-1][chain]], supervoxels[reps[1:][chain]]
    bodies = len(fastremap.unique(body[in_body]))
    made = {
        "bodies": bodies,
        "bodies_made_whole": len(fastremap.unique(body[reps[1:][chain]])),
        "agglomeration_only_edges": len(extra_a),
        "unlisted_supervoxels": int(n - len(fastremap.unique(listed))),
    }
    if len(extra_a):
        a = np.concatenate([a, np.minimum(extra_a, extra_b)])
        b = np.concatenate([b, np.maximum(extra_a, extra_b)])
        area = np.concatenate([area, np.zeros(len(extra_a))])
        active = np.concatenate([active, np.ones(len(extra_a), dtype=bool)])
    return a, b, area, active, made


def store_graph(
    database_url: str,
    dataset: str,
    supervoxels,
    edge_a,
    edge_b,
    area,
    active,
    boxes=None,
    *,
    replace: bool = False,
    by: str = "system",
    origin: str = "",
    summary: dict | None = None,
    home=None,
) -> dict:
    """Give a dataset its graph: write the base (supervoxels with their voxel boxes, if known, and the
    adjacency) into the graph store, then point the database at it in one transaction.

    With ``replace`` the old graph (its operations and state row) is deleted in that same
    transaction, so the dataset is never left without a graph, and its base files afterwards; the
    replacement is audited (``graph.replace``, by ``by``). Returns the number of rows removed per table.
    """
    from ..access.audit import record
    from ..models import GraphOperationRow

    engine = engine_for(database_url)
    with engine.connect() as connection:
        dataset_id = _dataset_id(connection, dataset)
        old = connection.execute(
            sa.select(GraphStateRow.root_base, GraphStateRow.base_url).where(GraphStateRow.dataset_id == dataset_id)
        ).first()
        if old is not None and not replace:
            raise GraphError(f"dataset {dataset!r} already has a graph (use --replace)")
        root_base = 0 if old is None else _past_root_counters(connection, dataset_id, int(old[0] or 0), old[1])
        old_base = open_base(old[1]) if old is not None and old[1] else None
    try:
        base = GraphBase.build(supervoxels, edge_a, edge_b, area, active, boxes=boxes, root_base=root_base)
    except BaseError as error:
        raise GraphError(str(error)) from None
    if summary is not None:
        summary["roots"] = len(base.root_ids)  # the neurons it starts with (components of the active edges)
    url = write_base(base, database_url, f"dataset-{dataset_id}", home)
    removed = {}
    try:
        with engine.begin() as connection:
            old = connection.execute(
                sa.select(GraphStateRow.base_url).where(GraphStateRow.dataset_id == dataset_id).with_for_update()
            ).first()
            if old is not None:
                if not replace:
                    raise GraphError(f"dataset {dataset!r} already has a graph (use --replace)")
                for label, table in (
                    ("operations", GraphOperationRow),
                    ("edges", GraphEdgeRow),  # rows only of a graph ingested before bases
                    ("supervoxels", GraphSupervoxelRow),
                    ("graph", GraphStateRow),
                ):
                    removed[label] = connection.execute(sa.delete(table).where(table.dataset_id == dataset_id)).rowcount
                if old_base is not None:
                    removed["edges"] += old_base.edge_count
                    removed["supervoxels"] += old_base.supervoxel_count
                record(
                    connection,
                    user=by,
                    action="graph.replace",
                    dataset=dataset,
                    origin=origin,
                    detail={
                        "removed": removed,
                        "new": {k: v for k, v in (summary or {}).items() if isinstance(v, (int, str))},
                    },
                )
            connection.execute(
                sa.insert(GraphStateRow).values(dataset_id=dataset_id, last_seq=0, root_base=root_base, base_url=url)
            )
    except BaseException:
        discard_base(url)
        raise
    if old is not None:
        discard_base(old[0])
    forget_everywhere(database_url, dataset)
    return removed


def _past_root_counters(connection, dataset_id: int, root_base: int, base_url: str | None) -> int:
    """A root counter above every root id the dataset's current graph has given: its initial roots
    (at most one per supervoxel, counted from its own base) and every root its edits created. The
    replacing graph counts from there, so an old root id (in a link, a notebook, a cached mesh
    manifest) never names a different neuron of the new graph."""
    from ..models import GraphOperationRow
    from .ids import counter_of

    if base_url is not None:
        supervoxels = open_base(base_url).supervoxel_count
    else:  # a graph stored as rows (before bases)
        supervoxels = connection.scalar(
            sa.select(sa.func.count())
            .select_from(GraphSupervoxelRow)
            .where(GraphSupervoxelRow.dataset_id == dataset_id)
        )
    highest = root_base + int(supervoxels or 0)
    for (new_roots,) in connection.execute(
        sa.select(GraphOperationRow.new_root_ids).where(GraphOperationRow.dataset_id == dataset_id)
    ):
        for root in new_roots or []:
            highest = max(highest, counter_of(root))
    return highest
