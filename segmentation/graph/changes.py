"""Root assignments made by splits since the base: what each process keeps of the graph in memory.

A split (any operation that switches an edge off, or a merge leaving several roots) gives the
supervoxels of each component it makes a new root. (A merge gives its roots a new root instead:
:mod:`segmentation.graph.joins`.) This records
those assignments as ``(position, operation) → root`` so that both questions the graph is
asked stay one or two binary searches: the root of a supervoxel now (its newest entry) and
after operation ``seq`` (its newest entry at or before ``seq``); a supervoxel without an
entry still has its base root.

Each ``add`` makes a *slot*: one (root, operation) pair, numbered in the order operations are
applied. An entry is one integer, ``position << 32 | slot``: sorted, a position's entries follow
each other oldest first, and the root and operation are looked up by slot, so runs are plain
sorted integer arrays (no root array to carry along when merging). Entries are kept in sorted
runs, merged as in a log-structured merge tree (a new run is folded into the one before it while
it is at least half that size), so an edit costs time in proportion to what it changed and a
lookup in the past searches a logarithmic number of runs (runs stop growing at :data:`MAX_RUN`
entries, so no edit pays for a huge merge). "Now" needs no search: a dense array gives each
supervoxel its current slot (0 for never edited). It is allocated as zero pages, which the
operating system backs with memory only where an edit wrote, so its cost follows the
supervoxels edits touched, not the dataset's size. Past lookups search only the supervoxels
changed since the moment asked.
"""

from __future__ import annotations

import fastremap
import numpy as np

SEQ_BITS = 32
_SEQ_MASK = np.uint64((1 << SEQ_BITS) - 1)
NEWEST = (1 << SEQ_BITS) - 1  # "now": later than any operation
# runs are not merged past this many entries: an edit never waits for a merge of millions of
# entries (a few runs more to search in the past instead; compaction folds them all)
MAX_RUN = 1 << 21


