"""Roots that merges joined: a merge costs what its roots' history costs, not what its neurons weigh.

A merge (any edit that only switches edges on and leaves one root) gives every supervoxel of the
roots it joins a new root. Writing that down per supervoxel costs time and memory in proportion to
the neurons' size, in every process that applies or replays it. Here it is written per *root*
instead: each joined root points forward to the root it became, at the operation that joined it.
A supervoxel's root is then found in two steps: the root its own entries give (the base, or the
last split that cut it, see :mod:`segmentation.graph.changes`), followed forward through the joins.

- **Now** is one gather: every root joined since keeps a pointer straight to the root it is part
  of now (updated for all of a root's absorbed roots at each join, which costs the number of roots
  a neuron absorbed, not its supervoxels). The pointers and each root's creating operation live
  in arrays indexed by the root's counter, allocated as zero pages (memory only where written).
- **At operation T** a root is followed through the joins made at or before T; each step is one of
  a chain of increasing operations, so chains are walked by doubling jumps (memoised), never one
  join at a time.
- **Members** of a joined root are the members of the roots it joined: listed when asked (a split,
  a mesh manifest), cached for the roots asked most recently.

A split still writes its pieces per supervoxel: it must, since its pieces are new sets. A root a
split retires stops collecting absorbed roots: its supervoxels all have entries of their own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .ids import counter_of

_COUNTER_MASK = np.uint64((1 << 56) - 1)
_HEADROOM = 1 << 16  # counters allocated past the highest known, before the arrays must grow
MEMBERS_CACHED = 8_000_000  # supervoxel positions kept for recently listed joined roots


class RootJoins:
    """Forward pointers of joined roots, each root's creating operation, and joined roots' members."""

    def __init__(self, first_counter: int, next_counter: int):
        self._offset = int(first_counter)  # counter of the lowest root: entry 0 of the arrays
        size = max(int(next_counter) - self._offset, 0) + _HEADROOM
        self._now = np.zeros(size, dtype=np.uint64)  # the root each joined root is part of now (0: itself)
        self._created = np.zeros(size, dtype=np.uint32)  # the operation that made each root (0: the ingest)
        self._forward: dict[int, tuple[int, int]] = {}  # joined root -> (operation, the root it became)
        self._jumps: dict[int, list[tuple[int, int]]] = {}  # root -> its 1st, 2nd, 4th … successor (memo)
        self._absorbed: dict[int, list[int]] = {}  # root now current -> the roots that now point to it
        self.joined_from: dict[int, tuple[int, ...]] = {}  # joined root -> the roots it joined
        self.first_member: dict[int, int] = {}  # joined root -> its smallest member position
        self._members = OrderedDict()  # joined root -> members (most recently listed last)
        self._members_held = 0
        self._lock = threading.Lock()  # the memos above (jumps, members) are shared by request threads

    def is_joined(self, root: int) -> bool:
        return int(root) in self.joined_from

    # ---- recording ----------------------------------------------------------
    def made(self, root: int, seq: int) -> None:
        """Root ``root`` was made by operation ``seq`` (any kind)."""
        at = self._slot_of(root)
        self._created[at] = seq

    def join(self, old_roots, new_root: int, seq: int, first_member: int) -> None:
        """Operation ``seq`` joined ``old_roots`` into ``new_root``."""
        new_root = int(new_root)
        self.made(new_root, seq)
        absorbed = []
        for old in (int(r) for r in old_roots):
            self._forward[old] = (seq, new_root)
            absorbed.append(old)
            absorbed.extend(self._absorbed.pop(old, ()))
        self._absorbed[new_root] = absorbed
        self.joined_from[new_root] = tuple(int(r) for r in old_roots)
        self.first_member[new_root] = int(first_member)
        # last: a reader that finds the new root by these pointers finds all of the above
        self._now[[self._slot_of(r) for r in absorbed]] = new_root

    def cut(self, root: int) -> None:
        """A split retired ``root``: every supervoxel it had gets an entry of its own."""
        self._absorbed.pop(int(root), None)

    def _slot_of(self, root: int) -> int:
        at = counter_of(root) - self._offset
        if at < 0:
            raise ValueError(f"root {root} is older than every root of the base")
        if at >= len(self._now):
            self._grow(at + _HEADROOM)
        return at

    def _grow(self, size: int) -> None:
        """Longer arrays (zero pages again); only written entries are copied."""
        size = max(size, 2 * len(self._now))
        grown = {}
        for name in ("_created", "_now"):
            old = getattr(self, name)
            grown[name] = np.zeros(size, dtype=old.dtype)
            written = np.flatnonzero(old)
            grown[name][written] = old[written]
        # operations first: a reader that sees the longer pointer array then reads the longer one of these
        self._created = grown["_created"]
        self._now = grown["_now"]

    # ---- lookups -------------------------------------------------------------
    def _slots(self, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Array index of each root and whether it falls within the arrays."""
        at = (np.asarray(roots, dtype=np.uint64) & _COUNTER_MASK).astype(np.int64) - self._offset
        inside = (at >= 0) & (at < len(self._now))
        return np.where(inside, at, 0), inside

    def resolve(self, roots: np.ndarray, seq: int | None = None) -> np.ndarray:
        """Each root followed through the joins made by operation ``seq`` (None: all of them).

        The root a joined root is part of now answers for any ``seq`` at or after the operation
        that made it (every join along the way is older); older moments walk the chain. Readers do
        not lock: an edit records the operation of its new root before pointing roots to it, so a
        lookup made while it is applied sees either the old root or the new one with its operation.
        """
        roots = np.asarray(roots, dtype=np.uint64)
        if not self._forward or not len(roots):
            return roots
        at, inside = self._slots(roots)
        later = np.where(inside, self._now[at], 0).astype(np.uint64)
        joined = later != 0
        if not joined.any():
            return roots
        if seq is not None:
            made = self.created(later[joined])
            older = np.flatnonzero(joined)[made > seq]  # made after ``seq``: follow the chain to ``seq``
            joined[older] = False
            if len(older):
                unique, inverse = np.unique(roots[older], return_inverse=True)
                with self._lock:  # the jump memo is shared by the request threads
                    walked = np.array([self._follow(int(r), seq) for r in unique.tolist()], dtype=np.uint64)
                later[older] = walked[inverse]
                joined[older] = True
        return np.where(joined, later, roots)

    def created(self, roots: np.ndarray) -> np.ndarray:
        """The operation that made each root (0: there at ingest)."""
        created = self._created
        at, inside = self._slots(roots)
        inside &= at < len(created)
        return np.where(inside, created[np.where(inside, at, 0)], 0).astype(np.int64)

    def _follow(self, root: int, seq: int) -> int:
        """``root`` after the joins of operations up to ``seq`` (joins along a chain only get later)."""
        while True:
            step = self._jump(root, 0)
            if step is None or step[0] > seq:
                return root
            k = 1
            while (longer := self._jump(root, k)) is not None and longer[0] <= seq:
                step, k = longer, k + 1
            root = step[1]

    def _jump(self, root: int, k: int) -> tuple[int, int] | None:
        """The 2^k-th root after ``root`` along its joins, with the operation that made it (None: the
        chain is shorter so far). Known jumps never change: a root joins once."""
        jumps = self._jumps.setdefault(root, [])
        while len(jumps) <= k:
            if not jumps:
                step = self._forward.get(root)
            else:
                mid = jumps[-1]
                step = self._jump(mid[1], len(jumps) - 1)
            if step is None:
                return None
            jumps.append(step)
        return jumps[k]

    # ---- members -------------------------------------------------------------
    def members(self, root: int, explicit) -> np.ndarray:
        """Sorted member positions of joined root ``root``; ``explicit(r)`` gives those of any other root."""
        root = int(root)
        with self._lock:
            if root in self._members:
                self._members.move_to_end(root)
                return self._members[root]
        parts, stack = [], [root]
        while stack:
            node = stack.pop()
            cached = self._members.get(node)
            if cached is not None:
                parts.append(cached)
            elif node in self.joined_from:
                stack.extend(self.joined_from[node])
            else:
                parts.append(explicit(node))
        # sorted runs: timsort ("stable") merges them
        members = np.sort(np.concatenate(parts), kind="stable") if parts else np.zeros(0, dtype=np.int64)
        members.flags.writeable = False  # shared by every caller until dropped
        with self._lock:
            if root not in self._members:
                self._members[root] = members
                self._members_held += len(members)
            while self._members_held > MEMBERS_CACHED and len(self._members) > 1:
                _, dropped = self._members.popitem(last=False)
                self._members_held -= len(dropped)
        return members
