"""The supervoxel graph of one dataset as a process reads it, with its full edit history.

Reads are array lookups: the adjacency (CSR), the edges' states and every supervoxel's root
come from the memory-mapped base (:mod:`segmentation.graph.base`), corrected by what edits
changed since (:mod:`segmentation.graph.changes`, kept per process and small). It knows nothing of SQL: an edit is
computed as an :class:`Edit` (edge changes + the new root ids), committed to
the database by :mod:`segmentation.graph.graph`, then applied here with
:meth:`GraphIndex.apply` — the same call that replays the operation log, so
every process ends in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fastremap
import numpy as np

from .. import budget
from ..errors import Invalid
from .base import BaseError, GraphBase, position_dtype, positions_of
from .changes import NEWEST, RootChanges
from .ids import ROOT_LAYER, counter_of, layer_of, root_id
from .joins import RootJoins

_BLOCK = 1 << 23  # supervoxels per step when a compaction walks every root


class GraphError(Invalid):
    """An edit or query that cannot be done (unknown id, illegal split...)."""


@dataclass(frozen=True)
class Edit:
    """What an operation changes, enough to replay it on any process.

    ``edge_changes`` are ``(sv_a, sv_b, active)``; the components that result
    among the touched roots get ``new_root_ids`` in order of their smallest
    supervoxel id.
    """

    edge_changes: tuple[tuple[int, int, bool], ...]
    new_root_ids: tuple[int, ...]
    # the components it made but the largest, as sorted supervoxel ids (segmentation.graph.pieces):
    # when given, replaying a split needs no graph search
    pieces: tuple[np.ndarray, ...] | None = None


@dataclass
class RootRecord:
    created_seq: int
    parents: tuple[int, ...] = ()
    children: list[int] = field(default_factory=list)
    retired_seq: int | None = None


class GraphIndex:
    """Supervoxels, adjacency, active edges and root history of one dataset: a base plus edits.

    The base (:class:`~segmentation.graph.base.GraphBase`, memory-mapped and shared between
    processes) is never written; what edits change lives here: the supervoxels splits gave new
    roots (:class:`~segmentation.graph.changes.RootChanges`) and their members, the roots merges
    joined (:class:`~segmentation.graph.joins.RootJoins`: a merge writes one pointer per root, not
    one entry per supervoxel), the lineage, edges switched on or off and edges merges added. No
    edit touches an array of the dataset's size, and a merge costs nothing per supervoxel.
    """

    def __init__(self, base: GraphBase):
        self.base = base
        n = base.supervoxel_count
        self._contiguous = bool(n) and int(base.supervoxels[-1]) - int(base.supervoxels[0]) == n - 1
        self._first = int(base.supervoxels[0]) if n else 0
        history = None if base.history_keys is None else (base.history_keys, base.history_roots)
        self._changes = RootChanges(n, base.seq, history, base.history_bitmap)
        self._edge_state: dict[int, bool] = {}  # edges switched since the base (and edges merges added)
        self._edge_state_arrays = None  # the same, as sorted arrays, built when a read needs them
        self._extra_edges: dict[tuple[int, int], int] = {}  # (lo, hi) positions -> edge number (>= m)
        self._extra_neighbors: dict[int, list[tuple[int, int]]] = {}
        self._planned = None  # (operation number, edge changes) -> components, see _resulting_components
        self.root_base = base.root_base
        self.next_root_counter = base.next_root_counter
        self._members: dict[int, np.ndarray] = {}  # roots splits made -> their members (positions, sorted)
        first_counter = counter_of(int(base.root_ids[0])) if len(base.root_ids) else base.next_root_counter
        self._joins = RootJoins(min(first_counter, base.root_base + 1), base.next_root_counter)  # roots merges made
        self._position_dtype = position_dtype(n)
        self.records: dict[int, RootRecord] = {}
        self.seq = base.seq

    @classmethod
    def from_arrays(cls, supervoxels, edge_a, edge_b, area, active, boxes=None, root_base: int = 0) -> GraphIndex:
        """An index over a base built in memory (scripts, tests)."""
        try:
            return cls(GraphBase.build(supervoxels, edge_a, edge_b, area, active, boxes=boxes, root_base=root_base))
        except BaseError as error:
            raise GraphError(str(error)) from None

    @property
    def sv_ids(self) -> np.ndarray:
        """Every supervoxel id, sorted (a position is an index into this)."""
        return self.base.supervoxels

    @property
    def boxes(self) -> np.ndarray | None:
        """[x0, y0, z0, x1, y1, z1) voxel box of each supervoxel, when the ingest recorded them."""
        return self.base.boxes

    # ---- ids ---------------------------------------------------------------
    def index_of(self, ids) -> np.ndarray:
        """Dense indices of supervoxel ids; unknown ids raise GraphError."""
        ids = np.asarray(ids, dtype=np.uint64).ravel()
        n = len(self.sv_ids)
        if n and self._contiguous:  # ids first..first+n-1: the index is a subtraction
            pos = (ids - np.uint64(self._first)).astype(np.int64)
            bad = (ids < np.uint64(self._first)) | (pos >= n)
            if bad.any():
                raise GraphError(f"unknown supervoxel id(s): {[int(x) for x in ids[bad][:5]]}")
            return pos
        try:
            return positions_of(self.sv_ids, ids)
        except BaseError as error:
            raise GraphError(str(error)) from None

    def has(self, supervoxel: int) -> bool:
        """Whether ``supervoxel`` is a supervoxel of this graph."""
        n = len(self.sv_ids)
        position = int(np.searchsorted(self.sv_ids, np.uint64(supervoxel))) if n else 0
        return position < n and int(self.sv_ids[position]) == int(supervoxel)

    def is_root(self, node: int) -> bool:
        return int(node) in self.records or self._base_root(node) is not None

    def _base_root(self, node: int) -> int | None:
        """Where the base lists root ``node`` (None: not a root of the base)."""
        ids = self.base.root_ids
        if not len(ids) or layer_of(node) != ROOT_LAYER:
            return None
        at = int(np.searchsorted(ids, np.uint64(node)))
        return at if at < len(ids) and int(ids[at]) == int(node) else None

    def record(self, root: int) -> RootRecord:
        root = int(root)
        if root not in self.records:
            if self._base_root(root) is None:
                raise GraphError(f"unknown root id {root}")
            self.records[root] = RootRecord(created_seq=0)  # a root made by an operation has a record
        return self.records[root]

    # ---- reads -------------------------------------------------------------
    def roots(self, svs, seq: int | None = None) -> np.ndarray:
        """Root of each supervoxel now, or after operation ``seq``."""
        return self.roots_by_index(self.index_of(svs), seq)

    def last_change(self, idx: np.ndarray) -> int:
        """The last operation that gave any of these supervoxels (dense indices) a new root: the one
        that made the newest of their roots (each operation that changes a root makes a new one)."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.newest_made(self.roots_by_index(idx)) if len(idx) else 0

    def newest_made(self, roots: np.ndarray) -> int:
        """The newest operation that made any of ``roots`` (0: all there at ingest)."""
        return int(self._joins.created(roots).max()) if len(roots) else 0

    def roots_by_index(self, idx: np.ndarray, seq: int | None = None) -> np.ndarray:
        """Like :meth:`roots`, for dense indices."""
        idx = np.asarray(idx, dtype=np.int64)
        roots = self.base.root_of[idx]  # a copy already (fancy indexing): corrected in place below
        if seq is not None and seq < self.base.seq:  # before the base: its history may hold any of them
            edited = np.ones(len(idx), dtype=bool)
        else:
            edited = self._changes.edited(idx)
        if edited.any():
            # a moment is asked as such even when it is the newest read here: an edit being applied
            # meanwhile must not show in it (the changes tell their own newest operation)
            found, changed, _ = self._changes.lookup(idx[edited], NEWEST if seq is None else seq)
            subset = roots[edited]
            subset[found] = changed[found]
            roots[edited] = subset
        roots = self._joins.resolve(roots, seq)  # then through the merges since
        return roots

    def members(self, root: int) -> np.ndarray:
        """Dense indices of a root's supervoxels, sorted (roots never change, so any time)."""
        root = int(root)
        if self._joins.is_joined(root):
            return self._joins.members(root, self._listed_members)
        return self._listed_members(root)

    def _listed_members(self, root: int) -> np.ndarray:
        """Members of a root that is not a merge's: a split made it (kept here) or the base lists it."""
        if root in self._members:
            return self._members[root].astype(np.int64)
        at = self._base_root(root)
        if at is None:
            raise GraphError(f"unknown root id {root}")
        start, stop = int(self.base.root_indptr[at]), int(self.base.root_indptr[at + 1])
        return np.asarray(self.base.root_members[start:stop], dtype=np.int64)

    def _first_member(self, root: int) -> int:
        """A root's smallest member position, without listing a merged root's members."""
        root = int(root)
        if self._joins.is_joined(root):
            return self._joins.first_member[root]
        if root in self._members:
            return int(self._members[root][0])
        at = self._base_root(root)
        if at is None:
            raise GraphError(f"unknown root id {root}")
        return int(self.base.root_members[int(self.base.root_indptr[at])])

    def leaves(self, root: int, bounds=None) -> np.ndarray:
        return self.sv_ids[self._members_within(root, bounds)]

    def active_edges(self, root: int, bounds=None) -> np.ndarray:
        """Active edges among a root's supervoxels (those touching ``bounds``), as (n, 2) supervoxel ids."""
        members = self._members_within(root, bounds)
        lo, hi, _ = self._active_edges_within(members)
        inside = np.isin(hi, members, assume_unique=False)
        lo, hi = lo[inside], hi[inside]
        order = np.lexsort((hi, lo))  # the same order whatever the storage (added edges sit apart until compaction)
        return np.stack([self.sv_ids[lo[order]], self.sv_ids[hi[order]]], axis=1).reshape(-1, 2)

    def _members_within(self, root: int, bounds=None) -> np.ndarray:
        """Sorted dense indices of a root's supervoxels whose boxes touch ``bounds`` ((x0, x1), (y0, y1), (z0, z1))."""
        members = np.sort(self.members(root))
        if bounds is not None:
            if self.boxes is None:
                raise GraphError("this graph was ingested without supervoxel boxes; bounds cannot be applied")
            (x0, x1), (y0, y1), (z0, z1) = bounds
            box = self.boxes[members]
            touching = (
                (box[:, 0] < x1)
                & (box[:, 3] > x0)
                & (box[:, 1] < y1)
                & (box[:, 4] > y0)
                & (box[:, 2] < z1)
                & (box[:, 5] > z0)
            )
            members = members[touching]
        return members

    def exists_at(self, root: int, seq: int) -> bool:
        rec = self.record(root)
        return rec.created_seq <= seq and (rec.retired_seq is None or rec.retired_seq > seq)

    # ---- edits -------------------------------------------------------------
    def plan_merge(self, sv_a: int, sv_b: int) -> tuple[tuple[tuple[int, int, bool], ...], list[int]]:
        """Edge changes of a merge and the roots it retires."""
        ra, rb = (int(r) for r in self.roots([sv_a, sv_b]))
        if ra == rb:
            raise GraphError(f"supervoxels {sv_a} and {sv_b} already belong to root {ra}")
        return ((int(sv_a), int(sv_b), True),), [ra, rb]

    def plan_split(self, sources, sinks):
        """Minimum cut (weighted by contact area) between sources and sinks of one root.

        Returns the edge changes, the retired root and the resulting components
        (lists of supervoxel ids: the sources' pieces, then the sinks', then any others).
        """
        sources = [int(s) for s in sources]
        sinks = [int(s) for s in sinks]
        if not sources or not sinks:
            raise GraphError("a split needs at least one source and one sink")
        both = set(sources) & set(sinks)
        if both:
            raise GraphError(f"supervoxel(s) {sorted(both)} are both source and sink")
        roots = {int(r) for r in self.roots(sources + sinks)}
        if len(roots) != 1:
            raise GraphError("sources and sinks must belong to the same root")
        (root,) = roots
        members = self.members(root)
        lo, hi, edge_ids = self._active_edges_within(members)
        src_idx, snk_idx = self.index_of(sources).tolist(), self.index_of(sinks).tolist()
        # Cut near the points first (as PyChunkedGraph cuts within a box around them); if the
        # rest of the neuron still joins the two sides, cut across the whole root instead.
        region = self._neighbourhood(members, lo, hi, src_idx + snk_idx, _LOCAL_CUT_NODES)
        for nodes in ([region] if len(region) < len(members) else []) + [members]:
            budget.check()  # the whole-root cut after a local one can take long on a huge neuron
            inside = np.isin(lo, nodes) & np.isin(hi, nodes) if len(nodes) < len(members) else slice(None)
            # which members are on the sources' side (an array over the members, not the dataset)
            in_source = np.zeros(len(members), dtype=bool)
            side = source_side(nodes, lo[inside], hi[inside], self._area(edge_ids)[inside], src_idx, snk_idx)
            in_source[np.searchsorted(members, side)] = True
            cut = np.zeros(len(lo), dtype=bool)
            cut[inside] = (
                in_source[np.searchsorted(members, lo[inside])] != in_source[np.searchsorted(members, hi[inside])]
            )
            labels = self._components(members, lo[~cut], hi[~cut])
            member_order = np.argsort(members, kind="stable")

            def label_of(nodes):
                return labels[member_order[np.searchsorted(members[member_order], nodes)]]

            source_labels = set(label_of(src_idx).tolist())
            sink_labels = set(label_of(snk_idx).tolist())
            if not source_labels & sink_labels:
                break
        else:
            raise GraphError("the cut would leave a source and a sink connected")
        changes = tuple((int(self.sv_ids[u]), int(self.sv_ids[v]), False) for u, v in zip(lo[cut], hi[cut]))
        components = [np.sort(c) for c in self._group(members, labels)]
        by_smallest = sorted(components, key=lambda c: int(c[0]))
        self._planned = ((self.seq, changes), ([root], by_smallest))  # what applying it will need

        def side(comp):  # sources' pieces, then sinks', then any others
            label = int(label_of([comp[0]])[0])
            return (0 if label in source_labels else 1 if label in sink_labels else 2, int(comp[0]))

        components.sort(key=side)
        return changes, root, [self.sv_ids[c].tolist() for c in components]

    def _neighbourhood(self, members, lo, hi, seeds, limit: int) -> np.ndarray:
        """Up to ``limit`` members nearest (in hops over active edges) to the seed supervoxels."""
        if len(members) <= limit:
            return members
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import breadth_first_order

        order = np.argsort(members, kind="stable")
        ordered = members[order]
        n = len(members)
        u = order[np.searchsorted(ordered, lo)]
        v = order[np.searchsorted(ordered, hi)]
        start = order[np.searchsorted(ordered, np.asarray(seeds, dtype=np.int64))]
        rows = np.concatenate([u, np.full(len(start), n)])
        cols = np.concatenate([v, start])
        graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
        visit = breadth_first_order(graph, n, directed=False, return_predecessors=False)
        return np.sort(members[visit[visit < n][:limit]])

    def plan_toggle(self, edge_changes) -> list[int]:
        """Roots touched by setting edges to the given states (undo/redo)."""
        return sorted({int(r) for a, b, _ in edge_changes for r in self.roots([a, b])})

    def edge_state(self, sv_a: int, sv_b: int) -> bool | None:
        k = self._edge_index(*self.index_of([sv_a, sv_b]).tolist())
        return None if k is None else bool(self._active(np.array([k]))[0])

    def count_components_after(self, edge_changes) -> int:
        """How many roots the touched roots become once ``edge_changes`` apply."""
        groups = self._join_groups(edge_changes)
        if groups is not None:
            return len(groups)
        return len(self._resulting_components(edge_changes)[1])

    def _join_groups(self, edge_changes) -> list[list[int]] | None:
        """For changes that only switch edges on: the touched roots grouped by the roots each group
        becomes, in order of their smallest supervoxel (None: some change switches an edge off)."""
        if not all(active for _, _, active in edge_changes):
            return None
        old_roots = self.plan_toggle(edge_changes)
        group = {root: root for root in old_roots}

        def find(root):
            while group[root] != root:
                group[root] = group[group[root]]
                root = group[root]
            return root

        for a, b, _ in edge_changes:
            ra, rb = (find(int(r)) for r in self.roots([a, b]))
            group[ra] = rb
        joined: dict[int, list[int]] = {}
        for root in old_roots:
            joined.setdefault(find(root), []).append(root)
        groups = list(joined.values())
        groups.sort(key=lambda roots: min(self._first_member(r) for r in roots))
        return groups

    def allocate_root_ids(self, count: int) -> tuple[int, ...]:
        return tuple(root_id(self.next_root_counter + i) for i in range(count))

    def compacted(self) -> GraphBase:
        """A base holding this index as it is now (see :mod:`segmentation.graph.compaction`): current
        roots, every root's members, the adjacency with the edges merges added, the edges' states
        and the history of root assignments. Arrays nothing changed are the old base's own."""
        base = self.base
        n = base.supervoxel_count
        root_of = np.array(base.root_of, dtype=np.uint64)
        positions, roots = self._changes.current()
        root_of[positions] = roots
        moved = []  # supervoxels whose root changed since the base (merges wrote no entry for them)
        for start in range(0, n, _BLOCK):
            block = slice(start, min(start + _BLOCK, n))
            root_of[block] = self._joins.resolve(root_of[block])
            moved.append(start + np.flatnonzero(root_of[block] != base.root_of[block]))
        moved = np.concatenate(moved) if moved else np.zeros(0, dtype=np.int64)
        history_keys, history_roots = self._changes.history(base.root_of, also=moved)
        # the members of roots splits made (those of roots merges made follow from the log's lineage)
        made = np.array(sorted(self._members), dtype=np.uint64)  # counters above every base root: stays sorted
        sizes = np.array([len(self._members[int(r)]) for r in made], dtype=np.int64)
        pos = position_dtype(n)
        root_members = np.concatenate(
            [np.asarray(base.root_members), *(self._members[int(r)].astype(pos) for r in made)]
        ).astype(pos, copy=False)
        root_indptr = np.concatenate([np.asarray(base.root_indptr), base.root_indptr[-1] + np.cumsum(sizes)])
        csr_indptr, csr_neighbors, csr_edges = base.csr_indptr, base.csr_neighbors, base.csr_edges
        area, active = base.area, base.active
        if self._extra_edges:
            csr_indptr, csr_neighbors, csr_edges = self._csr_with_extra_edges()
            extra = len(self._extra_edges)
            area = np.concatenate([np.asarray(base.area), np.zeros(extra, dtype=np.float32)])
            active = np.concatenate([np.asarray(base.active), np.zeros(extra, dtype=bool)])
        if self._edge_state:
            active = np.array(active, dtype=bool)
            numbers = np.fromiter(self._edge_state.keys(), dtype=np.int64, count=len(self._edge_state))
            active[numbers] = np.fromiter(self._edge_state.values(), dtype=bool, count=len(self._edge_state))
        return GraphBase(
            supervoxels=base.supervoxels,
            boxes=base.boxes,
            root_of=root_of,
            root_ids=np.concatenate([np.asarray(base.root_ids), made]),
            root_indptr=root_indptr,
            root_members=root_members,
            csr_indptr=csr_indptr,
            csr_neighbors=csr_neighbors,
            csr_edges=csr_edges,
            area=area,
            active=active,
            history_keys=history_keys,
            history_roots=history_roots,
            history_bitmap=self._changes.bitmap_of(history_keys),
            seq=self.seq,
            root_base=self.root_base,
            next_root_counter=self.next_root_counter,
        )

    def _csr_with_extra_edges(self):
        """The base's adjacency with the edges merges added inserted in place (rows stay sorted)."""
        base = self.base
        rows, tails, numbers = [], [], []
        for (lo, hi), k in self._extra_edges.items():
            rows += [lo, hi]
            tails += [hi, lo]
            numbers += [k, k]
        rows, tails, numbers = (np.array(x, dtype=np.int64) for x in (rows, tails, numbers))
        order = np.lexsort((tails, rows))
        rows, tails, numbers = rows[order], tails[order], numbers[order]
        indptr = base.csr_indptr
        at = np.array(
            [
                int(indptr[r]) + int(np.searchsorted(base.csr_neighbors[indptr[r] : indptr[r + 1]], t))
                for r, t in zip(rows.tolist(), tails.tolist())
            ],
            dtype=np.int64,
        )
        neighbors = np.insert(np.asarray(base.csr_neighbors), at, tails.astype(base.csr_neighbors.dtype))
        edge_dtype = position_dtype(base.edge_count + len(self._extra_edges))
        edges = np.insert(np.asarray(base.csr_edges).astype(edge_dtype, copy=False), at, numbers.astype(edge_dtype))
        added = np.bincount(rows, minlength=base.supervoxel_count)
        return np.asarray(indptr) + np.concatenate([[0], np.cumsum(added)]), neighbors, edges

    def fold(self, seq: int, old_roots, new_roots, joined: bool = False) -> None:
        """Record the lineage of operation ``seq``, already folded into a compacted base (its roots
        and edges are there; only who came from whom is kept here, and which roots a merge joined:
        ``joined``, for an operation that only switched edges on and left one root)."""
        old_roots, new_roots = [int(r) for r in old_roots], [int(r) for r in new_roots]
        if joined and len(new_roots) == 1:
            first = min(self._first_member(r) for r in old_roots)
            self._joins.join(old_roots, new_roots[0], seq, first)
        else:
            for root in new_roots:
                self._joins.made(root, seq)
            for root in old_roots:
                self._joins.cut(root)
        self._record_lineage(old_roots, new_roots, seq)

    def _record_lineage(self, old_roots, new_roots, seq: int) -> None:
        for root in old_roots:
            rec = self.record(root)
            rec.retired_seq = seq
            rec.children.extend(new_roots)
        for root in new_roots:
            self.records[root] = RootRecord(created_seq=seq, parents=tuple(old_roots))

    def apply(self, edit: Edit, seq: int) -> tuple[list[int], list[int]]:
        """Apply a committed edit as operation ``seq``; returns (retired roots, new roots)."""
        if seq != self.seq + 1:
            raise GraphError(f"operation {seq} applied out of order (at {self.seq})")
        new_roots = [int(r) for r in edit.new_root_ids]
        groups = self._join_groups(edit.edge_changes)
        if groups is not None and len(groups) == 1:  # a merge: its roots point to the new one, nothing more
            if len(new_roots) != 1:
                raise GraphError(f"operation {seq} yields 1 root but recorded {len(new_roots)}")
            (old_roots,) = groups
            old_roots = sorted(old_roots)
            first = min(self._first_member(r) for r in old_roots)
            self._set_edges(edit.edge_changes)
            self._joins.join(old_roots, new_roots[0], seq, first)
        else:  # a cut (or a merge leaving several roots): each component's supervoxels get the new root
            old_roots, components = self._resulting_components(edit.edge_changes, mutate=True, pieces=edit.pieces)
            if len(components) != len(new_roots):
                raise GraphError(f"operation {seq} yields {len(components)} roots but recorded {len(new_roots)}")
            for new_root, comp in zip(new_roots, components):
                self._joins.made(new_root, seq)  # first: a reader that finds the new root finds when it was made
                self._changes.add(comp, seq, new_root)
                self._members[new_root] = comp.astype(self._position_dtype)  # int32 below 2^31: half the memory
            for root in old_roots:
                self._joins.cut(root)
        self._record_lineage(old_roots, new_roots, seq)
        counters = [counter_of(r) for r in edit.new_root_ids]
        self.next_root_counter = max([self.next_root_counter, *(c + 1 for c in counters)])
        self.seq = seq
        return old_roots, list(edit.new_root_ids)

    # ---- internals ---------------------------------------------------------
    def planned_components(self, edge_changes) -> list[np.ndarray]:
        """The components (dense positions) the touched roots become once ``edge_changes`` apply."""
        return self._resulting_components(edge_changes)[1]

    def _resulting_components(self, edge_changes, mutate: bool = False, pieces=None):
        """Touched roots and the components (dense index arrays, by smallest sv) after the changes.

        An edit asks this twice (to count the new roots, then to apply them): the
        second call at the same operation number reuses the first answer. A replayed
        split brings its ``pieces`` (every component but the largest): no graph search then.
        """
        key = (self.seq, tuple(edge_changes))
        if self._planned is not None and self._planned[0] == key:
            result = self._planned[1]
        else:
            result = None if pieces is None else self._components_from_pieces(edge_changes, pieces)
            if result is None:
                result = self._compute_components(edge_changes)
            self._planned = (key, result)
        if mutate:
            self._set_edges(edge_changes)
        return result

    def _compute_components(self, edge_changes):
        old_roots = self.plan_toggle(edge_changes)
        if all(active for _, _, active in edge_changes):
            return old_roots, self._joined_components(edge_changes)
        members = np.concatenate([self.members(r) for r in old_roots])
        saved = self._set_edges(edge_changes)
        try:
            lo, hi, _ = self._active_edges_within(members)
            labels = self._components(members, lo, hi)
            components = self._group(members, labels)
        finally:
            for k, previous in reversed(saved):
                self._switch(k, previous)
        components = [np.sort(c, kind="stable") for c in components]
        components.sort(key=lambda c: int(c[0]))
        return old_roots, components

    def _components_from_pieces(self, edge_changes, pieces):
        """The components of a split from its stored pieces: they, and the rest of the touched roots'
        members. None when the pieces do not fit those members (then the graph is searched)."""
        old_roots = self.plan_toggle(edge_changes)
        members = np.sort(np.concatenate([self.members(r) for r in old_roots]), kind="stable")
        try:
            parts = [positions_of(self.sv_ids, ids, members.dtype) for ids in pieces]
        except BaseError:
            return None
        taken = np.concatenate(parts) if parts else np.zeros(0, dtype=members.dtype)
        at = np.minimum(np.searchsorted(members, taken), max(len(members) - 1, 0))
        if not len(members) or (members[at] != taken).any() or len(fastremap.unique(at)) != len(at):
            return None
        rest = np.ones(len(members), dtype=bool)
        rest[at] = False
        components = [np.sort(part, kind="stable") for part in parts if len(part)]
        if rest.any():
            components.append(members[rest])
        components.sort(key=lambda c: int(c[0]))
        return old_roots, components

    def _set_edges(self, edge_changes) -> list[tuple[int, bool]]:
        """Switch edges on or off (adding new ones); returns (edge, previous state) to undo it."""
        saved = []
        for a, b, active in edge_changes:
            i, j = self.index_of([a, b]).tolist()
            k = self._edge_index(i, j)
            if k is None:
                if not active:
                    raise GraphError(f"no edge between {a} and {b} to remove")
                k = self._add_edge(i, j)
            saved.append((k, bool(self._active(np.array([k]))[0])))
            self._switch(k, active)
        return saved

    def _switch(self, edge: int, active: bool) -> None:
        self._edge_state[int(edge)] = bool(active)
        self._edge_state_arrays = None

    def _active(self, edges: np.ndarray) -> np.ndarray:
        """Whether each edge (by number) is active now: the base's state unless an edit switched it."""
        edges = np.asarray(edges, dtype=np.int64)
        m = self.base.edge_count
        in_base = edges < m
        active = np.zeros(len(edges), dtype=bool)
        active[in_base] = self.base.active[edges[in_base]]
        if self._edge_state:
            if self._edge_state_arrays is None:
                numbers = np.fromiter(self._edge_state.keys(), dtype=np.int64, count=len(self._edge_state))
                states = np.fromiter(self._edge_state.values(), dtype=bool, count=len(self._edge_state))
                order = np.argsort(numbers)
                self._edge_state_arrays = (numbers[order], states[order])
            numbers, states = self._edge_state_arrays
            at = np.minimum(np.searchsorted(numbers, edges), len(numbers) - 1)
            switched = numbers[at] == edges
            active[switched] = states[at[switched]]
        return active

    def _area(self, edges: np.ndarray) -> np.ndarray:
        """Contact area of each edge (edges merges added have none)."""
        edges = np.asarray(edges, dtype=np.int64)
        in_base = edges < self.base.edge_count
        area = np.zeros(len(edges), dtype=np.float32)
        area[in_base] = self.base.area[edges[in_base]]
        return area

    def _joined_components(self, edge_changes) -> list[np.ndarray]:
        """Only edges switched on: the result is the touched roots joined by them (no graph search)."""
        # members are sorted runs: timsort ("stable") merges them in linear time
        return [
            np.sort(np.concatenate([self.members(root) for root in roots]), kind="stable")
            for roots in self._join_groups(edge_changes)
        ]

    def _edge_index(self, i: int, j: int) -> int | None:
        """The number of the edge between positions i and j, or None."""
        start, stop = int(self.base.csr_indptr[i]), int(self.base.csr_indptr[i + 1])
        row = self.base.csr_neighbors[start:stop]  # sorted
        at = int(np.searchsorted(row, j))
        if at < len(row) and int(row[at]) == j:
            return int(self.base.csr_edges[start + at])
        return self._extra_edges.get((min(i, j), max(i, j)))

    def _add_edge(self, i: int, j: int) -> int:
        """A new edge (a merge of supervoxels that do not touch), numbered after the base's edges."""
        lo, hi = min(i, j), max(i, j)
        k = self.base.edge_count + len(self._extra_edges)
        self._extra_edges[(lo, hi)] = k
        self._extra_neighbors.setdefault(lo, []).append((hi, k))
        self._extra_neighbors.setdefault(hi, []).append((lo, k))
        self._switch(k, False)
        return k

    def _active_edges_within(self, members: np.ndarray):
        """Active edges among ``members`` (each once): lo, hi dense indices and edge ids."""
        members = np.asarray(members, dtype=np.int64)
        indptr = self.base.csr_indptr
        starts = indptr[members]
        counts = indptr[members + 1] - starts
        total = int(counts.sum())
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        positions = offsets + np.arange(total)
        heads = np.repeat(members, counts)
        tails = np.asarray(self.base.csr_neighbors[positions], dtype=np.int64)
        edges = np.asarray(self.base.csr_edges[positions], dtype=np.int64)
        if self._extra_neighbors:
            extra = [(m, t, k) for m in members.tolist() for t, k in self._extra_neighbors.get(m, ())]
            if extra:
                h, t, k = (np.array(x, dtype=np.int64) for x in zip(*extra))
                heads, tails, edges = (np.concatenate(p) for p in ((heads, h), (tails, t), (edges, k)))
        keep = heads < tails
        heads, tails, edges = heads[keep], tails[keep], edges[keep]
        keep = self._active(edges)
        return heads[keep], tails[keep], edges[keep]

    def _components(self, members: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Component label of each member over the given edges (labels in member order)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(members)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(members, kind="stable")
        ordered = members[order]
        rows, cols = order[np.searchsorted(ordered, lo)], order[np.searchsorted(ordered, hi)]
        graph = coo_matrix((np.ones(len(lo), dtype=np.int8), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        return labels

    @staticmethod
    def _group(members: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        return [members[part] for part in np.split(order, bounds)]


def source_side(members, lo, hi, area, sources, sinks) -> np.ndarray:
    """Supervoxels (dense indices) on the sources' side of a minimum cut weighted by contact area.

    Small subgraphs use networkx's minimum_cut; large ones scipy's Dinic max-flow
    (compiled; networkx takes seconds at 100k supervoxels), with areas rounded to
    integers. Both give a minimum cut; tests check they agree on its weight.
    """
    capacity = np.maximum(area, 1.0)
    if len(members) <= _NETWORKX_CUT_MAX_NODES:
        import networkx as nx  # only here: a search or a read never needs it

        graph = nx.DiGraph()
        graph.add_nodes_from(members.tolist())
        for u, v, c in zip(lo.tolist(), hi.tolist(), capacity.tolist()):
            graph.add_edge(u, v, capacity=c)
            graph.add_edge(v, u, capacity=c)
        for s in sources:
            graph.add_edge("source", s)  # no capacity attribute = infinite
        for t in sinks:
            graph.add_edge(t, "sink")
        _, (side, _) = nx.minimum_cut(graph, "source", "sink")
        return np.array([n for n in side if n != "source"], dtype=np.int64)
    return _scipy_source_side(members, lo, hi, capacity, sources, sinks)


_NETWORKX_CUT_MAX_NODES = 2000
_LOCAL_CUT_NODES = 20000  # supervoxels around the points a split tries first


def _scipy_source_side(members, lo, hi, capacity, sources, sinks) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    order = np.argsort(members, kind="stable")
    ordered = members[order]

    def local(nodes):
        return order[np.searchsorted(ordered, np.asarray(nodes, dtype=np.int64))]

    m = len(members)
    source, sink = m, m + 1
    scale = min(1.0, 2**29 / max(float(capacity.sum()), 1.0))  # integer capacities; flows fit int32
    weights = np.maximum(np.round(capacity * scale), 1).astype(np.int64)
    infinite = int(min(weights.sum() + 1, 2**31 - 1))
    u, v = local(lo), local(hi)
    s_nodes, t_nodes = local(sources), local(sinks)
    rows = np.concatenate([u, v, np.full(len(s_nodes), source), t_nodes])
    cols = np.concatenate([v, u, s_nodes, np.full(len(t_nodes), sink)])
    caps = np.concatenate([weights, weights, np.full(len(s_nodes) + len(t_nodes), infinite)]).astype(np.int32)
    graph = csr_matrix((caps, (rows, cols)), shape=(m + 2, m + 2))
    graph.sum_duplicates()
    flow = maximum_flow(graph, source, sink, method="dinic").flow
    residual = (graph - flow).tocsr()
    residual.data[residual.data < 0] = 0
    residual.eliminate_zeros()
    reached = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    reached = reached[reached < m]
    return members[reached]
