"""The versioned supervoxel graph: merges, splits, undo/redo, lineage, time travel."""

from .graph import Graph, GraphNotIngested, OperationResult
from .index import GraphError
from .ingest import ingest_dataset, store_graph

__all__ = ["Graph", "GraphError", "GraphNotIngested", "OperationResult", "ingest_dataset", "store_graph"]
