"""Compaction: fold the operation log into a new base, so that what each process keeps in memory
(and replays when it starts) stays small however long proofreading goes on.

``compact`` opens the graph as of operation S, writes a base holding it (current roots, the
members of every root there has been but those merges made, the adjacency with the edges merges
added, the edges' states) plus the history of root assignments up to S, and points the database at it. Readers
and writers go on meanwhile: edits after S are still in the log, and every process replays
them on the new base when it next syncs (it switches at its next read). Nothing is lost: the
log keeps every operation; the base is only a faster way to start.

Time travel to before S reads the history stored in the new base (the old base is not kept):
"root of supervoxel s at moment T" is then one search in that history, or the base's current
root for supervoxels no operation ever touched, followed through the merges made up to T. Merges
are not written per supervoxel (:mod:`segmentation.graph.joins`): which roots each one joined
comes from the log, which every process reads when it opens the graph, so the history lists a
supervoxel a merge moved once, with the root it had in the old base.
"""

from __future__ import annotations

from .graph import Graph


def compact(database_url: str, dataset: str, *, by: str = "system", origin: str = "") -> dict:
    """Write a new base folding in every operation so far and switch the graph to it (see
    :meth:`Graph.compact`)."""
    return Graph.open(database_url, dataset).compact(by=by, origin=origin)
