"""Give a dataset its graph: supervoxels and adjacency from the volume, an initial agglomeration."""
from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from ..datasets import Datasets
from ..db import engine_for
from ..models import GraphEdgeRow, GraphStateRow, GraphSupervoxelRow
from .graph import Graph, _dataset_id
from .ids import LAYER_SHIFT, SUPERVOXEL_LAYER, supervoxel_ids
from .index import GraphError, GraphIndex
from .bulk import write_rows
from .region_graph import region_graph

BOX_COLUMNS = ("x0", "y0", "z0", "x1", "y1", "z1")


def as_supervoxel_ids(labels) -> np.ndarray:
    """Plain labels (1, 2, 3 ...) get the supervoxel layer; ids already in layer 1 are kept."""
    labels = np.asarray(labels, dtype=np.uint64)
    layers = labels >> np.uint64(LAYER_SHIFT)
    if np.all(layers == SUPERVOXEL_LAYER):
        return labels
    if np.all(layers == 0):
        return supervoxel_ids(labels)
    raise GraphError("labels mix plain ids and layered ids; a volume must use one or the other")


def ingest_dataset(database_url: str, dataset: str, agglomeration=None, progress: bool = True) -> dict:
    """Build and store the graph of ``dataset``'s segmentation.

    ``agglomeration`` is an optional (N, 2) array of label pairs whose edges
    start active (plain labels or supervoxel ids); without it every supervoxel
    starts as its own root.
    """
    layer = Datasets(database_url).get(dataset).layer("segmentation")
    plain_svs, a, b, area, boxes = region_graph(layer.url, progress=progress)
    supervoxels = as_supervoxel_ids(plain_svs)
    a, b = as_supervoxel_ids(a), as_supervoxel_ids(b)
    active = np.zeros(len(a), dtype=bool)
    if agglomeration is not None and len(agglomeration):
        pairs = np.asarray(agglomeration, dtype=np.uint64).reshape(-1, 2)
        pa, pb = as_supervoxel_ids(pairs[:, 0]), as_supervoxel_ids(pairs[:, 1])
        wanted = {(min(x, y), max(x, y)) for x, y in zip(pa.tolist(), pb.tolist())}
        active = np.array([(min(x, y), max(x, y)) in wanted for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        missing = len(wanted) - int(active.sum())
        if missing:
            raise GraphError(f"{missing} agglomeration pair(s) are not touching supervoxels of the volume")
    store_graph(database_url, dataset, supervoxels, a, b, area, active, boxes=boxes)
    return {"supervoxels": len(supervoxels), "edges": len(a), "active_edges": int(active.sum())}


def store_graph(database_url: str, dataset: str, supervoxels, edge_a, edge_b, area, active, boxes=None) -> None:
    """Write a dataset's supervoxels (with their voxel boxes, if known) and adjacency in one transaction."""
    engine = engine_for(database_url)
    supervoxels = np.asarray(supervoxels, dtype=np.uint64)
    GraphIndex(supervoxels, edge_a, edge_b, area, active)  # validates ids before anything is written
    with engine.begin() as connection:
        dataset_id = _dataset_id(connection, dataset)
        if connection.scalar(sa.select(GraphStateRow.dataset_id).where(GraphStateRow.dataset_id == dataset_id)):
            raise GraphError(f"dataset {dataset!r} already has a graph")
        connection.execute(sa.insert(GraphStateRow).values(dataset_id=dataset_id, last_seq=0))
        n = len(supervoxels)
        sv_columns = {"dataset_id": np.full(n, dataset_id, dtype=np.int32), "sv_id": supervoxels.astype(np.int64)}
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 6)
            sv_columns.update({name: boxes[:, k] for k, name in enumerate(BOX_COLUMNS)})
        write_rows(connection, GraphSupervoxelRow.__tablename__, sv_columns)
        a, b = np.asarray(edge_a, dtype=np.uint64), np.asarray(edge_b, dtype=np.uint64)
        write_rows(connection, GraphEdgeRow.__tablename__, {
            "dataset_id": np.full(len(a), dataset_id, dtype=np.int32),
            "sv_a": np.minimum(a, b).astype(np.int64),
            "sv_b": np.maximum(a, b).astype(np.int64),
            "area": np.asarray(area, dtype=np.float64),
            "initially_active": np.asarray(active, dtype=bool),
        })
    Graph.forget(database_url, dataset)
