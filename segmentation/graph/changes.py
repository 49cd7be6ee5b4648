"""Root assignments made by edits since the base: what each process keeps of the graph in memory.

Every operation gives the supervoxels of the components it makes a new root. This records
those assignments as ``(position, operation) → root`` so that both questions the graph is
asked stay one or two binary searches: the root of a supervoxel now (its newest entry) and
after operation ``seq`` (its newest entry at or before ``seq``); a supervoxel without an
entry still has its base root.

Entries are kept in sorted runs, merged as in a log-structured merge tree (a new run is
folded into the one before it while it is at least half that size), so an edit costs time
in proportion to what it changed and a lookup searches a logarithmic number of runs. A
bitmap of the supervoxels that have entries (one bit each: 12 MB at 10^8 supervoxels,
allocated at the first edit) lets a lookup skip the runs for supervoxels never edited —
most of them.
"""

from __future__ import annotations

import numpy as np

SEQ_BITS = 32
_SEQ_MASK = np.uint64((1 << SEQ_BITS) - 1)
NEWEST = (1 << SEQ_BITS) - 1  # "now": later than any operation


class RootChanges:
    """``(position, seq) → root`` entries of one graph since its base, with fast lookups."""

    def __init__(self, supervoxel_count: int):
        self.supervoxel_count = supervoxel_count
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (keys sorted, roots), oldest first
        self._edited: np.ndarray | None = None  # bitmap: which positions have entries
        self.entries = 0

    def add(self, positions: np.ndarray, seq: int, root: int) -> None:
        """``positions`` (sorted) got root ``root`` by operation ``seq``."""
        if not len(positions):
            return
        if not 0 < seq < NEWEST:
            raise ValueError(f"operation number {seq} is out of range")
        positions = np.asarray(positions, dtype=np.uint64)
        keys = (positions << np.uint64(SEQ_BITS)) | np.uint64(seq)
        self._runs.append((keys, np.full(len(keys), root, dtype=np.uint64)))
        self.entries += len(keys)
        if self._edited is None:
            self._edited = np.zeros((self.supervoxel_count + 7) // 8, dtype=np.uint8)
        bits = positions.astype(np.int64)  # sorted: the bits of one byte are neighbours
        byte = bits >> 3
        starts = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
        self._edited[byte[starts]] |= np.bitwise_or.reduceat((1 << (bits & 7)).astype(np.uint8), starts)
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (k1, r1), (k2, r2) = self._runs[-2], self._runs[-1]
            keys = np.concatenate([k1, k2])
            order = np.argsort(keys, kind="stable")  # two sorted runs: timsort merges them in linear time
            self._runs[-2:] = [(keys[order], np.concatenate([r1, r2])[order])]

    def edited(self, positions: np.ndarray) -> np.ndarray:
        """Which of ``positions`` have any entry (a bitmap test, no search)."""
        if self._edited is None:
            return np.zeros(len(positions), dtype=bool)
        positions = np.asarray(positions, dtype=np.int64)
        return (self._edited[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1 == 1

    def lookup(self, positions: np.ndarray, seq: int = NEWEST) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each position, its newest entry at or before operation ``seq``.

        Returns (found, root, operation) arrays; where ``found`` is False the base root holds.
        """
        positions = np.asarray(positions, dtype=np.uint64)
        wanted = (positions << np.uint64(SEQ_BITS)) | np.uint64(min(max(seq, 0), NEWEST))
        best = np.zeros(len(positions), dtype=np.uint64)  # the best key found (0: none yet)
        roots = np.zeros(len(positions), dtype=np.uint64)
        found = np.zeros(len(positions), dtype=bool)
        for keys, run_roots in self._runs:
            at = np.searchsorted(keys, wanted, side="right") - 1
            ok = at >= 0
            at = np.maximum(at, 0)
            key = keys[at]
            ok &= (key >> np.uint64(SEQ_BITS)) == positions
            better = ok & (~found | (key > best))
            best[better], roots[better] = key[better], run_roots[at[better]]
            found |= ok
        return found, roots, (best & _SEQ_MASK).astype(np.int64)
