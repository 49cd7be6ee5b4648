"""The chunk grid of one scale of a precomputed volume: which chunk names exist, and where.

A chunk file name ``x0-x1_y0-y1_z0-z1`` is trusted by nothing downstream: the
live view sizes reads and decodes by the chunk, so a name that is not exactly
one cell of the scale's grid (``chunk_sizes[0]`` from ``voxel_offset``, the
last cell clipped at ``voxel_offset + size``) must be refused before any
storage is read or any buffer allocated. :meth:`ChunkGrid.locate` is that
check; it runs per request, so it works on a few Python ints only.

Sharded scales find a chunk by its grid position's compressed Morton code
(Neuroglancer's ``volume.md``), given by :meth:`ChunkGrid.morton_code`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .storage import CorruptStoredData

# A coordinate is at most 19 digits (below 2**63), so an absurd name costs no big-int parsing.
_COORD = r"(-?\d{1,19})"
_NAME = re.compile(rf"^{_COORD}-{_COORD}_{_COORD}-{_COORD}_{_COORD}-{_COORD}$")
# What the live view treats as a chunk request at all (a grid check then decides if it exists).
CHUNK_NAME_SHAPE = re.compile(r"^-?\d+--?\d+_-?\d+--?\d+_-?\d+--?\d+$")
_MAX_COORD = 2**62  # far beyond any real volume; keeps grid arithmetic in small ints


@dataclass(frozen=True)
class ChunkGrid:
    """``chunk`` × n cells from ``offset`` covering ``size`` voxels (x, y, z), as one scale lays out its chunks."""

    chunk: tuple[int, int, int]
    offset: tuple[int, int, int]
    size: tuple[int, int, int]

    @classmethod
    def from_scale(cls, scale: dict, key: str = "info") -> ChunkGrid:
        """The grid of a scale of an info file; an unusable scale is corrupt stored data (``key`` names it)."""
        try:
            chunk = _triple(scale["chunk_sizes"][0])
            offset = _triple(scale.get("voxel_offset", [0, 0, 0]))
            size = _triple(scale["size"])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise CorruptStoredData(key, f"scale {scale.get('key')!r} has no usable grid: {error}") from None
        if (
            min(chunk) < 1
            or min(size) < 1
            or max(map(abs, offset)) > _MAX_COORD
            or max(size) > _MAX_COORD
            or max(chunk) > _MAX_COORD
        ):
            raise CorruptStoredData(
                key, f"scale {scale.get('key')!r} has an impossible grid (chunk {chunk}, offset {offset}, size {size})"
            )
        return cls(chunk, offset, size)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of chunks along x, y, z."""
        return tuple(-(-s // c) for s, c in zip(self.size, self.chunk))

    def locate(self, name: str) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """(origin, shape) when ``name`` is exactly one chunk of this grid, else None.

        Exactly means canonical too: the name must be the one a writer gives that chunk
        (no leading zeros, no ``-0``), so one chunk has one name and one cache entry.
        """
        match = _NAME.match(name)
        if match is None:
            return None
        values = [int(v) for v in match.groups()]
        if "_".join(f"{values[i]}-{values[i + 1]}" for i in (0, 2, 4)) != name:
            return None
        origin, shape = [], []
        for axis in range(3):
            begin, end = values[2 * axis], values[2 * axis + 1]
            chunk, offset, size = self.chunk[axis], self.offset[axis], self.size[axis]
            if not offset <= begin < offset + size or (begin - offset) % chunk:
                return None
            if end != min(begin + chunk, offset + size):
                return None
            origin.append(begin)
            shape.append(end - begin)
        return tuple(origin), tuple(shape)

    def gridpoint(self, origin) -> tuple[int, int, int]:
        """Grid cell of a chunk origin (as returned by :meth:`locate`)."""
        return tuple((o - f) // c for o, f, c in zip(origin, self.offset, self.chunk))

    def name(self, gridpoint) -> str:
        """The file name of the chunk at ``gridpoint``."""
        parts = []
        for g, c, f, s in zip(gridpoint, self.chunk, self.offset, self.size):
            begin = f + g * c
            parts.append(f"{begin}-{min(begin + c, f + s)}")
        return "_".join(parts)

    def names(self):
        """Every chunk name of the grid, x fastest (for tests and tools; never per request)."""
        gx, gy, gz = self.shape
        for z in range(gz):
            for y in range(gy):
                for x in range(gx):
                    yield self.name((x, y, z))

    def morton_bits(self) -> tuple[int, int, int]:
        """Bits per axis of the compressed Morton code (enough for ``shape - 1``)."""
        return tuple((n - 1).bit_length() for n in self.shape)

    def morton_code(self, gridpoint) -> int:
        """Neuroglancer's compressed Morton code of a grid cell: the chunk id inside a sharded scale.

        Bit ``i`` of each axis is interleaved (x, y, z) only while that axis still needs
        bits, so small axes do not waste code space.
        """
        bits = self.morton_bits()
        if sum(bits) > 64:
            raise CorruptStoredData("info", f"a grid of {self.shape} chunks needs more than 64 Morton bits")
        code, out = 0, 0
        for i in range(max(bits)):
            for axis in range(3):
                if i < bits[axis]:
                    code |= ((gridpoint[axis] >> i) & 1) << out
                    out += 1
        return code

    def chunk_voxels(self) -> int:
        return self.chunk[0] * self.chunk[1] * self.chunk[2]


def _triple(values) -> tuple[int, int, int]:
    if len(values) != 3:
        raise ValueError(f"{values!r} is not three numbers")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or int(value) != value:
            raise ValueError(f"{value!r} is not an integer")
        out.append(int(value))
    return tuple(out)


def max_chunk_bytes(grid: ChunkGrid, scale: dict, data_type: str, num_channels: int = 1) -> int:
    """The most bytes one encoded chunk of this scale can sensibly take (a cap, not an estimate).

    Raw voxels × 4 covers every lossless encoding's worst case for real data and a
    noisy JPEG; compressed_segmentation's worst case (every voxel distinct, padded
    blocks, 32-bit indices plus a full table per block) is computed exactly. 64 KiB
    of slack covers headers of tiny chunks.
    """
    itemsize = np.dtype(data_type).itemsize
    voxels = grid.chunk_voxels() * num_channels
    cap = voxels * itemsize * 4
    block = scale.get("compressed_segmentation_block_size")
    if scale.get("encoding") == "compressed_segmentation" and block:
        block = _triple(block)
        if min(block) >= 1:
            blocks = 1
            for c, b in zip(grid.chunk, block):
                blocks *= -(-c // b)
            block_voxels = block[0] * block[1] * block[2]
            words_per_entry = 2 if itemsize == 8 else 1
            per_block = 2 + block_voxels + block_voxels * words_per_entry  # header, indices, table
            cap = max(cap, 4 * num_channels * (1 + blocks * per_block))
    return cap + 64 * 1024


_SHARD_FILE = re.compile(r"^[0-9a-f]{1,16}\.shard$")


_REMEMBERED_KEY_LENGTH = 128  # chunk and shard names are far shorter; longer keys (a client's) are not kept


class LayerKeys:
    """Which files under a layer's scale directories may exist: on-grid chunk names of unsharded
    scales, shard files of sharded ones. Anything else under a scale is answered 404 unread (a
    name like ``0-100000_0-100000_0-1000`` never reaches a store or a decoder); keys elsewhere
    (``info``, meshes, skeletons, segment properties) are the layer's own business."""

    _REMEMBERED = 65536  # answers of allows() kept (a layer's chunk names repeat; a client's inventions miss)

    def __init__(self, info: dict, key: str = "info"):
        self.scales = {}
        for scale in info.get("scales") or []:
            self.scales[str(scale.get("key"))] = (ChunkGrid.from_scale(scale, key), "sharding" in scale)
        self._allowed: dict[str, bool] = {}

    def under_scale(self, key: str) -> bool:
        return key.rpartition("/")[0] in self.scales

    def allows(self, key: str) -> bool:
        found = self._allowed.get(key)
        if found is None:
            found = self._allows(key)
            if len(key) <= _REMEMBERED_KEY_LENGTH and len(self._allowed) < self._REMEMBERED:
                self._allowed[key] = found
        return found

    def _allows(self, key: str) -> bool:
        scale, _, name = key.rpartition("/")
        if scale not in self.scales:
            return True
        grid, sharded = self.scales[scale]
        if sharded:
            return bool(_SHARD_FILE.match(name))
        return grid.locate(name) is not None
