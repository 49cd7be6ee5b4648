"""Read chunks of Neuroglancer's sharded precomputed format without trusting the shard.

The format (``neuroglancer_uint64_sharded_v1``, see Neuroglancer's ``sharded.md``):
a chunk id is hashed (after ``preshift_bits``) to a shard file and a minishard in
it; the shard file starts with a fixed index of ``2**minishard_bits`` (start, end)
pairs locating each minishard index, and a minishard index lists (chunk id, data
offset, data size) for its chunks, delta-encoded as a ``[3, n]`` uint64 array.

Every one of those numbers is stored data. :class:`ShardReader` checks each
offset and length against the shard's size and against caps derived from the
scale (what one chunk, and one minishard's list of chunks, can possibly take)
*before* reading or allocating; anything inconsistent raises
:class:`~segmentation.storage.CorruptStoredData`. Reads go through a
:class:`~segmentation.storage.LayerStore` (``size`` + ``get_range``), so local
and remote layers are read alike, one small range per step: the 16-byte shard
index entry, the minishard index, the chunk. Shard sizes and decoded minishard
indexes are kept in a small LRU bounded in bytes.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .chunk_grid import ChunkGrid
from .storage import CorruptStoredData, LayerStore, inflate

try:  # the C extension when installed; CloudVolume ships a pure-Python twin with the same API
    import mmh3 as _mmh3
except ImportError:  # pragma: no cover - depends on the environment
    from cloudvolume.datasource.precomputed import mmh3 as _mmh3

_U64 = 2**64
_ENTRY = 24  # bytes of one minishard index entry (id, offset, size as uint64)
_MAX_MINISHARD_INDEX = 64 * 2**20  # absolute ceiling, whatever the scale allows
_GZIP_SLACK = 1024  # gzip header/trailer and stored-block overhead on top of a raw cap


def murmurhash3_x86_128_low64(value: int) -> int:
    """Low 64 bits of MurmurHash3_x86_128 (seed 0) of ``value`` as 8 little-endian bytes (the spec's hash)."""
    return int(_mmh3.hash64(value.to_bytes(8, "little"), 0, False)[0]) % _U64


@dataclass(frozen=True)
class ShardingSpec:
    """A scale's ``sharding`` object, checked once."""

    preshift_bits: int
    hash: str
    minishard_bits: int
    shard_bits: int
    minishard_index_encoding: str
    data_encoding: str

    @classmethod
    def from_dict(cls, spec: dict, key: str = "info") -> ShardingSpec:
        if not isinstance(spec, dict) or spec.get("@type") != "neuroglancer_uint64_sharded_v1":
            raise CorruptStoredData(key, f"unknown sharding {spec!r}")
        try:
            values = {name: spec[name] for name in ("preshift_bits", "minishard_bits", "shard_bits", "hash")}
        except KeyError as error:
            raise CorruptStoredData(key, f"sharding lacks {error}") from None
        bits = [values[name] for name in ("preshift_bits", "minishard_bits", "shard_bits")]
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 64 for b in bits) or sum(bits) > 64:
            raise CorruptStoredData(key, f"sharding bits {bits} are not within 64 bits")
        if values["hash"] not in ("identity", "murmurhash3_x86_128"):
            raise CorruptStoredData(key, f"sharding hash {values['hash']!r} is not identity or murmurhash3_x86_128")
        encodings = [spec.get(name, "raw") for name in ("minishard_index_encoding", "data_encoding")]
        if not all(e in ("raw", "gzip") for e in encodings):
            raise CorruptStoredData(key, f"sharding encodings {encodings} are not raw or gzip")
        return cls(*bits[:1], values["hash"], bits[1], bits[2], *encodings)

    def hashed(self, chunk_id: int) -> int:
        shifted = chunk_id >> self.preshift_bits
        return shifted if self.hash == "identity" else murmurhash3_x86_128_low64(shifted)

    def location(self, chunk_id: int) -> tuple[str, int]:
        """(shard file name, minishard number) holding ``chunk_id``."""
        hashed = self.hashed(chunk_id)
        minishard = hashed & ((1 << self.minishard_bits) - 1)
        shard = (hashed >> self.minishard_bits) & ((1 << self.shard_bits) - 1)
        digits = -(-self.shard_bits // 4)
        return f"{shard:0{digits}x}.shard", minishard

    @property
    def index_bytes(self) -> int:
        return 16 << self.minishard_bits


class BytesLRU:
    """A thread-safe LRU whose bound is the total size of its values (as the caller measures them)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def discard(self, matches) -> None:
        """Drop every entry whose key ``matches`` (a predicate)."""
        with self._lock:
            for key in [k for k in self._items if matches(k)]:
                self._bytes -= self._items.pop(key)[1]

    @property
    def nbytes(self) -> int:
        return self._bytes


INDEX_CACHE = BytesLRU(32 * 2**20)  # shared by every reader: shard sizes and minishard indexes
_reader_ids = itertools.count()


@dataclass(frozen=True)
class _Minishard:
    ids: np.ndarray  # chunk ids (uint64), in index order
    starts: np.ndarray  # absolute byte offsets in the shard (int64)
    ends: np.ndarray
    ids_sorted: bool  # every writer we know sorts them: then a binary search finds one

    def find(self, chunk_id: int) -> int | None:
        """Position of ``chunk_id`` in the index (the first, as Neuroglancer's linear search finds)."""
        if self.ids_sorted:
            i = int(np.searchsorted(self.ids, np.uint64(chunk_id)))
            return i if i < len(self.ids) and int(self.ids[i]) == chunk_id else None
        hits = np.flatnonzero(self.ids == np.uint64(chunk_id))
        return int(hits[0]) if len(hits) else None

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.starts.nbytes + self.ends.nbytes + 200


class ShardReader:
    """Encoded chunks of one sharded scale, by chunk id, read through a LayerStore.

    ``max_chunk_bytes`` caps one chunk's decoded data (see ``chunk_grid.max_chunk_bytes``);
    ``grid`` bounds how many chunks a minishard can list.
    """

    def __init__(
        self,
        store: LayerStore,
        directory: str,
        spec: ShardingSpec,
        grid: ChunkGrid,
        max_chunk_bytes: int,
        cache: BytesLRU | None = None,
    ):
        self.store = store
        self.directory = directory
        self.spec = spec
        self.grid = grid
        self.max_chunk_bytes = max_chunk_bytes
        self.max_minishard_index_bytes = _ENTRY * _max_minishard_entries(spec, grid)
        self.cache = INDEX_CACHE if cache is None else cache
        self._id = next(_reader_ids)  # cache keys of this reader only (no layer shares them)

    def chunk(self, chunk_id: int) -> bytes | None:
        """The chunk's bytes (decoded per ``data_encoding``), None when its shard or entry is missing."""
        shard, minishard_no = self.spec.location(chunk_id)
        key = f"{self.directory}/{shard}" if self.directory else shard
        size = self._shard_size(key)
        if size is None:
            return None
        minishard = self._minishard(key, size, minishard_no)
        if minishard is None:
            return None
        i = minishard.find(chunk_id)
        if i is None:
            return None
        start, end = int(minishard.starts[i]), int(minishard.ends[i])
        stored_cap = self.max_chunk_bytes + (
            self.max_chunk_bytes // 1000 + _GZIP_SLACK if self.spec.data_encoding == "gzip" else 0
        )
        if end - start > stored_cap:
            raise CorruptStoredData(
                key, f"chunk {chunk_id} claims {end - start} bytes, more than the {stored_cap}-byte cap of this scale"
            )
        data = self._read(key, start, end)
        if data is None:
            return None
        if self.spec.data_encoding == "gzip":
            data = inflate(data, key, self.max_chunk_bytes)
        return data

    # ---- internals ------------------------------------------------------------
    def _shard_size(self, key: str) -> int | None:
        cache_key = (self._id, "size", key)
        size = self.cache.get(cache_key)
        if size is None:
            size = self.store.size(key)
            if size is None:
                return None  # a shard with no chunks is not written at all
            self.cache.put(cache_key, size, 100)
        if size < self.spec.index_bytes:
            raise CorruptStoredData(key, f"{size} bytes cannot hold the {self.spec.index_bytes}-byte shard index")
        return size

    def _read(self, key: str, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of a shard; None when the shard is gone (its cached index goes too)."""
        data = self.store.get_range(key, start, end)
        if data is None or len(data) != end - start:
            self.cache.discard(lambda cache_key: cache_key[0] == self._id and cache_key[2] == key)
            if data is None:
                return None
            raise CorruptStoredData(key, f"bytes {start}-{end} are not all there (the shard changed size?)")
        return data

    def _minishard(self, key: str, size: int, number: int) -> _Minishard | None:
        cache_key = (self._id, "minishard", key, number)
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached or None  # () remembers an empty minishard
        entry = self._read(key, 16 * number, 16 * number + 16)
        if entry is None:
            return None
        entry = np.frombuffer(entry, dtype="<u8")
        start, end = int(entry[0]), int(entry[1])
        index_end = self.spec.index_bytes
        if start > end or index_end + end > size:
            raise CorruptStoredData(
                key,
                f"minishard {number} index at {start}-{end} (after the shard index) is outside the {size}-byte shard",
            )
        stored, cap = end - start, self.max_minishard_index_bytes
        stored_cap = cap + (cap // 1000 + _GZIP_SLACK if self.spec.minishard_index_encoding == "gzip" else 0)
        if stored > stored_cap:
            raise CorruptStoredData(
                key, f"minishard {number} index of {stored} bytes exceeds its {stored_cap}-byte cap"
            )
        if stored == 0:
            self.cache.put(cache_key, (), 100)
            return None
        data = self._read(key, index_end + start, index_end + end)
        if data is None:
            return None
        if self.spec.minishard_index_encoding == "gzip":
            data = inflate(data, key, cap)
        minishard = self._decode_minishard(key, data, size, number)
        self.cache.put(cache_key, minishard, minishard.nbytes)
        return minishard

    def _decode_minishard(self, key: str, data: bytes, size: int, number: int) -> _Minishard:
        if not data or len(data) % _ENTRY:
            raise CorruptStoredData(
                key, f"minishard {number} index of {len(data)} bytes is not a whole number of {_ENTRY}-byte entries"
            )
        table = np.frombuffer(data, dtype="<u8").reshape(3, -1)
        # Chunk ids only name chunks (nothing is sized by them): like Neuroglancer, sum them modulo 2**64.
        ids = np.cumsum(table[0], dtype=np.uint64)
        ids_sorted = bool(np.all(ids[1:] > ids[:-1]))
        # offset of chunk i = index end + Σ gaps[0..i] + Σ sizes[0..i-1]: one running sum over both rows
        interleaved = np.empty(2 * table.shape[1], dtype=np.uint64)
        interleaved[0::2], interleaved[1::2] = table[1], table[2]
        positions = _running_sum(interleaved, key, "data offsets")
        if int(positions[-1]) > size - self.spec.index_bytes:
            raise CorruptStoredData(key, f"minishard {number} places chunk data past the end of the {size}-byte shard")
        positions = positions.astype(np.int64) + self.spec.index_bytes
        return _Minishard(ids, positions[0::2], positions[1::2], ids_sorted)


def _running_sum(deltas: np.ndarray, key: str, what: str) -> np.ndarray:
    """Cumulative sum of uint64 deltas, refusing wrap-around (unsigned deltas never make it decrease).

    Data offsets are deltas from the end of the previous chunk, so a wrap would place a chunk
    before its predecessor: every writer lays data out in index order, and a wrapped offset
    is the mark of a corrupt index.
    """
    total = np.cumsum(deltas, dtype=np.uint64)
    if len(total) > 1 and np.any(total[1:] < total[:-1]):
        raise CorruptStoredData(key, f"{what} overflow 64 bits")
    return total


def _max_minishard_entries(spec: ShardingSpec, grid: ChunkGrid) -> int:
    """How many chunks one minishard can list: the grid's cells, or fewer when the hash is the identity.

    With the identity hash, the chunks of a minishard share ``minishard_bits + shard_bits``
    bits of their (pre-shifted) Morton code, so at most 2**preshift_bits ids per value of
    the remaining high bits can land there.
    """
    gx, gy, gz = grid.shape
    cells = gx * gy * gz
    if spec.hash == "identity":
        code_bits = sum(grid.morton_bits())
        fixed = spec.minishard_bits + spec.shard_bits
        free_high = max(0, code_bits - spec.preshift_bits - fixed)
        cells = min(cells, (1 << spec.preshift_bits) << free_high)
    return max(1, min(cells, _MAX_MINISHARD_INDEX // _ENTRY))
