"""The versioned supervoxel graph: merges, splits, undo/redo, lineage, time travel."""
from .graph import Graph, GraphNotIngested, OperationResult, ingest
from .index import GraphError

__all__ = ["Graph", "GraphError", "GraphNotIngested", "OperationResult", "ingest"]