class RootChanges:
    """``(position, seq) → root`` entries of one graph since its base, with fast lookups."""

    def __init__(self, supervoxel_count: int, base_seq: int = 0, base_history=None, base_bitmap=None):
        self.supervoxel_count = supervoxel_count
        self._runs: list[np.ndarray] = []  # sorted position << 32 | slot keys, oldest run first
        # a compacted base's history (memory-mapped): searched for moments before the base
        self._base_seq = base_seq
        self._base_history = base_history if base_history is not None and len(base_history[0]) else None
        self._base_bitmap = base_bitmap  # which positions that history lists (None: search them all)
        # now: each edited position's slot (0: never edited); a slot is one (root, operation) an edit made
        self._slot: np.ndarray | None = None
        self._slot_root = np.zeros(1, dtype=np.uint64)
        self._slot_seq = np.zeros(1, dtype=np.int64)
        self._slots = 1
        self.entries = 0

    def add(self, positions: np.ndarray, seq: int, root: int) -> None:
        """``positions`` (sorted) got root ``root`` by operation ``seq``."""
        if not len(positions):
            return
        if not 0 < seq < NEWEST:
            raise ValueError(f"operation number {seq} is out of range")
        if self._slot is None:
            # zero pages cost nothing until written: memory grows with the positions edits touch
            self._slot = np.zeros(self.supervoxel_count, dtype=np.int32)
        if self._slots == len(self._slot_root):
            self._slot_root = np.concatenate([self._slot_root, np.zeros(len(self._slot_root), dtype=np.uint64)])
            self._slot_seq = np.concatenate([self._slot_seq, np.zeros(len(self._slot_seq), dtype=np.int64)])
        # readers do not lock: what they read first (the slot count, the list of runs) is published
        # last, so a lookup made meanwhile sees this edit whole or not at all
        slot = self._slots
        self._slot_root[slot], self._slot_seq[slot] = root, seq
        self._slots = slot + 1
        self._slot[positions] = slot
        keys = (np.asarray(positions, dtype=np.uint64) << np.uint64(SEQ_BITS)) | np.uint64(slot)
        runs = [*self._runs, keys]  # a new list: a reader keeps iterating the one it took
        self.entries += len(keys)
        while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]) and len(runs[-2]) + len(runs[-1]) <= MAX_RUN:
            # two sorted runs: timsort merges them in linear time, galloping through the long
            # stretches an edit's positions (a neuron's supervoxels) make
            merged = np.concatenate(runs[-2:])
            merged.sort(kind="stable")
            runs[-2:] = [merged]
        self._runs = runs

    def _as_history(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slot keys as (position << 32 | operation, root): the form a base's history is stored in."""
        slots = (keys & _SEQ_MASK).astype(np.int64)
        positions = keys >> np.uint64(SEQ_BITS)
        seqs = self._slot_seq[slots].astype(np.uint64)
        return (positions << np.uint64(SEQ_BITS)) | seqs, self._slot_root[slots]

    def history(self, base_root_of: np.ndarray, also=None) -> tuple[np.ndarray, np.ndarray]:
        """Every entry, the base's history included, as one sorted (keys, roots) pair, with an entry at
        operation 0 (the base's root) for each position edited here, or listed in ``also`` (those merges
        moved), that the base's history lacks: what a compacted base keeps for time travel to before it."""
        runs = [self._as_history(keys) for keys in self._runs]
        if self._base_history is not None:
            runs.insert(0, self._base_history)
        empty = np.zeros(0, dtype=np.uint64)
        keys = np.concatenate([empty, *(np.asarray(k) for k, _ in runs)])
        roots = np.concatenate([empty, *(np.asarray(r) for _, r in runs)])
        moved = [k >> np.uint64(SEQ_BITS) for k in self._runs]
        if also is not None and len(also):
            moved.append(np.asarray(also, dtype=np.uint64))
        edited = fastremap.unique(np.concatenate(moved)) if moved else None
        if edited is not None and len(edited):
            if self._base_history is not None:
                base_keys = self._base_history[0]
                at = np.minimum(np.searchsorted(base_keys, edited << np.uint64(SEQ_BITS)), len(base_keys) - 1)
                edited = edited[(base_keys[at] >> np.uint64(SEQ_BITS)) != edited]
            keys = np.concatenate([keys, edited << np.uint64(SEQ_BITS)])
            roots = np.concatenate([roots, np.asarray(base_root_of[edited.astype(np.int64)], dtype=np.uint64)])
        order = np.argsort(keys, kind="stable")
        return keys[order], roots[order]

    def bitmap_of(self, keys: np.ndarray) -> np.ndarray:
        """One bit per position: set for the positions ``keys`` (history keys) list."""
        bitmap = np.zeros((self.supervoxel_count + 7) // 8, dtype=np.uint8)
        positions = fastremap.unique((keys >> np.uint64(SEQ_BITS)).astype(np.int64))
        byte = positions >> 3
        if len(positions):
            starts = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
            bitmap[byte[starts]] |= np.bitwise_or.reduceat((1 << (positions & 7)).astype(np.uint8), starts)
        return bitmap

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, root now) of every position edited here."""
        if self._slot is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        positions = np.flatnonzero(self._slot)
        return positions, self._slot_root[self._slot[positions]]

    def _in_base_history(self, positions) -> np.ndarray:
        """Which positions the base's history lists (all, for a base without its bitmap)."""
        if self._base_bitmap is None:
            return np.ones(len(positions), dtype=bool)
        at = np.asarray(positions, dtype=np.int64)
        return (self._base_bitmap[at >> 3] >> (at & 7).astype(np.uint8)) & 1 == 1

    def edited(self, positions: np.ndarray) -> np.ndarray:
        """Which of ``positions`` have any entry (no search)."""
        if self._slot is None:
            return np.zeros(len(positions), dtype=bool)
        return self._slot[positions] != 0

    def lookup(self, positions: np.ndarray, seq: int = NEWEST) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each position, its newest entry at or before operation ``seq``.

        Returns (found, root, operation) arrays; where ``found`` is False the base root holds.
        """
        before_base = self._base_history is not None and seq < self._base_seq
        if self._slot is None and not before_base:
            empty = np.zeros(len(positions), dtype=np.uint64)
            return np.zeros(len(positions), dtype=bool), empty, empty.astype(np.int64)
        slots = self._slot[positions] if self._slot is not None else np.zeros(len(positions), dtype=np.int32)
        if seq >= NEWEST or seq >= self._slot_seq[self._slots - 1] and not before_base:  # now: one gather
            return slots != 0, self._slot_root[slots], self._slot_seq[slots]
        if before_base:  # any position the base's history lists may have changed since then
            past = self._in_base_history(positions)
        else:
            past = slots != 0
            past[past] = self._slot_seq[slots[past]] > seq  # only these changed since ``seq``: search the history
        found, roots, seqs = slots != 0, self._slot_root[slots], self._slot_seq[slots]
        if before_base:  # every entry made here is later than the base, so later than ``seq``
            found[:] = False
        if past.any():
            f, r, s = self._search(np.asarray(positions)[past], seq)
            found[past], roots[past], seqs[past] = f, r, s
        return found, roots, seqs

    def _search(self, positions, seq: int):
        """The history's newest entry at or before ``seq`` for each position (searched in sorted order):
        the runs made here first, then, for positions they do not answer, the base's history (older
        than every run)."""
        positions = np.asarray(positions, dtype=np.uint64)
        order = np.argsort(positions, kind="stable")  # sorted needles: each search starts where the last ended
        positions = positions[order]
        found = np.zeros(len(positions), dtype=bool)
        roots = np.zeros(len(positions), dtype=np.uint64)
        seqs = np.zeros(len(positions), dtype=np.int64)
        # the newest slot made by operation ``seq`` or before (slots are numbered in operation order)
        last_slot = int(np.searchsorted(self._slot_seq[1 : self._slots], max(seq, 0), side="right"))
        runs = self._runs  # the list of now (an edit publishes a new one)
        if runs and last_slot > 0:
            wanted = (positions << np.uint64(SEQ_BITS)) | np.uint64(last_slot)
            best = np.zeros(len(positions), dtype=np.uint64)  # the best key found (0: none yet)
            for keys in runs:
                at = np.searchsorted(keys, wanted, side="right") - 1
                ok = at >= 0
                key = keys[np.maximum(at, 0)]
                ok &= (key >> np.uint64(SEQ_BITS)) == positions
                better = ok & (key > best)
                best[better] = key[better]
                found |= ok
            slots = (best[found] & _SEQ_MASK).astype(np.int64)
            roots[found], seqs[found] = self._slot_root[slots], self._slot_seq[slots]
        if self._base_history is not None and not found.all():
            rest = ~found
            base_keys, base_roots = self._base_history
            wanted = (positions[rest] << np.uint64(SEQ_BITS)) | np.uint64(max(min(seq, self._base_seq), 0))
            at = np.searchsorted(base_keys, wanted, side="right") - 1
            ok = at >= 0
            at = np.maximum(at, 0)
            key = np.asarray(base_keys[at])
            ok &= (key >> np.uint64(SEQ_BITS)) == positions[rest]
            found[rest] = ok
            roots[rest] = np.where(ok, base_roots[at], 0)
            seqs[rest] = np.where(ok, (key & _SEQ_MASK).astype(np.int64), 0)
        result = np.empty_like(found), np.empty_like(roots), np.empty_like(seqs)
        result[0][order], result[1][order], result[2][order] = found, roots, seqs
        return result
