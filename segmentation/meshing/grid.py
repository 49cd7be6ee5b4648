"""The grid of mesh chunks over a segmentation volume (voxels of its finest scale).

Each chunk is meshed from its own voxels plus one voxel more on each high face (clipped to the
volume), so the surfaces of neighbouring chunks meet instead of leaving a one-voxel gap.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

MIN_CHUNK = (128, 128, 64)  # at least this many voxels per mesh chunk: fewer, larger fragments
_NAME = re.compile(r"^(\d{1,7})_(\d{1,7})_(\d{1,7})$")


@dataclass(frozen=True)
class MeshGrid:
    lower: tuple[int, int, int]  # the volume's voxel offset
    upper: tuple[int, int, int]  # lower + size
    chunk: tuple[int, int, int]  # voxels per mesh chunk
    resolution: tuple[float, float, float]  # nm per voxel

    @classmethod
    def for_volume(cls, lower, size, underlying, resolution, chunk=None) -> MeshGrid:
        """A grid of whole storage chunks (at least :data:`MIN_CHUNK` voxels each) unless ``chunk`` is given."""
        lower = tuple(int(v) for v in lower)
        upper = tuple(int(a) + int(b) for a, b in zip(lower, size))
        if chunk is None:
            underlying = np.asarray(underlying, dtype=int)
            chunk = underlying * np.maximum(1, -(-np.asarray(MIN_CHUNK) // underlying))
        chunk = tuple(int(c) for c in chunk)
        if any(c <= 0 for c in chunk):
            raise ValueError(f"mesh chunk size must be positive, not {chunk}")
        return cls(lower, upper, chunk, tuple(float(r) for r in resolution))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Chunks along x, y and z."""
        return tuple(-(-(u - lo) // c) for lo, u, c in zip(self.lower, self.upper, self.chunk))

    def coords(self):
        """Every chunk's grid position, x fastest."""
        sx, sy, sz = self.shape
        for z, y, x in itertools.product(range(sz), range(sy), range(sx)):
            yield (x, y, z)

    def core(self, coord) -> tuple[np.ndarray, np.ndarray]:
        """[start, stop) voxels of a chunk."""
        start = np.asarray(self.lower) + np.asarray(coord) * np.asarray(self.chunk)
        return start, np.minimum(start + np.asarray(self.chunk), self.upper)

    def with_overlap(self, coord) -> tuple[np.ndarray, np.ndarray]:
        """[start, stop) voxels read to mesh a chunk: one voxel more on each high face."""
        start, stop = self.core(coord)
        return start, np.minimum(stop + 1, self.upper)

    @staticmethod
    def name(coord) -> str:
        return "_".join(str(int(c)) for c in coord)

    def parse(self, name: str) -> tuple[int, int, int] | None:
        """The grid position a chunk name stands for (None: not a chunk of this grid)."""
        match = _NAME.match(name)
        if not match:
            return None
        coord = tuple(int(v) for v in match.groups())
        return coord if all(c < s for c, s in zip(coord, self.shape)) else None

    def to_json(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "chunk": self.chunk, "resolution": self.resolution}

    @classmethod
    def from_json(cls, doc: dict) -> MeshGrid:
        return cls(
            tuple(int(v) for v in doc["lower"]),
            tuple(int(v) for v in doc["upper"]),
            tuple(int(v) for v in doc["chunk"]),
            tuple(float(v) for v in doc["resolution"]),
        )
