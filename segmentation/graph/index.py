"""The in-memory supervoxel graph of one dataset, with its full edit history.

This is what makes reads fast: numpy arrays for the adjacency (CSR), which
edges are active, every supervoxel's current root, and an append-only history
of root assignments for time travel. It knows nothing of SQL: an edit is
computed as an :class:`Edit` (edge changes + the new root ids), committed to
the database by :mod:`segmentation.graph.graph`, then applied here with
:meth:`GraphIndex.apply` — the same call that replays the operation log, so
every process ends in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .. import budget
from ..errors import Invalid
from .ids import root_id

_SEQ_BITS = 32


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


@dataclass
class RootRecord:
    created_seq: int
    parents: tuple[int, ...] = ()
    children: list[int] = field(default_factory=list)
    retired_seq: int | None = None


class GraphIndex:
    """Supervoxels, adjacency, active edges and root history of one dataset."""

    def __init__(self, supervoxels, edge_a, edge_b, area, active, boxes=None, root_base: int = 0):
        sv = np.asarray(supervoxels, dtype=np.uint64)
        order = np.argsort(sv, kind="stable")
        self.sv_ids = sv[order]
        # [x0, y0, z0, x1, y1, z1) voxel box of each supervoxel, when the ingest recorded them
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.int32).reshape(-1, 6)[order]
        if len(self.sv_ids) and np.any(np.diff(self.sv_ids) == 0):
            raise GraphError("duplicate supervoxel ids")
        n = len(self.sv_ids)
        self._contiguous = bool(n) and int(self.sv_ids[-1] - self.sv_ids[0]) == n - 1
        a = self.index_of(np.asarray(edge_a, dtype=np.uint64))
        b = self.index_of(np.asarray(edge_b, dtype=np.uint64))
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keys = lo.astype(np.int64) * n + hi
        order = np.argsort(keys, kind="stable")
        self._edge_keys = keys[order]
        self.edge_lo, self.edge_hi = lo[order], hi[order]
        self.area = np.asarray(area, dtype=np.float32)[order]
        self.active = np.asarray(active, dtype=bool)[order].copy()
        self._build_csr()
        self._extra_edges: dict[tuple[int, int], int] = {}
        self._extra_neighbors: dict[int, list[tuple[int, int]]] = {}
        self._planned = None  # (operation number, edge changes) -> components, see _resulting_components

        labels = self._components(np.arange(n), self.edge_lo[self.active], self.edge_hi[self.active])
        ranks = _rank_by_smallest_member(labels)
        # root counters start after ``root_base``: a re-ingested graph never reuses its predecessor's ids
        self.root_base = int(root_base)
        self.root_of = (
            np.array([root_id(self.root_base + r + 1) for r in range(ranks.max() + 1)], dtype=np.uint64)[ranks]
            if n
            else np.zeros(0, dtype=np.uint64)
        )
        self.initial_root_count = int(ranks.max() + 1) if n else 0
        self.next_root_counter = self.root_base + self.initial_root_count + 1
        self._initial_order = np.argsort(self.root_of, kind="stable")
        self._initial_sorted = self.root_of[self._initial_order]
        self._members: dict[int, np.ndarray] = {}
        self.records: dict[int, RootRecord] = {}
        self.seq = 0
        self._history = [(np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64), self.root_of.copy())]
        self._last_change = np.zeros(n, dtype=np.int64)  # operation that last gave each supervoxel a root
        self._history_keys = None

    # ---- ids ---------------------------------------------------------------
    def index_of(self, ids) -> np.ndarray:
        """Dense indices of supervoxel ids; unknown ids raise GraphError."""
        ids = np.asarray(ids, dtype=np.uint64).ravel()
        n = len(self.sv_ids)
        if n and self._contiguous:  # ids first..first+n-1: the index is a subtraction
            pos = (ids - self.sv_ids[0]).astype(np.int64)
            bad = (ids < self.sv_ids[0]) | (pos >= n)
        else:
            pos = np.minimum(np.searchsorted(self.sv_ids, ids), max(n - 1, 0)).astype(np.int64)
            bad = self.sv_ids[pos] != ids if n else np.ones(len(ids), dtype=bool)
        if bad.any():
            raise GraphError(f"unknown supervoxel id(s): {[int(x) for x in ids[bad][:5]]}")
        return pos

    def has(self, supervoxel: int) -> bool:
        """Whether ``supervoxel`` is a supervoxel of this graph."""
        n = len(self.sv_ids)
        position = int(np.searchsorted(self.sv_ids, np.uint64(supervoxel))) if n else 0
        return position < n and int(self.sv_ids[position]) == int(supervoxel)

    def is_root(self, node: int) -> bool:
        return node in self.records or self._is_initial(node)

    def _is_initial(self, node: int) -> bool:
        from .ids import LAYER_SHIFT, ROOT_LAYER

        counter = int(node) & ((1 << LAYER_SHIFT) - 1)
        return (
            int(node) >> LAYER_SHIFT == ROOT_LAYER
            and self.root_base < counter <= self.root_base + self.initial_root_count
        )

    def record(self, root: int) -> RootRecord:
        root = int(root)
        if root not in self.records:
            if not self._is_initial(root):
                raise GraphError(f"unknown root id {root}")
            self.records[root] = RootRecord(created_seq=0)
        return self.records[root]

    # ---- reads -------------------------------------------------------------
    def roots(self, svs, seq: int | None = None) -> np.ndarray:
        """Root of each supervoxel now, or after operation ``seq``."""
        return self.roots_by_index(self.index_of(svs), seq)

    def last_change(self, idx: np.ndarray) -> int:
        """The last operation that gave any of these supervoxels (dense indices) a new root."""
        return int(self._last_change[idx].max()) if len(idx) else 0

    def roots_by_index(self, idx: np.ndarray, seq: int | None = None) -> np.ndarray:
        """Like :meth:`roots`, for dense indices."""
        roots = self.root_of[idx]
        if seq is None or seq >= self.seq:
            return roots
        changed = self._last_change[idx] > seq  # only these need the history
        if changed.any():
            _, _, h_root, keys = self._history_arrays()
            query = (idx[changed] << _SEQ_BITS) | max(seq, 0)
            roots[changed] = h_root[np.searchsorted(keys, query, side="right") - 1]
        return roots

    def members(self, root: int) -> np.ndarray:
        """Dense indices of a root's supervoxels (roots never change, so any time)."""
        root = int(root)
        if root in self._members:
            return self._members[root]
        if not self._is_initial(root):
            raise GraphError(f"unknown root id {root}")
        lo = np.searchsorted(self._initial_sorted, np.uint64(root), side="left")
        hi = np.searchsorted(self._initial_sorted, np.uint64(root), side="right")
        return self._initial_order[lo:hi]

    def leaves(self, root: int, bounds=None) -> np.ndarray:
        return self.sv_ids[self._members_within(root, bounds)]

    def active_edges(self, root: int, bounds=None) -> np.ndarray:
        """Active edges among a root's supervoxels (those touching ``bounds``), as (n, 2) supervoxel ids."""
        members = self._members_within(root, bounds)
        lo, hi, _ = self._active_edges_within(members)
        inside = np.isin(hi, members, assume_unique=False)
        lo, hi = lo[inside], hi[inside]
        return np.stack([self.sv_ids[lo], self.sv_ids[hi]], axis=1).reshape(-1, 2)

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
            in_source = np.zeros(len(self.sv_ids), dtype=bool)
            in_source[source_side(nodes, lo[inside], hi[inside], self.area[edge_ids][inside], src_idx, snk_idx)] = True
            cut = np.zeros(len(lo), dtype=bool)
            cut[inside] = in_source[lo[inside]] != in_source[hi[inside]]
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
        return None if k is None else bool(self.active[k])

    def count_components_after(self, edge_changes) -> int:
        """How many roots the touched roots become once ``edge_changes`` apply."""
        return len(self._resulting_components(edge_changes)[1])

    def allocate_root_ids(self, count: int) -> tuple[int, ...]:
        return tuple(root_id(self.next_root_counter + i) for i in range(count))

    def apply(self, edit: Edit, seq: int) -> tuple[list[int], list[int]]:
        """Apply a committed edit as operation ``seq``; returns (retired roots, new roots)."""
        if seq != self.seq + 1:
            raise GraphError(f"operation {seq} applied out of order (at {self.seq})")
        old_roots, components = self._resulting_components(edit.edge_changes, mutate=True)
        if len(components) != len(edit.new_root_ids):
            raise GraphError(f"operation {seq} yields {len(components)} roots but recorded {len(edit.new_root_ids)}")
        for root in old_roots:
            rec = self.record(root)
            rec.retired_seq = seq
            rec.children.extend(edit.new_root_ids)
        for new_root, comp in zip(edit.new_root_ids, components):
            self.root_of[comp] = np.uint64(new_root)
            self._last_change[comp] = seq
            self._members[new_root] = comp
            self.records[new_root] = RootRecord(created_seq=seq, parents=tuple(old_roots))
            self._history.append((comp, np.full(len(comp), seq, dtype=np.int64), self.root_of[comp].copy()))
        self._history_keys = None
        counters = [r & ((1 << 56) - 1) for r in edit.new_root_ids]
        self.next_root_counter = max([self.next_root_counter, *(c + 1 for c in counters)])
        self.seq = seq
        return old_roots, list(edit.new_root_ids)

    # ---- internals ---------------------------------------------------------
    def _resulting_components(self, edge_changes, mutate: bool = False):
        """Touched roots and the components (dense index arrays, by smallest sv) after the changes.

        An edit asks this twice (to count the new roots, then to apply them): the
        second call at the same operation number reuses the first answer.
        """
        key = (self.seq, tuple(edge_changes))
        if self._planned is not None and self._planned[0] == key:
            result = self._planned[1]
        else:
            result = self._compute_components(edge_changes)
            self._planned = (key, result)
        if mutate:
            self._set_edges(edge_changes)
        return result

    def _compute_components(self, edge_changes):
        old_roots = self.plan_toggle(edge_changes)
        if all(active for _, _, active in edge_changes):
            return old_roots, self._joined_components(edge_changes, old_roots)
        members = np.concatenate([self.members(r) for r in old_roots])
        saved = self._set_edges(edge_changes)
        try:
            lo, hi, _ = self._active_edges_within(members)
            labels = self._components(members, lo, hi)
            components = self._group(members, labels)
        finally:
            for k, previous in reversed(saved):
                self.active[k] = previous
        components = [np.sort(c, kind="stable") for c in components]
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
                k = self._add_edge(i, j)  # replaces self.active: index it only afterwards
            saved.append((k, bool(self.active[k])))
            self.active[k] = active
        return saved

    def _joined_components(self, edge_changes, old_roots) -> list[np.ndarray]:
        """Only edges switched on: the result is the touched roots joined by them (no graph search)."""
        group = {root: root for root in old_roots}

        def find(root):
            while group[root] != root:
                group[root] = group[group[root]]
                root = group[root]
            return root

        for a, b, _ in edge_changes:
            ra, rb = (find(int(r)) for r in self.roots([a, b]))
            group[ra] = rb
        joined: dict[int, list[np.ndarray]] = {}
        for root in old_roots:
            joined.setdefault(find(root), []).append(self.members(root))
        # members are sorted runs: timsort ("stable") merges them in linear time
        components = [np.sort(np.concatenate(parts), kind="stable") for parts in joined.values()]
        components.sort(key=lambda c: int(c[0]))
        return components

    def _build_csr(self):
        n = len(self.sv_ids)
        m = len(self.edge_lo)
        heads = np.concatenate([self.edge_lo, self.edge_hi])
        tails = np.concatenate([self.edge_hi, self.edge_lo])
        edge_ids = np.concatenate([np.arange(m), np.arange(m)])
        order = np.argsort(heads, kind="stable")
        self._csr_neighbors = tails[order]
        self._csr_edges = edge_ids[order]
        self._csr_indptr = np.concatenate([[0], np.cumsum(np.bincount(heads, minlength=n))]).astype(np.int64)

    def _edge_index(self, i: int, j: int) -> int | None:
        lo, hi = min(i, j), max(i, j)
        key = lo * len(self.sv_ids) + hi
        pos = int(np.searchsorted(self._edge_keys, key))
        if pos < len(self._edge_keys) and self._edge_keys[pos] == key:
            return pos
        return self._extra_edges.get((lo, hi))

    def _add_edge(self, i: int, j: int) -> int:
        """A new edge (a merge of non-adjacent supervoxels); kept outside the CSR."""
        lo, hi = min(i, j), max(i, j)
        k = len(self.active)
        self.active = np.append(self.active, False)
        self.area = np.append(self.area, np.float32(0))
        self.edge_lo = np.append(self.edge_lo, lo)
        self.edge_hi = np.append(self.edge_hi, hi)
        self._extra_edges[(lo, hi)] = k
        self._extra_neighbors.setdefault(lo, []).append((hi, k))
        self._extra_neighbors.setdefault(hi, []).append((lo, k))
        return k

    def _active_edges_within(self, members: np.ndarray):
        """Active edges among ``members`` (each once): lo, hi dense indices and edge ids."""
        starts = self._csr_indptr[members]
        counts = self._csr_indptr[members + 1] - starts
        total = int(counts.sum())
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        positions = offsets + np.arange(total)
        heads = np.repeat(members, counts)
        tails = self._csr_neighbors[positions]
        edges = self._csr_edges[positions]
        if self._extra_neighbors:
            extra = [(m, t, k) for m in members.tolist() for t, k in self._extra_neighbors.get(m, ())]
            if extra:
                h, t, k = (np.array(x, dtype=np.int64) for x in zip(*extra))
                heads, tails, edges = (np.concatenate(p) for p in ((heads, h), (tails, t), (edges, k)))
        keep = self.active[edges] & (heads < tails)
        return heads[keep], tails[keep], edges[keep]

    def _components(self, members: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Component label of each member over the given edges (labels in member order)."""
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

    def _history_arrays(self):
        if self._history_keys is None:
            h_idx = np.concatenate([h[0] for h in self._history])
            h_seq = np.concatenate([h[1] for h in self._history])
            h_root = np.concatenate([h[2] for h in self._history])
            keys = (h_idx << _SEQ_BITS) | h_seq
            order = np.argsort(keys, kind="stable")
            self._history_keys = (h_idx[order], h_seq[order], h_root[order], keys[order])
        return self._history_keys


def source_side(members, lo, hi, area, sources, sinks) -> np.ndarray:
    """Supervoxels (dense indices) on the sources' side of a minimum cut weighted by contact area.

    Small subgraphs use networkx's minimum_cut; large ones scipy's Dinic max-flow
    (compiled; networkx takes seconds at 100k supervoxels), with areas rounded to
    integers. Both give a minimum cut; tests check they agree on its weight.
    """
    capacity = np.maximum(area, 1.0)
    if len(members) <= _NETWORKX_CUT_MAX_NODES:
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


def _rank_by_smallest_member(labels: np.ndarray) -> np.ndarray:
    """Relabel components 0..k-1 in order of their smallest member index."""
    if len(labels) == 0:
        return labels
    smallest = np.full(labels.max() + 1, len(labels), dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(len(labels)))
    rank = np.empty_like(smallest)
    rank[np.argsort(smallest, kind="stable")] = np.arange(len(smallest))
    return rank[labels]
