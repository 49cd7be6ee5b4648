"""Edits as objects: ``Merge``, ``Split``, ``Undo``, ``Redo``, each planning its edge changes.

As in PyChunkedGraph's ``operation.py``, an edit is a value that knows how to plan itself against
the graph as it is, and how to be inverted: a committed edit (any kind) is inverted by ``Undo``
of its id, ``Undo(n)`` by ``Redo(n)``, ``Redo(n)`` by ``Undo(n)``. :meth:`Graph.apply` runs one
in a transaction (lock, catch up, plan, log, audit); ``Graph.merge`` and friends are shorthands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .index import GraphError, GraphIndex


@dataclass(frozen=True)
class Plan:
    """What an edit will do: edge changes ``(a, b, active)``, its logged parameters, and the log row
    of the operation it undoes or redoes (None for merges and splits)."""

    changes: tuple
    params: dict
    target_row: int | None = None


def _points(sources, sinks, coords) -> dict:
    params = {"source_ids": [int(s) for s in sources], "sink_ids": [int(s) for s in sinks]}
    if coords is not None:
        source_coords, sink_coords = coords
        params["source_coords"] = [[float(c) for c in p] for p in source_coords]
        params["sink_coords"] = [[float(c) for c in p] for p in sink_coords]
    return params


class Operation:
    """An edit of a dataset's graph. ``kind`` is its name in the operation log."""

    kind: ClassVar[str]

    def plan(self, index: GraphIndex, operations: dict[int, dict]) -> Plan:
        """The edge changes against ``index`` as it is now (``operations``: the log by id)."""
        raise NotImplementedError

    def invert(self, operation_id: int) -> Operation:
        """The edit that takes this one back, once it is committed as ``operation_id``."""
        return Undo(operation_id)


@dataclass(frozen=True)
class Merge(Operation):
    """Join the roots of two supervoxels; ``coords`` (the clicked points, voxels) are kept in the log."""

    kind: ClassVar[str] = "merge"
    sv_a: int
    sv_b: int
    coords: tuple | None = field(default=None, compare=False)

    def plan(self, index: GraphIndex, operations: dict[int, dict]) -> Plan:
        changes, _ = index.plan_merge(self.sv_a, self.sv_b)
        return Plan(changes, _points([self.sv_a], [self.sv_b], self.coords))


@dataclass(frozen=True)
class Split(Operation):
    """The minimum cut between sources and sinks of one root; ``coords`` = (source points, sink points)."""

    kind: ClassVar[str] = "split"
    sources: tuple
    sinks: tuple
    coords: tuple | None = field(default=None, compare=False)

    def plan(self, index: GraphIndex, operations: dict[int, dict]) -> Plan:
        changes, _, _ = index.plan_split(list(self.sources), list(self.sinks))
        return Plan(changes, _points(self.sources, self.sinks, self.coords))


@dataclass(frozen=True)
class _Replay(Operation):
    """Set the edges an earlier operation changed back (undo) or again (redo)."""

    operation_id: int
    inverse: ClassVar[bool]

    def plan(self, index: GraphIndex, operations: dict[int, dict]) -> Plan:
        target = operations.get(self.operation_id)
        if target is None:
            raise GraphError(f"no operation {self.operation_id}")
        wanted = [(int(a), int(b), bool(on) != self.inverse) for a, b, on in target["edge_changes"]]
        current = [index.edge_state(a, b) for a, b, _ in wanted]
        if all(bool(state) == on for state, (_, _, on) in zip(current, wanted)):
            raise GraphError(f"operation {self.operation_id} is already {'undone' if self.inverse else 'in effect'}")
        if any(state is None or bool(state) == on for state, (_, _, on) in zip(current, wanted)):
            raise GraphError(f"operation {self.operation_id} was partly changed by later edits; undo those first")
        return Plan(tuple(wanted), {"operation_id": self.operation_id}, target["row_id"])


@dataclass(frozen=True)
class Undo(_Replay):
    kind: ClassVar[str] = "undo"
    inverse: ClassVar[bool] = True

    def invert(self, operation_id: int | None = None) -> Operation:
        return Redo(self.operation_id)


@dataclass(frozen=True)
class Redo(_Replay):
    kind: ClassVar[str] = "redo"
    inverse: ClassVar[bool] = False

    def invert(self, operation_id: int | None = None) -> Operation:
        return Undo(self.operation_id)
