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
from .region_graph import region_graph

_BATCH = 50_000


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
        columns = ("x0", "y0", "z0", "x1", "y1", "z1")
        sv_rows = [
            {"dataset_id": dataset_id, "sv_id": int(s),
             **(dict(zip(columns, (int(v) for v in boxes[i]))) if boxes is not None else {})}
            for i, s in enumerate(supervoxels)
        ]
        for start in range(0, len(sv_rows), _BATCH):
            connection.execute(sa.insert(GraphSupervoxelRow), sv_rows[start:start + _BATCH])
        a, b = np.asarray(edge_a, dtype=np.uint64), np.asarray(edge_b, dtype=np.uint64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        edge_rows = [
            {"dataset_id": dataset_id, "sv_a": int(x), "sv_b": int(y), "area": float(w), "initially_active": bool(on)}
            for x, y, w, on in zip(lo, hi, np.asarray(area), np.asarray(active))
        ]
        for start in range(0, len(edge_rows), _BATCH):
            connection.execute(sa.insert(GraphEdgeRow), edge_rows[start:start + _BATCH])
    Graph.forget(database_url, dataset)
